-- Version 6: mailings people actually send (issue 14).

-- The suppression list: addresses no mailing sends to again.
CREATE TABLE suppressions (
    -- The local part as written, the domain in lower case (as mail servers compare).
    address    TEXT NOT NULL PRIMARY KEY,
    -- unsubscribe | bounce | admin
    reason     TEXT NOT NULL CHECK (reason IN ('unsubscribe', 'bounce', 'admin')),
    -- The server's reply for a bounce, the mailing for an unsubscribe, an admin's note.
    detail     TEXT,
    created_at BIGINT NOT NULL
);

-- Recipients of a mailing skipped because they were suppressed when it was stored
-- (counted in total, never a message).
ALTER TABLE mailings ADD COLUMN suppressed BIGINT NOT NULL DEFAULT 0;

-- Secrets the gateway makes for itself and every gateway sharing the store must share
-- (the key of unsubscribe links): made at random on first use, never shown.
CREATE TABLE gateway_secrets (
    name  TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);

-- Sending quotas: when each e-mail was handed to the SMTP server (unix milliseconds),
-- kept for the longest window (email.max_per_minute|hour|day).
CREATE TABLE email_sends (
    at BIGINT NOT NULL
);
CREATE INDEX email_sends_at ON email_sends (at);
