//! The daily reminder of the brokers that need a person to log in in a
//! browser every day (Zerodha Kite, ICICI Breeze).

use std::time::Duration;

use chrono::NaiveTime;

/// When to remind the operator of an interactive account's daily login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reminder {
    /// Time of day (Asia/Kolkata) at which an account still waiting for its
    /// browser login is announced again (`auth_required` event and
    /// `notify_command`), e.g. before the market opens. `None`: no reminder.
    pub remind_at: Option<NaiveTime>,
    /// How long before a session's cut-off the `expiring` event is sent.
    pub expiring_notice: Duration,
}
