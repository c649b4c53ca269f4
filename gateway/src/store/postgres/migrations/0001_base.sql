-- The shared queue's schema, version 1 (kept in gateway_schema). The same tables as the
-- SQLite store's version 4, in PostgreSQL's types: text ids (UUIDv7), times as unix
-- milliseconds (BIGINT), and partial indexes that hold only the rows their query
-- looks for.

-- The database's clock, in unix milliseconds, fixed for a transaction: every gateway of
-- a fleet compares lease expiries and due times on this one clock, not on its own.
CREATE FUNCTION gateway_now() RETURNS BIGINT
    LANGUAGE sql STABLE
    AS 'SELECT (extract(epoch FROM now()) * 1000)::bigint';

-- A bulk mailing: what its e-mails share. Its messages point at it.
CREATE TABLE mailings (
    id         TEXT NOT NULL PRIMARY KEY,
    -- JSON text shared by every message of the mailing (sender, subject, bodies).
    payload    TEXT NOT NULL,
    -- Number of messages (recipients) created with the mailing.
    total      BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX mailings_created_at ON mailings (created_at);

CREATE TABLE messages (
    id               TEXT NOT NULL PRIMARY KEY,
    channel          TEXT NOT NULL CHECK (channel IN ('sms', 'email')),
    status           TEXT NOT NULL
        CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'delivered', 'undelivered')),
    -- JSON text the API and the workers agree on; the store never looks inside.
    payload          TEXT NOT NULL,
    -- Leases taken so far.
    attempts         INTEGER NOT NULL DEFAULT 0,
    -- When a `queued` message may be leased.
    due_at           BIGINT NOT NULL,
    -- The gateway holding a `sending` message, its lease's own token, and until when.
    lease_owner      TEXT,
    lease_token      TEXT,
    lease_expires_at BIGINT,
    -- The provider's id once sent; delivery reports find the message by it.
    provider_id      TEXT,
    error            TEXT,
    mailing_id       TEXT REFERENCES mailings (id),
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    -- A message is leased exactly while it is `sending`.
    CHECK ((status = 'sending') = (lease_owner IS NOT NULL AND lease_token IS NOT NULL
                                   AND lease_expires_at IS NOT NULL))
);

-- What a lease picks: queued messages by due time...
CREATE INDEX messages_queued_due ON messages (channel, due_at) WHERE status = 'queued';
-- ...and leased messages by lease expiry (also found by owner on release).
CREATE INDEX messages_lease_expiry ON messages (channel, lease_expires_at) WHERE status = 'sending';
CREATE INDEX messages_lease_owner ON messages (lease_owner) WHERE status = 'sending';
CREATE INDEX messages_provider_id ON messages (provider_id) WHERE provider_id IS NOT NULL;
-- Counts per mailing and status.
CREATE INDEX messages_mailing_status ON messages (mailing_id, status) WHERE mailing_id IS NOT NULL;
-- The purge of messages of their own (a mailing's e-mails go with their mailing).
CREATE INDEX messages_finished ON messages (updated_at)
    WHERE mailing_id IS NULL AND status IN ('sent', 'failed', 'delivered', 'undelivered');

-- Inbound SMS, as the module parsed them from a provider's callback, and their
-- forwarding to sms.inbound_webhook.
CREATE TABLE inbound (
    id                  TEXT NOT NULL PRIMARY KEY,
    module              TEXT NOT NULL,
    -- E.164 when the number could be normalised, else as the provider sent it.
    sender              TEXT NOT NULL,
    recipient           TEXT NOT NULL,
    text                TEXT NOT NULL,
    provider_id         TEXT NOT NULL,
    received_at         BIGINT NOT NULL,
    forward_status      TEXT NOT NULL
        CHECK (forward_status IN ('none', 'pending', 'forwarded', 'failed')),
    forward_url         TEXT,
    forward_due_at      BIGINT,
    forward_attempts    INTEGER NOT NULL DEFAULT 0,
    forward_error       TEXT,
    -- A forwarder holds a pending row until then.
    forward_lease_until BIGINT,
    -- A provider that repeats a callback must not create a second inbound SMS.
    UNIQUE (module, provider_id)
);

CREATE INDEX inbound_forward_due ON inbound (forward_due_at) WHERE forward_status = 'pending';
CREATE INDEX inbound_finished ON inbound (received_at) WHERE forward_status IN ('none', 'forwarded');

-- A delivery report that matched no message it could change yet (see the SQLite
-- schema's version 4): applied when its send's outcome is recorded.
CREATE TABLE held_reports (
    -- Arrival order: the newest report wins when several wait for one message.
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    module      TEXT NOT NULL,
    provider_id TEXT,
    message_id  TEXT,
    status      TEXT NOT NULL CHECK (status IN ('delivered', 'undelivered')),
    detail      TEXT,
    received_at BIGINT NOT NULL,
    CHECK (provider_id IS NOT NULL OR message_id IS NOT NULL)
);

CREATE INDEX held_reports_message_id ON held_reports (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX held_reports_provider_id ON held_reports (provider_id) WHERE provider_id IS NOT NULL;
CREATE INDEX held_reports_received_at ON held_reports (received_at);

-- An idempotency key (already scoped to the caller's token) and the request it was
-- first used for.
CREATE TABLE idempotency_keys (
    key         TEXT NOT NULL PRIMARY KEY,
    endpoint    TEXT NOT NULL,
    -- SHA-256 (hex) of the request re-serialised canonically; NULL for keys moved from
    -- a SQLite store of before its version 4, which match on their endpoint alone.
    body_digest TEXT,
    created_id  TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

-- The fleet: one row per running gateway, written with each heartbeat. A row older than
-- storage.dead_after is a dead gateway's: a peer ends its leases and frees its slots.
CREATE TABLE gateways (
    id               TEXT NOT NULL PRIMARY KEY,
    started_at       BIGINT NOT NULL,
    heartbeat_at     BIGINT NOT NULL,
    -- Its own SMTP connection limit: the fleet uses the smallest while limits change.
    smtp_connections INTEGER NOT NULL CHECK (smtp_connections > 0),
    -- JSON: each setting the fleet must agree on, digested (never a value).
    fingerprint      TEXT NOT NULL
);

-- The fleet's SMTP connection slots: a connection is open only under a held slot whose
-- number is below the limit. A hold runs out at expires_at, or when its gateway dies.
CREATE TABLE smtp_slots (
    slot       INTEGER NOT NULL PRIMARY KEY CHECK (slot >= 0),
    holder     TEXT,
    token      TEXT,
    expires_at BIGINT,
    CHECK ((holder IS NULL) = (token IS NULL) AND (holder IS NULL) = (expires_at IS NULL))
);

-- One row: a random salt the fleet's settings fingerprints are digested with, so that
-- a fingerprint shown in /metrics cannot be tested against guessed secrets without
-- access to this database.
CREATE TABLE fleet (salt TEXT NOT NULL);
INSERT INTO fleet (salt) VALUES (replace(gen_random_uuid()::text, '-', ''));
