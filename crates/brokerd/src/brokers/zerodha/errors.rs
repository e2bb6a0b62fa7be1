//! Kite's error envelope `{"status":"error","message":..,"error_type":..}`,
//! read in one place and classified the way each call must branch.
//! Shapes: `shared/brokers/zerodha.md`.

use std::fmt;

use serde_json::Value;

use crate::brokers::http::Answer;
use crate::brokers::{BrokerError, Report};

/// Longest piece of Kite's own message quoted in an error.
const MAX_MESSAGE: usize = 200;

/// A failed (or unrecognised) Kite answer, rendered
/// `HTTP 403 TokenException: Token is invalid or has expired.`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct KiteError {
    /// The HTTP status, when known.
    pub status: Option<u16>,
    /// `error_type`, when the body had one.
    pub error_type: Option<String>,
    /// `message`, or what stands in for it.
    pub message: String,
    /// Whether the body was a JSON object (Kite's envelope or not).
    pub json: bool,
}

impl fmt::Display for KiteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(status) = self.status {
            write!(f, "HTTP {status} ")?;
        }
        if let Some(kind) = &self.error_type {
            write!(f, "{kind}: ")?;
        }
        f.write_str(&self.message)
    }
}

fn clip(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line.chars().take(MAX_MESSAGE).collect()
}

fn from_object(status: Option<u16>, body: &Value) -> KiteError {
    let text = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .map(clip)
            .filter(|s| !s.is_empty())
    };
    KiteError {
        status,
        error_type: text("error_type"),
        message: text("message").unwrap_or_else(|| "no error message".into()),
        json: true,
    }
}

impl KiteError {
    /// Reads an answer that is not a success.
    pub(super) fn read(answer: &Answer) -> Self {
        match answer.json.as_ref().filter(|v| v.is_object()) {
            Some(body) => from_object(Some(answer.status), body),
            None => Self {
                status: Some(answer.status),
                error_type: None,
                message: format!("not a Kite JSON answer, {}", answer.snippet()),
                json: false,
            },
        }
    }

    /// Reads what a client reports: Kite's body as JSON text, or its words.
    pub(super) fn from_report(status: Option<u16>, reason: &str) -> Self {
        match serde_json::from_str::<Value>(reason) {
            Ok(body) if body.is_object() => from_object(status, &body),
            _ => Self {
                status,
                error_type: None,
                message: clip(reason),
                json: false,
            },
        }
    }

    fn is_type(&self, kind: &str) -> bool {
        self.error_type.as_deref() == Some(kind)
    }

    fn lower(&self) -> String {
        self.message.to_ascii_lowercase()
    }

    /// 401 / 403 or a `TokenException`: the token in the request is dead.
    fn token_refused(&self) -> bool {
        matches!(self.status, Some(401 | 403)) || self.is_type("TokenException")
    }

    /// Overload, outage or something that is not Kite answering.
    fn transient(&self) -> bool {
        !self.json || self.status.is_some_and(|s| s == 429 || s >= 500)
    }
}

/// Why `POST /session/token` did not give a session.
pub(super) fn exchange_failure(e: &KiteError) -> BrokerError {
    let lower = e.lower();
    if e.transient() || e.status.is_some_and(|s| s < 400) {
        return BrokerError::Transient(format!(
            "Kite could not exchange the request token right now ({e}); submit a fresh one in a minute"
        ));
    }
    if lower.contains("checksum") {
        return BrokerError::Rejected(format!(
            "Kite rejected the checksum ({e}): api_secret does not belong to this api_key. \
             Fix api_secret in this account's [zerodha] settings to the secret the Kite Connect \
             developer console shows for this app (or fix api_key), then reload and log in again"
        ));
    }
    if lower.contains("invalid `api_key`")
        || (e.is_type("InputException") && lower.contains("api_key"))
    {
        return BrokerError::Rejected(format!(
            "Kite does not accept this api_key ({e}): set api_key in this account's [zerodha] \
             settings to the app's key from the Kite Connect developer console, then reload"
        ));
    }
    if e.token_refused() {
        return BrokerError::BadSubmission(format!(
            "Kite refused the request token ({e}). A request token is single-use and lives only \
             about 5 minutes: open the login URL again, log in, and let the redirect finish \
             within a few minutes"
        ));
    }
    if e.is_type("InputException") || e.status == Some(404) {
        return BrokerError::Config(format!(
            "Kite refused the exchange request itself ({e}); check api_root (Kite's is \
             https://api.kite.trade)"
        ));
    }
    BrokerError::Rejected(format!("Kite refused the login ({e})"))
}

/// Why `GET /user/profile` did not prove the session alive. A 401 / 403
/// counts only with Kite's JSON envelope: an HTML 403 is a proxy or
/// firewall, and a new browser login would not get past it.
pub(super) fn validate_failure(e: &KiteError) -> BrokerError {
    if e.json && e.token_refused() {
        BrokerError::DeadSession(format!(
            "Kite says the session is no longer valid ({e}); a new browser login is needed"
        ))
    } else {
        BrokerError::Transient(format!("Kite could not confirm the session ({e})"))
    }
}

/// What a failed `DELETE /session/token` means: a token Kite already
/// refuses is logged out as far as anyone can tell.
pub(super) fn logout_failure(e: &KiteError) -> Result<(), BrokerError> {
    if e.json && e.token_refused() {
        tracing::debug!(answer = %e, "Kite logout: the token was already dead");
        Ok(())
    } else {
        Err(BrokerError::Transient(format!(
            "Kite could not log the session out ({e})"
        )))
    }
}

/// See [`super::classify_report`].
pub(super) fn report(status: Option<u16>, reason: &str) -> Report {
    let e = KiteError::from_report(status, reason);
    // An HTML page with a 403 is a proxy or firewall speaking, not Kite
    // about the token.
    let html = !e.json && reason.trim_start().starts_with('<');
    // A Kite envelope naming another exception type (PermissionException
    // for a missing subscription, an order endpoint refusing the IP, ...)
    // is about the call, not the token, even at 403.
    let other_type = e.json
        && e.error_type
            .as_deref()
            .is_some_and(|t| t != "TokenException");
    let dead = !html
        && !other_type
        && (e.token_refused()
            || e.lower().contains("incorrect `api_key` or `access_token`")
            || e.message.contains("TokenException"));
    if dead {
        Report::DeadSession(format!("Kite refused the session: {e}"))
    } else {
        Report::Transient(format!(
            "Kite call failed, the session is not in question: {e}"
        ))
    }
}
