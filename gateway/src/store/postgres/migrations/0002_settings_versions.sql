-- Version 2: settings saved from the admin console, one row per saved version, shared
-- by the fleet (each gateway applies the latest).

CREATE TABLE settings_versions (
    -- 1, 2, 3…: a save names the version it was based on and gets the next one; two
    -- saves on one base collide on this key, and the second is refused.
    version     BIGINT NOT NULL PRIMARY KEY,
    saved_at    BIGINT NOT NULL,
    -- Who saved it: a token's fingerprint or a console user's name, never a token.
    saved_by    TEXT NOT NULL,
    -- JSON array of the keys this version changed (secrets by name only).
    changed     TEXT NOT NULL,
    -- JSON object of every console-set value, by dotted key, secrets included.
    settings    TEXT NOT NULL,
    -- The version a rollback restored.
    rollback_of BIGINT
);
