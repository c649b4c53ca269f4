-- Version 6: the admin console's sign-in sessions.

CREATE TABLE console_sessions (
    -- SHA-256 (hex) of the session id the browser holds; never the id itself.
    id_digest    TEXT NOT NULL PRIMARY KEY,
    -- SHA-256 (hex) of the admin token the session was opened with; never the token.
    token_digest TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
);

CREATE INDEX console_sessions_expires_at ON console_sessions (expires_at);
