"""An SMSC for the tests of the `smpp` module: the SMPP 3.4 server of the PyPI package
smpp34 (pinned in tests/src/smpp.rs and scripts/test), behind a small front that the
tests need and smpp34 does not do.

    python3 simulator.py --port PORT --inner-port PORT --password PASSWORD
                         [--tls-cert PEM --tls-key PEM]

The front checks the password of each bind (smpp34's server accepts any: a wrong one
is answered ESME_RINVPASWD here) and counts, on the wire, the submit_sm each
connection has unanswered, keeping the most it ever had, and what each connection
carried (its bind, when each submit_sm came, how many deliver_sm went to it). With
--tls-cert and --tls-key it speaks TLS from the first byte (smpp34's server does not),
with that certificate. Everything else is smpp34's:
binds, enquire_link, submit_sm answered with message ids, deliver_sm pushed to a bound
receiver. (smpp34 1.5.0 answers a receiver bind's deliver_sm_resp with generic_nack
ESME_RINVCMDID and never sees its deliver_sm answered: each deliver_sm is pushed by a
task of its own, so that a later command does not wait for it.)

It talks to the test in JSON lines. Out, on stdout: {"event": "ready"} once listening;
{"event": "submit", ...} for every submit_sm (addresses, TONs, esm_class, data_coding,
registered_delivery, the short message in hex, the message id given); {"event":
"unbound"} when a bind ends (by an unbind or a dropped connection); {"event":
"stats", "max_outstanding": {...}, "binds": N, "connections": {N: {"bind", "submits":
[seconds], "delivers"}}} when asked. In, on stdin: {"cmd":
"stats"}; {"cmd": "throttle", "count": N} (answer the next N submits
ESME_RTHROTTLED); {"cmd": "deliver", "source", "dest", "text", "receipt": bool}.
"""

import argparse
import asyncio
import json
import ssl
import struct
import sys

import time

import smpp34

BIND_IDS = {0x00000001, 0x00000002, 0x00000009}
BIND_KINDS = {0x00000001: "receiver", 0x00000002: "transmitter", 0x00000009: "transceiver"}
SUBMIT_SM = 0x00000004
SUBMIT_SM_RESP = 0x80000004
DELIVER_SM = 0x00000005
ESME_RINVPASWD = 0x0000000E


def say(**event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


class State:
    def __init__(self):
        self.connections = 0
        self.outstanding = {}
        self.max_outstanding = {}
        # What each connection carried: its bind, submit_sm arrival times, deliver_sm.
        self.carried = {}
        self.binds = 0
        self.throttle = 0
        self.esmes = {}
        self.next_id = 0


def c_strings(body, count):
    fields, start = [], 0
    for _ in range(count):
        end = body.index(b"\0", start)
        fields.append(body[start:end])
        start = end + 1
    return fields


async def read_pdu(reader):
    header = await reader.readexactly(4)
    (length,) = struct.unpack(">I", header)
    return header + await reader.readexactly(length - 4)


async def front(reader, writer, state, password, inner_port):
    """One ESME's connection: the bind checked, then piped to smpp34, counted."""
    n = state.connections
    state.connections += 1
    try:
        bind = await read_pdu(reader)
    except (asyncio.IncompleteReadError, OSError):
        writer.close()
        return
    command_id, _, sequence = struct.unpack(">III", bind[4:16])
    if command_id in BIND_IDS:
        _system_id, given = c_strings(bind[16:], 2)
        if given.decode("latin-1") != password:
            body = b"sim\0"
            writer.write(struct.pack(">IIII", 16 + len(body), command_id | 0x80000000, ESME_RINVPASWD, sequence) + body)
            await writer.drain()
            writer.close()
            return
    state.binds += 1
    state.carried[n] = {"bind": BIND_KINDS.get(command_id, "other"), "submits": [], "delivers": 0}
    inner_reader, inner_writer = await asyncio.open_connection("127.0.0.1", inner_port)
    inner_writer.write(bind)
    state.outstanding[n] = 0
    state.max_outstanding.setdefault(n, 0)

    async def pipe(source, sink, counting):
        try:
            while True:
                pdu = await read_pdu(source)
                (command_id,) = struct.unpack(">I", pdu[4:8])
                if counting == "in" and command_id == SUBMIT_SM:
                    state.outstanding[n] += 1
                    state.max_outstanding[n] = max(state.max_outstanding[n], state.outstanding[n])
                    state.carried[n]["submits"].append(time.monotonic())
                elif counting == "out" and command_id == SUBMIT_SM_RESP:
                    state.outstanding[n] -= 1
                elif counting == "out" and command_id == DELIVER_SM:
                    state.carried[n]["delivers"] += 1
                sink.write(pdu)
                await sink.drain()
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            sink.close()

    await asyncio.gather(pipe(reader, inner_writer, "in"), pipe(inner_reader, writer, "out"))


async def answer(event, state):
    """Answers a submit a moment later, so that a client's window fills."""
    await asyncio.sleep(0.002)
    if state.throttle > 0:
        state.throttle -= 1
        event.reject(smpp34.ESME_RTHROTTLED)
        return
    state.next_id += 1
    message_id = f"sim-{state.next_id}"
    say(
        event="submit",
        session=event.session_id,
        source=event.source_addr,
        source_ton=event.source_addr_ton,
        source_npi=event.source_addr_npi,
        dest=event.destination_addr,
        dest_ton=event.dest_addr_ton,
        dest_npi=event.dest_addr_npi,
        esm_class=event.esm_class,
        data_coding=event.data_coding,
        registered_delivery=event.registered_delivery,
        sm=event.short_message.hex(),
        message_id=message_id,
    )
    event.accept(message_id)


async def serve_smsc(server, state):
    while True:
        item = await server.next()
        if isinstance(item, smpp34.Esme):
            state.esmes[item.session_id] = item
        elif isinstance(item, smpp34.SubmitSmEvent):
            asyncio.create_task(answer(item, state))
        elif isinstance(item, smpp34.Unbound):
            state.esmes.pop(item.session_id, None)
            say(event="unbound", session=item.session_id)


async def commands(state):
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            return
        command = json.loads(line)
        if command["cmd"] == "stats":
            say(event="stats", max_outstanding=state.max_outstanding, binds=state.binds, connections=state.carried)
        elif command["cmd"] == "throttle":
            state.throttle += command["count"]
        elif command["cmd"] == "deliver":
            esme = next((e for e in state.esmes.values() if e.can_receive), None)
            if esme is None:
                say(event="error", reason="no bound receiver")
                continue
            # Each deliver_sm waits for its answer on its own, so the commands after it
            # are not held up.
            asyncio.create_task(deliver(esme, command))


async def deliver(esme, command):
    try:
        resp = await esme.deliver_sm(
            command["dest"],
            command["text"].encode("latin-1"),
            source_addr=command["source"],
            source_addr_ton=1,
            source_addr_npi=1,
            esm_class=0x04 if command.get("receipt") else 0,
        )
    except Exception as error:  # the bind ended before an answer: said, not raised
        say(event="deliver_unanswered", reason=str(error))
        return
    say(event="delivered", ok=resp.is_success)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--inner-port", type=int, required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    args = parser.parse_args()
    tls = None
    if args.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    state = State()
    server = smpp34.Server("127.0.0.1", args.inner_port, system_id="sim")
    await server.start()
    listener = await asyncio.start_server(
        lambda r, w: front(r, w, state, args.password, args.inner_port), "127.0.0.1", args.port, ssl=tls
    )
    asyncio.create_task(serve_smsc(server, state))
    say(event="ready")
    async with listener:
        await commands(state)


if __name__ == "__main__":
    asyncio.run(main())
