-- The queue's schema up to version 2 (kept in PRAGMA user_version). Every statement is
-- idempotent, so a file of an older version is brought up to date by running it again.
--
-- Written in the SQL that SQLite and PostgreSQL share, so a PostgreSQL store can start from
-- it: text ids (UUIDv7), times as unix milliseconds (INTEGER here, BIGINT there), and
-- partial indexes so that each index holds only the rows its query looks for.

-- A bulk mailing: what its e-mails share. Its messages point at it.
CREATE TABLE IF NOT EXISTS mailings (
    id              TEXT NOT NULL PRIMARY KEY,
    -- JSON text shared by every message of the mailing (sender, subject, bodies).
    payload         TEXT NOT NULL,
    -- Number of messages (recipients) created with the mailing.
    total           INTEGER NOT NULL,
    idempotency_key TEXT,
    created_at      INTEGER NOT NULL
);

CREATE UNIQUE INDEX IF NOT EXISTS mailings_idempotency_key
    ON mailings (idempotency_key) WHERE idempotency_key IS NOT NULL;

CREATE TABLE IF NOT EXISTS messages (
    id               TEXT NOT NULL PRIMARY KEY,
    channel          TEXT NOT NULL CHECK (channel IN ('sms', 'email')),
    status           TEXT NOT NULL
        CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'delivered', 'undelivered')),
    -- JSON text the API and the workers agree on; the store never looks inside.
    payload          TEXT NOT NULL,
    -- Leases taken so far.
    attempts         INTEGER NOT NULL DEFAULT 0,
    -- When a `queued` message may be leased.
    due_at           INTEGER NOT NULL,
    -- Who holds a `sending` message, and until when.
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    -- The provider's id once sent; delivery reports find the message by it.
    provider_id      TEXT,
    error            TEXT,
    mailing_id       TEXT REFERENCES mailings (id),
    idempotency_key  TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    -- A message is leased exactly while it is `sending`.
    CHECK ((status = 'sending') = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL))
);

CREATE UNIQUE INDEX IF NOT EXISTS messages_idempotency_key
    ON messages (idempotency_key) WHERE idempotency_key IS NOT NULL;

-- What a lease picks: queued messages by due time...
CREATE INDEX IF NOT EXISTS messages_queued_due
    ON messages (channel, due_at) WHERE status = 'queued';

-- ...and leased messages by lease expiry (also found by owner on release).
CREATE INDEX IF NOT EXISTS messages_lease_expiry
    ON messages (channel, lease_expires_at) WHERE status = 'sending';

CREATE INDEX IF NOT EXISTS messages_provider_id
    ON messages (provider_id) WHERE provider_id IS NOT NULL;

-- Counts per mailing and status, read from the index alone.
CREATE INDEX IF NOT EXISTS messages_mailing_status
    ON messages (mailing_id, status) WHERE mailing_id IS NOT NULL;

-- Version 2: inbound SMS, as the module parsed them from a provider's callback, and
-- their forwarding to sms.inbound_webhook.
CREATE TABLE IF NOT EXISTS inbound (
    id             TEXT NOT NULL PRIMARY KEY,
    module         TEXT NOT NULL,
    -- E.164 when the number could be normalised, else as the provider sent it.
    sender         TEXT NOT NULL,
    recipient      TEXT NOT NULL,
    text           TEXT NOT NULL,
    provider_id    TEXT NOT NULL,
    received_at    INTEGER NOT NULL,
    -- 'none' (no webhook when it arrived), 'pending', 'forwarded' or 'failed'.
    forward_status TEXT NOT NULL CHECK (forward_status IN ('none', 'pending', 'forwarded', 'failed')),
    forward_url    TEXT,
    forward_due_at INTEGER,
    forward_attempts INTEGER NOT NULL DEFAULT 0,
    forward_error  TEXT,
    -- A forwarder holds a pending row until then.
    forward_lease_until INTEGER
);

CREATE INDEX IF NOT EXISTS inbound_forward_due
    ON inbound (forward_due_at) WHERE forward_status = 'pending';

-- A provider that repeats a callback must not create a second inbound SMS.
CREATE UNIQUE INDEX IF NOT EXISTS inbound_provider_id ON inbound (module, provider_id);
