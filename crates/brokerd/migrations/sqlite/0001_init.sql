-- brokerd store schema, version 1.
--
-- Times we generate ourselves (updated_at, audit.at) are unix milliseconds:
-- integers sort and compare cheaply, which audit pruning relies on. The
-- session's own expiry times are RFC 3339 text with nanoseconds, always UTC
-- ("...Z"): fixed width, so they sort too, and they round-trip exactly what
-- the broker module produced.

-- One row per session slot. The row outlives a logout: a logout clears the
-- ciphertext and metadata but keeps `generation`, so generations stay
-- monotonic across logout and restart.
CREATE TABLE sessions (
    broker      TEXT    NOT NULL,
    account     TEXT    NOT NULL,
    api         TEXT    NOT NULL,
    generation  INTEGER NOT NULL CHECK (generation >= 0),
    -- Which key encrypted the row ("k" + 8 hex of its SHA-256), so a key
    -- mismatch is reported as such rather than as tampering.
    key_id      TEXT,
    -- AES-256-GCM: 96-bit random nonce; ciphertext includes the 16-byte tag.
    nonce       BLOB,
    ciphertext  BLOB,
    expires_at  TEXT,
    obtained_at TEXT,
    user_id     TEXT,
    app_expiry  TEXT,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (broker, account, api),
    -- A session is either wholly present or wholly forgotten.
    CHECK ((ciphertext IS NULL) = (nonce IS NULL)
       AND (ciphertext IS NULL) = (key_id IS NULL)
       AND (ciphertext IS NULL) = (expires_at IS NULL)
       AND (ciphertext IS NULL) = (obtained_at IS NULL))
) STRICT;

-- What happened to which session, for operators. Never holds secrets.
-- AUTOINCREMENT so ids never repeat after pruning: "newest first" is id order.
CREATE TABLE audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    broker      TEXT    NOT NULL,
    account     TEXT    NOT NULL,
    api         TEXT    NOT NULL,
    generation  INTEGER,
    event       TEXT    NOT NULL,
    detail      TEXT    NOT NULL
) STRICT;

CREATE INDEX audit_at ON audit (at);
