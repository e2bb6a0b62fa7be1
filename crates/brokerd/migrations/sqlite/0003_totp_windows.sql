-- brokerd store schema, version 3: the last TOTP window used per account.
--
-- A window is written here, and committed, before the code of that window
-- leaves the daemon: a daemon killed while a login waits for its answer
-- leaves no session behind, and without this row the restarted daemon
-- would send the same window's code again. Only the window number (Unix
-- time / 30) is kept, never the code or the seed. `used_at` is unix
-- milliseconds, for operators.
CREATE TABLE totp_windows (
    broker      TEXT    NOT NULL,
    account     TEXT    NOT NULL,
    last_window INTEGER NOT NULL CHECK (last_window >= 0),
    used_at     INTEGER NOT NULL,
    PRIMARY KEY (broker, account)
) STRICT;
