-- brokerd store schema for PostgreSQL, version 1: the tables and meaning of
-- the SQLite schema at its version 5 (migrations/sqlite), in PostgreSQL
-- types. The encodings are the same, so one codec (src/store/codec.rs)
-- serves both backends: times we generate ourselves (updated_at, audit.at,
-- reserved_at, used_at, rejected_at) are unix milliseconds (BIGINT), a
-- session's own times RFC 3339 text with nanoseconds, always UTC.

-- One row per session slot. The row outlives a logout: a logout clears the
-- ciphertext and metadata but keeps `generation`, so generations stay
-- monotonic across logout and restart (the upsert refuses a lower one).
CREATE TABLE sessions (
    broker      TEXT    NOT NULL,
    account     TEXT    NOT NULL,
    api         TEXT    NOT NULL,
    generation  BIGINT  NOT NULL CHECK (generation >= 0),
    -- Which key encrypted the row ("k" + 8 hex of its SHA-256).
    key_id      TEXT,
    -- AES-256-GCM: 96-bit random nonce; ciphertext includes the 16-byte tag.
    nonce       BYTEA,
    ciphertext  BYTEA,
    expires_at  TEXT,
    obtained_at TEXT,
    user_id     TEXT,
    app_expiry  TEXT,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (broker, account, api),
    -- A session is either wholly present or wholly forgotten.
    CHECK ((ciphertext IS NULL) = (nonce IS NULL)
       AND (ciphertext IS NULL) = (key_id IS NULL)
       AND (ciphertext IS NULL) = (expires_at IS NULL)
       AND (ciphertext IS NULL) = (obtained_at IS NULL))
);

-- What happened to which session, for operators. Never holds secrets.
-- An identity never reuses a value, so "newest first" is id order.
CREATE TABLE audit (
    id          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          BIGINT  NOT NULL,
    broker      TEXT    NOT NULL,
    account     TEXT    NOT NULL,
    api         TEXT    NOT NULL,
    generation  BIGINT,
    event       TEXT    NOT NULL,
    detail      TEXT    NOT NULL
);

CREATE INDEX audit_at ON audit (at);

-- The last durable write before each login (Store::reserve_session). On
-- PostgreSQL it proves the server takes and commits a write; it cannot hold
-- space for the save (MVCC writes every update anew), so no padding.
CREATE TABLE reservations (
    broker      TEXT    NOT NULL,
    account     TEXT    NOT NULL,
    api         TEXT    NOT NULL,
    reserved_at BIGINT  NOT NULL,
    PRIMARY KEY (broker, account, api)
);

-- The last TOTP window used per account, committed before its code leaves
-- the daemon. The window number only, never the code or the seed.
CREATE TABLE totp_windows (
    broker      TEXT    NOT NULL,
    account     TEXT    NOT NULL,
    last_window BIGINT  NOT NULL CHECK (last_window >= 0),
    used_at     BIGINT  NOT NULL,
    PRIMARY KEY (broker, account)
);

-- Every credential set the broker rejected since the last successful login,
-- as a fingerprint (never a secret).
CREATE TABLE rejections (
    broker      TEXT    NOT NULL,
    account     TEXT    NOT NULL,
    api         TEXT    NOT NULL,
    fingerprint TEXT    NOT NULL,
    rejected_at BIGINT  NOT NULL,
    message     TEXT    NOT NULL,
    PRIMARY KEY (broker, account, api, fingerprint)
);
