//! The errors a request can get, with the stable codes of the protocol.

use std::fmt;

/// Stable error codes (the public contract of the socket protocol).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request line is not valid.
    BadRequest,
    /// The `op` is not one brokerd knows.
    UnknownOp,
    /// No such broker/account/api configured.
    UnknownAccount,
    /// The peer's uid/gid is not allowed for this account.
    Forbidden,
    /// A person must log in in a browser (interactive brokers).
    AuthRequired,
    /// Credentials were rejected; an operator must act.
    LockedOut,
    /// Sessions keep dying right after login: another program logs in too.
    Conflict,
    /// The login failed (the message says why).
    LoginFailed,
    /// The wait for a session ran out.
    Timeout,
    /// No session can be served right now; retry later.
    Unavailable,
    /// The request line exceeded the size limit.
    TooLarge,
    /// The broker refuses the caller's IP (whitelisting rules); a new login
    /// cannot help.
    IpNotAllowed,
    /// The store cannot take a session (typically a full disk), so no login
    /// is made: it would be spent for nothing. A still-valid session keeps
    /// being served; a submitted browser login was not used.
    StoreUnavailable,
}

impl ErrorCode {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::UnknownOp => "unknown_op",
            Self::UnknownAccount => "unknown_account",
            Self::Forbidden => "forbidden",
            Self::AuthRequired => "auth_required",
            Self::LockedOut => "locked_out",
            Self::Conflict => "conflict",
            Self::LoginFailed => "login_failed",
            Self::Timeout => "timeout",
            Self::Unavailable => "unavailable",
            Self::TooLarge => "too_large",
            Self::IpNotAllowed => "ip_not_allowed",
            Self::StoreUnavailable => "store_unavailable",
        }
    }
}

/// A failed request: code, human message, and when to retry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestError {
    /// Stable code.
    pub code: ErrorCode,
    /// One line for a person; never contains secrets.
    pub message: String,
    /// When retrying can help, how long to wait first.
    pub retry_after_secs: Option<u64>,
    /// For `auth_required`: where a person logs in.
    pub login_url: Option<String>,
}

impl RequestError {
    /// An error with just a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_secs: None,
            login_url: None,
        }
    }

    /// Adds a retry hint, rounded up to whole seconds (at least 1).
    pub fn retry_after(mut self, after: std::time::Duration) -> Self {
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        self.retry_after_secs = Some(secs.max(1));
        self
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for RequestError {}
