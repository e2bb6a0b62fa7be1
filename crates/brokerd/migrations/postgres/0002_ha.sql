-- brokerd store schema for PostgreSQL, version 2: what several daemons
-- sharing one database need (src/store/postgres/ha.rs). PostgreSQL only:
-- an SQLite file serves one daemon, so the SQLite schema has no twin of
-- these. Times we generate ourselves are unix milliseconds on the store's
-- clock (BIGINT), as in version 1.

-- The `[daemon.ha] host` whose daemon saved the session: an address-bound
-- broker's session is only good from that host. NULL for rows saved before
-- this version and by daemons without a host.
ALTER TABLE sessions ADD COLUMN created_by TEXT;

-- One follower's ask of the leader of a session, announced on the
-- `brokerd_requests` channel in the transaction that writes it. The leader
-- claims (deletes) the rows; rows nobody claimed in time are deleted
-- unanswered. A submission's payload is encrypted like a session (same key,
-- AES-256-GCM) and bound to its slot, so it cannot be moved to another row.
CREATE TABLE ha_requests (
    id             BIGSERIAL PRIMARY KEY,
    broker         TEXT    NOT NULL,
    account        TEXT    NOT NULL,
    api            TEXT    NOT NULL,
    kind           TEXT    NOT NULL
                   CHECK (kind IN ('report', 'login', 'operator_login', 'submit')),
    generation     BIGINT  NOT NULL CHECK (generation >= 0),
    min_valid_secs BIGINT  NOT NULL CHECK (min_valid_secs >= 0),
    from_host      TEXT    NOT NULL,
    -- Which key encrypted the payload; NULL with the payload when there is none.
    key_id         TEXT    NULL,
    nonce          BYTEA   NULL,
    -- The encrypted payload (ciphertext includes the 16-byte tag).
    ciphertext     BYTEA   NULL,
    created_at     BIGINT  NOT NULL,
    -- A payload is either wholly present or absent.
    CHECK ((ciphertext IS NULL) = (nonce IS NULL)
       AND (ciphertext IS NULL) = (key_id IS NULL))
);

-- A leader claims one slot's rows, oldest first.
CREATE INDEX ha_requests_slot ON ha_requests (broker, account, api, id);

-- Who leads each slot: the host, its lock connection's server process id
-- and since when. A row outlives its leader; readers only believe it while
-- that process still holds an advisory lock (pg_locks).
CREATE TABLE ha_leaders (
    broker      TEXT    NOT NULL,
    account     TEXT    NOT NULL,
    api         TEXT    NOT NULL,
    host        TEXT    NOT NULL,
    pid         INTEGER NOT NULL,
    since       BIGINT  NOT NULL,
    PRIMARY KEY (broker, account, api)
);
