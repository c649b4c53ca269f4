"""Schemathesis hooks for tests/tests/fuzz_openapi.rs (loaded through SCHEMATHESIS_HOOKS).

The document uses two formats of its own, whose rules a JSON Schema pattern cannot hold;
here they get generators, so that every value the fuzzer calls valid is one the gateway
must accept:

- `phone`: the syntax is in the pattern, but whether a number is allocated is
  libphonenumber's metadata. Generated: UK mobile numbers in blocks allocated long ago
  (+44 71xx to 73xx), in every form the API takes (E.164, 00, national, separators).
- `mailbox`: an RFC 5322 mailbox, with or without a display name, from Hypothesis's
  own `emails()` (dot-atom local parts with every allowed symbol, IANA TLDs).
- `template`: a Jinja template (merge fields) that compiles and renders for any
  recipient: text without `{` (which opens every Jinja tag), with or without a
  `{{ email }}` or a `{% if name %}`, on one line, so that a
  subject stays one.
"""

import hashlib

import schemathesis
from hypothesis import strategies as st

subscriber = st.from_regex(r"\A7[1-3][0-9]{8}\Z")


def _forms(national_significant):
    n = national_significant
    return st.sampled_from(
        [
            f"+44{n}",
            f"+44 {n[:4]} {n[4:]}",
            f"0044 {n[:4]} {n[4:]}",
            f"0{n}",
            f"0{n[:4]} {n[4:]}",
            f"(0{n[:4]}) {n[4:7]}-{n[7:]}",
            f"0{n[:4]}.{n[4:7]}.{n[7:]}",
        ]
    )


schemathesis.openapi.format("phone", subscriber.flatmap(_forms))

display_name = st.from_regex(r"\A[A-Za-z][A-Za-z0-9 .'-]{0,30}[A-Za-z0-9]\Z")
schemathesis.openapi.format(
    "mailbox",
    st.emails()
    | st.builds(lambda name, address: f"{name} <{address}>", display_name, st.emails()),
)

plain = st.text(alphabet=st.characters(blacklist_characters="{\r\n", blacklist_categories=("Cs",)), max_size=60)
schemathesis.openapi.format(
    "template",
    st.builds(
        lambda before, tag, after: before + tag + after,
        plain,
        st.sampled_from(["", "{{ email }}", "{% if name %}{{ name }}{% endif %}"]),
        plain,
    ),
)


@schemathesis.hook
def map_case(context, case):
    """An Idempotency-Key is scoped to one request: reusing one with another body is a
    documented 422, which depends on what ran before, not on the schema. Make each
    generated key unique to its body, keeping its shape (1 to 255 visible ASCII).
    A console save stays on loopback (keep_on_loopback). A case hook, because the
    coverage phase applies case hooks only."""
    keep_on_loopback(case.body)
    headers = case.headers or {}
    key = headers.get("Idempotency-Key")
    if key is not None and isinstance(case.body, (dict, list, str)):
        digest = hashlib.sha256(repr(case.body).encode()).hexdigest()[:16]
        headers["Idempotency-Key"] = key[: 255 - 17] + "-" + digest
    return case


# Console keys that say where the gateway connects: a generated save must not send
# e-mail, inbound SMS or anything else off this machine (the tests talk to loopback).
LOOPBACK_VALUES = {
    "email.host": "127.0.0.1",
    "sms.inbound_webhook": "http://127.0.0.1:9/inbound",
}


def keep_on_loopback(body):
    """A generated console save keeps its keys, but any that would point the gateway
    at another host points it at loopback instead."""
    if isinstance(body, dict) and isinstance(body.get("set"), dict):
        for key, value in LOOPBACK_VALUES.items():
            if key in body["set"]:
                body["set"][key] = value


@schemathesis.hook
def filter_case(context, case):
    """to, cc and bcc together hold at most 100 addresses: a rule across fields that
    JSON Schema cannot state (the document says it in words, and lists the 422).
    A case hook, because the coverage phase applies case hooks only."""
    body = case.body
    if not isinstance(body, dict):
        return True
    count = 0
    for field in ("to", "cc", "bcc"):
        value = body.get(field)
        count += len(value) if isinstance(value, list) else 1 if isinstance(value, str) else 0
    return count <= 100
