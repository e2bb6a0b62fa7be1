-- Space held for the next session save of each slot (Store::reserve_session).
-- Before a login, the daemon durably writes `padding` (far larger than a
-- session row) and rewinds the WAL, so the save that follows the login
-- overwrites WAL space already on disk: a login is only spent when its
-- session can be kept. Replaced on every reservation; holds no secrets.
CREATE TABLE reservations (
    broker      TEXT    NOT NULL,
    account     TEXT    NOT NULL,
    api         TEXT    NOT NULL,
    padding     BLOB    NOT NULL,
    reserved_at INTEGER NOT NULL,
    PRIMARY KEY (broker, account, api)
) STRICT;
