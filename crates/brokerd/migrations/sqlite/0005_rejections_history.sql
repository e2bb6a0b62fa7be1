-- brokerd store schema, version 5: every rejected credential set, not only
-- the last one.
--
-- Version 4 kept one row per session, so an operator who tried a second
-- wrong secret and then went back to the first made the daemon send the
-- first one again (its rejection had been overwritten). Now each rejected
-- fingerprint has its own row, all of them kept until a login succeeds.
CREATE TABLE rejections_v5 (
    broker      TEXT    NOT NULL,
    account     TEXT    NOT NULL,
    api         TEXT    NOT NULL,
    fingerprint TEXT    NOT NULL,
    rejected_at INTEGER NOT NULL,
    message     TEXT    NOT NULL,
    PRIMARY KEY (broker, account, api, fingerprint)
) STRICT;
INSERT INTO rejections_v5 (broker, account, api, fingerprint, rejected_at, message)
    SELECT broker, account, api, fingerprint, rejected_at, message FROM rejections;
DROP TABLE rejections;
ALTER TABLE rejections_v5 RENAME TO rejections;
