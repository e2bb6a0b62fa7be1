-- brokerd store schema, version 4: credentials the broker rejected.
--
-- When a broker rejects a session's credentials (a wrong secret, an invalid
-- app key) the slot goes to locked_out and must never send the same
-- credentials again, not even after a restart: brokers lock accounts after
-- a few wrong attempts. Only a fingerprint of what was rejected is kept
-- (12 hex digits of a SHA-256 over the account's hosts, identities and the
-- fingerprints of its secrets), never a secret. `message` is the broker's
-- answer as the lock-out reported it (no secret), `rejected_at` unix
-- milliseconds. The row goes when a login succeeds or the credentials change.
CREATE TABLE rejections (
    broker      TEXT    NOT NULL,
    account     TEXT    NOT NULL,
    api         TEXT    NOT NULL,
    fingerprint TEXT    NOT NULL,
    rejected_at INTEGER NOT NULL,
    message     TEXT    NOT NULL,
    PRIMARY KEY (broker, account, api)
) STRICT;
