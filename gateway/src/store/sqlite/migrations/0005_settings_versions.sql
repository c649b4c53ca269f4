-- Version 5: settings saved from the admin console, one row per saved version.

CREATE TABLE settings_versions (
    -- 1, 2, 3…: a save names the version it was based on and gets the next one.
    version     INTEGER NOT NULL PRIMARY KEY,
    saved_at    INTEGER NOT NULL,
    -- Who saved it: a token's fingerprint or a console user's name, never a token.
    saved_by    TEXT NOT NULL,
    -- JSON array of the keys this version changed (secrets by name only).
    changed     TEXT NOT NULL,
    -- JSON object of every console-set value, by dotted key, secrets included.
    settings    TEXT NOT NULL,
    -- The version a rollback restored.
    rollback_of INTEGER
);
