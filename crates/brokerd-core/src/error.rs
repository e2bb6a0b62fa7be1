//! How a broker call failed, and what a client's report of a rejection
//! means: the classifications the session machine branches on.

/// Why a broker call failed, split the way the session slot must branch.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    /// Network trouble, timeouts, 5xx, 429, non-JSON bodies: retry with backoff.
    #[error("{0}")]
    Transient(String),
    /// The broker answered HTTP 429: transient like [`Self::Transient`],
    /// and the daemon slows its calls to that host (`session/pacing`).
    #[error("{0}")]
    RateLimited(String),
    /// The broker rejected the credentials (wrong secret, invalid app key):
    /// never retried automatically, because brokers lock accounts.
    #[error("{0}")]
    Rejected(String),
    /// The broker says the session token is dead.
    #[error("{0}")]
    DeadSession(String),
    /// A one-time code (Kotak's TOTP) was rejected twice: locked out like
    /// `Rejected`, but an operator's `login` may try again with the same
    /// settings, because a new window's code is not the code that was
    /// rejected (and the cause may have been the clock, not the seed).
    #[error("{0}")]
    CodeRejected(String),
    /// The request cannot work as configured (wrong host or prefix, API not
    /// enabled): needs an operator, like a rejection, but says so.
    #[error("{0}")]
    Config(String),
    /// What a person submitted from the browser login (Zerodha
    /// `request_token`, Breeze `API_Session`) was refused: used, expired,
    /// mistyped, or a login as the wrong user. Nothing to retry: the person
    /// logs in again.
    #[error("{0}")]
    BadSubmission(String),
}

impl BrokerError {
    /// True when backing off and trying again can help.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Transient(_) | Self::RateLimited(_))
    }

    /// The message, without the classification.
    pub fn message(&self) -> &str {
        match self {
            Self::Transient(m)
            | Self::RateLimited(m)
            | Self::Rejected(m)
            | Self::CodeRejected(m)
            | Self::DeadSession(m)
            | Self::Config(m)
            | Self::BadSubmission(m) => m,
        }
    }
}

/// What a client's report of a broker rejection means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// The session is dead: re-login, fenced by generation.
    DeadSession(String),
    /// An IP whitelisting rule; a new login cannot help.
    IpNotAllowed(String),
    /// The session is bound to the IP it was created from and this is
    /// another one (Kotak `1037`): a session restored from the store may
    /// have been created elsewhere, so one fresh login may help; for a
    /// session this process created it cannot.
    SessionIpMismatch(String),
    /// A temporary broker failure; the session itself is fine.
    Transient(String),
    /// Ambiguous (Breeze `Invalid Checksum`): ask the broker whether the
    /// session is alive before declaring it dead.
    Recheck(String),
}
