#!/usr/bin/env python3
"""A real SMTP server for the e-mail tests: aiosmtpd, plus hooks that record events.

The SMTP protocol is aiosmtpd's own (https://aiosmtpd.aio-libs.org); this file only
adds what the tests need to see and provoke:

- every connection, accepted message and close is appended to ``--events`` as one JSON
  line, flushed at once, so a test reads what the server saw while it runs;
- ``--reply-421-after K`` and ``--drop-after K`` make the server behave like a provider
  that caps messages per connection (Amazon SES answers 421 and hangs up);
- ``--reject-rcpt`` makes chosen recipients permanently undeliverable (550 5.1.1);
- ``--tls`` and ``--auth`` turn on STARTTLS, implicit TLS (SMTPS) and AUTH PLAIN/LOGIN;
- ``--smtputf8`` announces SMTPUTF8 (RFC 6531) and takes addresses in UTF-8;
- ``--keep-raw`` adds each message's bytes as received (base64) to its event as ``raw``,
  for a test that checks them with another tool (a DKIM verifier).

It listens on 127.0.0.1 only. ``--port 0`` lets the system choose; the port chosen is
in the ``--ready-file``, written once the server listens.

Event lines (``t`` is the Unix time in seconds; the file's order is the order in which
the server saw things, as it runs on one thread):

    {"event": "connect", "session": 1, "peer": "127.0.0.1:40000", "t": ...}
    {"event": "auth", "session": 1, "user": "u", "success": true, "t": ...}
    {"event": "message", "session": 1, "mail_from": "a@x", "rcpt_tos": ["b@y"],
     "gateway_id": "...", "message_id": "<...>", "subject": "...", "tls": false,
     "auth_user": null, "size": 123, "to": "...", "text": "...", "html": "...", "max_line": 76,
     "mail_options": ["SMTPUTF8"], "t": ...}

``subject`` and ``to`` are the headers decoded (RFC 2047 words joined, folding undone),
``text`` the text/plain part decoded from its transfer encoding (``html`` the text/html
part likewise), ``list_unsubscribe`` and ``list_unsubscribe_post`` those headers, and ``max_line`` the
longest line of the message as received, in bytes without its CRLF.
    {"event": "rset", "session": 1, "t": ...}
    {"event": "rcpt_rejected", "session": 1, "address": "...", "t": ...}
    {"event": "reply_421", "session": 1, "t": ...}
    {"event": "drop", "session": 1, "t": ...}
    {"event": "quit", "session": 1, "t": ...}
    {"event": "close", "session": 1, "messages": 3, "quit": true, "t": ...}
"""

import argparse
import asyncio
import base64
import email.parser
import email.policy
import json
import logging
import os
import signal
import socket
import ssl
import struct
import sys
import time
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword, syntax


class Events:
    """The JSON-lines event file, appended and flushed one event at a time."""

    def __init__(self, path):
        self.file = open(path, "a", encoding="utf-8")

    def emit(self, event, session, **fields):
        record = {"event": event, "session": session, **fields, "t": time.time()}
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()


class Behaviour:
    """What the command line asked for, shared by every connection."""

    def __init__(self, args, events):
        self.events = events
        self.reply_421_after = args.reply_421_after
        self.drop_after = args.drop_after
        self.reject_rcpt = args.reject_rcpt
        self.pipelining = args.pipelining
        self.keep_raw = args.keep_raw
        self.next_session = 1


class RecordingSMTP(SMTP):
    """aiosmtpd's SMTP protocol, one instance per connection (a STARTTLS upgrade keeps
    the instance, while aiosmtpd makes a fresh ``session`` object), so the per-connection
    counters live here."""

    def __init__(self, behaviour, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.behaviour = behaviour
        self.session_id = None
        self.accepted = 0
        self.quit_seen = False
        self.closed = False

    def connection_made(self, transport):
        # Called again, with the TLS transport, after STARTTLS: only the first counts.
        first = self.session_id is None
        if first:
            self.session_id = self.behaviour.next_session
            self.behaviour.next_session += 1
            peer = transport.get_extra_info("peername")
            self.behaviour.events.emit(
                "connect", self.session_id, peer=f"{peer[0]}:{peer[1]}" if peer else None
            )
        super().connection_made(transport)

    def connection_lost(self, error):
        # aiosmtpd calls this itself after a failed STARTTLS handshake, and asyncio may
        # call it again: the close is recorded once.
        if not self.closed:
            self.closed = True
            self.behaviour.events.emit(
                "close", self.session_id, messages=self.accepted, quit=self.quit_seen
            )
        super().connection_lost(error)

    def is_tls(self):
        return self.transport is not None and self.transport.get_extra_info("ssl_object") is not None

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg):
        behaviour = self.behaviour
        if behaviour.reply_421_after is not None and self.accepted >= behaviour.reply_421_after:
            behaviour.events.emit("reply_421", self.session_id)
            await self.push("421 4.7.0 maximum message count per session reached")
            # close() sends what is buffered (the 421) before closing; aiosmtpd then
            # sees the connection lost and ends the session.
            self.transport.close()
            return
        if behaviour.drop_after is not None and self.accepted >= behaviour.drop_after:
            behaviour.events.emit("drop", self.session_id)
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                # Linger 0: the close sends a TCP RST, as a crashed or cut-off peer would.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.transport.abort()
            return
        await super().smtp_MAIL(arg)


class Handler:
    """aiosmtpd handler hooks: record what was accepted, reject chosen recipients."""

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.parser = email.parser.BytesParser(policy=email.policy.default)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # aiosmtpd reads commands one line at a time from a buffered stream, so it
        # handles pipelined commands in order; it only never says so. Announcing
        # PIPELINING (RFC 2920) lets a client send MAIL, RCPT and DATA in one write.
        session.host_name = hostname
        if self.behaviour.pipelining:
            responses = responses[:-1] + ["250-PIPELINING"] + responses[-1:]
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reject = self.behaviour.reject_rcpt
        if reject and reject in address:
            self.behaviour.events.emit("rcpt_rejected", server.session_id, address=address)
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        content = envelope.original_content or b""
        headers = {}
        text = None
        html = None
        try:
            parsed = self.parser.parsebytes(content)
            for name in ("X-Gateway-Id", "Message-ID", "Subject", "To", "List-Unsubscribe", "List-Unsubscribe-Post"):
                value = parsed.get(name)
                headers[name] = None if value is None else str(value).strip()
            plain = parsed.get_body(preferencelist=("plain",))
            text = None if plain is None else plain.get_content()
            rich = parsed.get_body(preferencelist=("html",))
            html = None if rich is None else rich.get_content()
        except Exception as error:  # a malformed message must not cost the message
            logging.getLogger("smtp-test-server").warning("message parse failed: %r", error)
        server.accepted += 1
        auth_user = None
        if session.authenticated and isinstance(session.auth_data, LoginPassword):
            auth_user = session.auth_data.login.decode("utf-8", "replace")
        self.behaviour.events.emit(
            "message",
            server.session_id,
            mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            gateway_id=headers.get("X-Gateway-Id"),
            message_id=headers.get("Message-ID"),
            subject=headers.get("Subject"),
            tls=server.is_tls(),
            auth_user=auth_user,
            size=len(content),
            to=headers.get("To"),
            text=text,
            html=html,
            list_unsubscribe=headers.get("List-Unsubscribe"),
            list_unsubscribe_post=headers.get("List-Unsubscribe-Post"),
            max_line=max((len(line) for line in content.split(b"\r\n")), default=0),
            mail_options=list(envelope.mail_options),
            **({"raw": base64.b64encode(content).decode("ascii")} if self.behaviour.keep_raw else {}),
        )
        return f"250 2.0.0 Ok: queued as S{server.session_id}M{server.accepted}"

    async def handle_RSET(self, server, session, envelope):
        self.behaviour.events.emit("rset", server.session_id)
        return "250 OK"

    async def handle_QUIT(self, server, session, envelope):
        server.quit_seen = True
        self.behaviour.events.emit("quit", server.session_id)
        return "221 Bye"


def make_authenticator(user, password, events):
    user_b, password_b = user.encode(), password.encode()

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user_b
            and auth_data.password == password_b
        )
        login = auth_data.login.decode("utf-8", "replace") if isinstance(auth_data, LoginPassword) else None
        events.emit("auth", server.session_id, user=login, mechanism=mechanism, success=ok)
        # A failure not "handled" makes aiosmtpd answer 535 5.7.8.
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    return authenticate


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, required=True, help="port on 127.0.0.1; 0 = any free port")
    p.add_argument("--events", required=True, help="JSON-lines event file (appended)")
    p.add_argument("--ready-file", help="written with {port, pid} once listening")
    p.add_argument("--tls", choices=["none", "starttls", "implicit"], default="none")
    p.add_argument("--cert", help="server certificate chain (PEM)")
    p.add_argument("--key", help="server private key (PEM)")
    p.add_argument("--require-tls", action="store_true", help="with starttls: 530 before STARTTLS")
    p.add_argument("--auth", metavar="USER:PASSWORD", help="require AUTH PLAIN/LOGIN before MAIL")
    p.add_argument("--reply-421-after", type=int, metavar="K")
    p.add_argument("--drop-after", type=int, metavar="K")
    p.add_argument("--reject-rcpt", metavar="SUBSTRING")
    p.add_argument("--pipelining", action="store_true", help="announce PIPELINING (RFC 2920) in EHLO")
    p.add_argument("--smtputf8", action="store_true", help="announce SMTPUTF8 (RFC 6531) in EHLO")
    p.add_argument("--keep-raw", action="store_true", help="add each message's bytes (base64) to its event")
    args = p.parse_args(argv)
    if args.tls != "none" and not (args.cert and args.key):
        p.error("--tls starttls|implicit needs --cert and --key")
    if args.require_tls and args.tls != "starttls":
        p.error("--require-tls goes with --tls starttls")
    if args.auth is not None and ":" not in args.auth:
        p.error("--auth takes USER:PASSWORD")
    return args


async def serve(args):
    loop = asyncio.get_running_loop()
    events = Events(args.events)
    behaviour = Behaviour(args, events)
    handler = Handler(behaviour)

    tls_context = None
    if args.tls != "none":
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_context.load_cert_chain(args.cert, args.key)

    smtp_options = {"hostname": "localhost", "loop": loop, "enable_SMTPUTF8": args.smtputf8}
    if args.tls == "starttls":
        smtp_options["tls_context"] = tls_context
        smtp_options["require_starttls"] = args.require_tls
    if args.auth is not None:
        user, password = args.auth.split(":", 1)
        smtp_options["authenticator"] = make_authenticator(user, password, events)
        smtp_options["auth_required"] = True
        # aiosmtpd only counts a STARTTLS upgrade as TLS here: an implicit-TLS session
        # would get 538 to AUTH. With STARTTLS required, AUTH waits for it (RFC 4954).
        smtp_options["auth_require_tls"] = args.tls == "starttls" and args.require_tls

    def factory():
        return RecordingSMTP(behaviour, handler, **smtp_options)

    # With implicit TLS the listener does the TLS, and the protocol gets no tls_context:
    # given one, aiosmtpd would offer STARTTLS inside TLS.
    server = await loop.create_server(
        factory,
        host="127.0.0.1",
        port=args.port,
        ssl=tls_context if args.tls == "implicit" else None,
        reuse_address=True,
    )
    port = server.sockets[0].getsockname()[1]
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"port": port, "pid": os.getpid()}, f)
        os.replace(tmp, args.ready_file)

    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    async with server:
        await stop


def main(argv):
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    # aiosmtpd warns on every connection that AUTH without TLS is insecure: that is
    # the point of a test server, and the noise would hide real errors.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main(sys.argv[1:])
