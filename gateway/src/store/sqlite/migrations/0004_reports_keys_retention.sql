-- Version 4: delivery reports that wait for their message, idempotency keys that mean
-- one request, and the indexes the purge of old rows walks.

-- A delivery report that matched no message it could change yet: its message is still
-- `sending` (the report overtook the send's answer), or unknown. It is applied the
-- moment the send's outcome is recorded, and purged after sms.report_hold.
CREATE TABLE held_reports (
    -- Arrival order: the newest report wins when several wait for one message.
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    module      TEXT NOT NULL,
    provider_id TEXT,
    -- The gateway's own message id, when the provider echoes it.
    message_id  TEXT,
    status      TEXT NOT NULL CHECK (status IN ('delivered', 'undelivered')),
    detail      TEXT,
    received_at INTEGER NOT NULL,
    CHECK (provider_id IS NOT NULL OR message_id IS NOT NULL)
);

CREATE INDEX held_reports_message_id ON held_reports (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX held_reports_provider_id ON held_reports (provider_id) WHERE provider_id IS NOT NULL;
CREATE INDEX held_reports_received_at ON held_reports (received_at);

-- An idempotency key (already scoped to the caller's token) and the request it was
-- first used for: the same key again is the same request only on the same endpoint with
-- the same body.
CREATE TABLE idempotency_keys (
    key         TEXT NOT NULL PRIMARY KEY,
    -- `POST /v1/sms`, `POST /v1/email` or `POST /v1/mailings`.
    endpoint    TEXT NOT NULL,
    -- SHA-256 (hex) of the request re-serialised canonically; NULL for keys stored
    -- before version 4, whose bodies were never digested: those match on endpoint alone.
    body_digest TEXT,
    -- The message or mailing the request created.
    created_id  TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

-- The keys of earlier versions move here. A key once used both for a message and for
-- a mailing (which earlier versions allowed) keeps its message.
INSERT OR IGNORE INTO idempotency_keys (key, endpoint, body_digest, created_id, created_at)
    SELECT idempotency_key, 'POST /v1/' || channel, NULL, id, created_at
    FROM messages WHERE idempotency_key IS NOT NULL;
INSERT OR IGNORE INTO idempotency_keys (key, endpoint, body_digest, created_id, created_at)
    SELECT idempotency_key, 'POST /v1/mailings', NULL, id, created_at
    FROM mailings WHERE idempotency_key IS NOT NULL;

DROP INDEX messages_idempotency_key;
DROP INDEX mailings_idempotency_key;
ALTER TABLE messages DROP COLUMN idempotency_key;
ALTER TABLE mailings DROP COLUMN idempotency_key;

-- The purge (storage.retention) deletes in small batches, oldest first; each of these
-- holds only the rows it may delete, so a batch never scans what must be kept.
-- Messages of their own (a mailing's e-mails go with their mailing), once finished.
CREATE INDEX messages_finished ON messages (updated_at)
    WHERE mailing_id IS NULL AND status IN ('sent', 'failed', 'delivered', 'undelivered');
CREATE INDEX mailings_created_at ON mailings (created_at);
-- Inbound SMS with nothing left to do: forwarded, or received without a webhook.
CREATE INDEX inbound_finished ON inbound (received_at) WHERE forward_status IN ('none', 'forwarded');
