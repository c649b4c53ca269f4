#!/usr/bin/env python3
"""Verifies DKIM signatures with dkimpy, an implementation the gateway shares nothing with
(tests/tests/dkim.rs).

    verify.py NAME RECORD_FILE MESSAGE_FILE...

NAME (SELECTOR._domainkey.DOMAIN) resolves to the TXT record in RECORD_FILE; no other
name resolves, so a signature naming another domain or selector fails. Prints one JSON
line per message: {"file": ..., "ok": true|false, "domain": ..., "selector": ...,
"log": "dkimpy's reasons"}.
"""

import io
import json
import logging
import sys

import dkim


def main():
    name, record_file, *files = sys.argv[1:]
    with open(record_file, "rb") as f:
        record = f.read().strip()

    def dnsfunc(qname, timeout=5):
        asked = qname.decode() if isinstance(qname, bytes) else qname
        return record if asked.rstrip(".").lower() == name.lower() else None

    for path in files:
        with open(path, "rb") as f:
            message = f.read()
        log = io.StringIO()
        logger = logging.getLogger(f"verify-{path}")
        logger.addHandler(logging.StreamHandler(log))
        logger.setLevel(logging.DEBUG)
        verifier = dkim.DKIM(message, logger=logger)
        try:
            ok = bool(verifier.verify(dnsfunc=dnsfunc))
        except dkim.DKIMException as error:
            ok = False
            log.write(f"{error}\n")
        result = {
            "file": path,
            "ok": ok,
            "domain": (verifier.domain or b"").decode(),
            "selector": (verifier.selector or b"").decode(),
            "log": log.getvalue()[-2000:],
        }
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
