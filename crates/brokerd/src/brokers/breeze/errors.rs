//! Breeze's answers read in one place: the `{"Success","Status","Error"}`
//! envelope (whose `Status` is in the body, the HTTP status being 200 for
//! most errors), the known error texts, and what a client's report means.
//! Shapes: `shared/brokers/breeze.md`.

use serde_json::Value;

use crate::brokers::http::Answer;

/// A failed Breeze call, by the error texts the daemon must branch on.
/// Each carries a one-line description safe to log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Fault {
    /// `Invalid session.`: the session key is unknown (mistyped, another app's).
    InvalidSession(String),
    /// `Resource not available.` (the SDK's "Session key is expired."):
    /// expired or killed session key, or the daily quota is spent.
    ResourceNotAvailable(String),
    /// `Public Key does not exist.`: the app key is wrong.
    PublicKey(String),
    /// `Authentication Fail :: Invalid Checksum.`: a wrong secret or a dead
    /// session, Breeze does not say which.
    InvalidChecksum(String),
    /// Rate limits, outages, non-JSON bodies, anything unrecognised.
    Transient(String),
}

/// Reads `Success` out of an answer, or says why there is none. `what`
/// names the call in messages.
pub(super) fn read<'a>(what: &str, a: &'a Answer) -> Result<&'a Value, Fault> {
    let Some(body) = a.json.as_ref() else {
        return Err(Fault::Transient(format!(
            "{what}: HTTP {} with a non-JSON answer ({}); Breeze is likely down; a temporary failure",
            a.status,
            redact(&a.snippet())
        )));
    };
    let error = body.get("Error").and_then(Value::as_str).unwrap_or("");
    let error = redact(error);
    if a.status >= 500 || a.status == 429 {
        return Err(Fault::Transient(format!(
            "{what}: HTTP {} ({}); a temporary failure",
            a.status,
            if error.is_empty() {
                "no error text"
            } else {
                &error
            }
        )));
    }
    let status = match body.get("Status") {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    let Some(status) = status else {
        return Err(Fault::Transient(format!(
            "{what}: HTTP {} with JSON that is not Breeze's envelope (no Status)",
            a.status
        )));
    };
    let success = body.get("Success").filter(|s| !s.is_null());
    if let (200, Some(success)) = (status, success) {
        return Ok(success);
    }
    let said = format!("{what}: Breeze answered Status {status} {error:?}");
    let lower = error.to_ascii_lowercase();
    Err(if lower.contains("invalid checksum") {
        Fault::InvalidChecksum(said)
    } else if lower.contains("limit exceed") {
        Fault::Transient(format!("{said} (rate limit); a temporary failure"))
    } else if lower.contains("public key does not exist") {
        Fault::PublicKey(said)
    } else if lower.contains("resource not available") || lower.contains("session key is expired") {
        Fault::ResourceNotAvailable(said)
    } else if lower.contains("invalid session") {
        Fault::InvalidSession(said)
    } else if status == 200 {
        Fault::Transient(format!(
            "{what}: Breeze answered Status 200 without Success"
        ))
    } else {
        Fault::Transient(said)
    })
}

/// A short single-line excerpt of text from outside (a broker's error, a
/// client's report) that cannot carry a credential: runs of 16 or more
/// token-like characters (keys, session tokens, checksums) become `…`.
pub(super) fn redact(text: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.chars().count() >= 16 {
            out.push('…');
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
    {
        if c.is_ascii_alphanumeric() || "+/=_-%^#".contains(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    if out.chars().count() > 160 {
        out = out.chars().take(160).collect::<String>() + "…";
    }
    out
}

/// What a client's report of a rejected Breeze call means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReportClass {
    /// The session is dead: a person must log in again.
    Dead(String),
    /// Ambiguous (a wrong secret or a dead session, a spent quota, or not
    /// recognised): the daemon re-validates with `customerdetails`.
    Recheck(String),
    /// A temporary failure (rate limit, outage); the session is fine.
    Transient(String),
}

/// What a client's report of a rejected Breeze call means: `status` is the
/// HTTP status (or the body's `Status`) it saw, `reason` the body or message.
pub fn classify_report(status: Option<u16>, reason: &str) -> ReportClass {
    let lower = reason.to_lowercase();
    let seen = redact(reason);
    let seen = if seen.is_empty() {
        format!(
            "status {}",
            status.map_or("unknown".into(), |s| s.to_string())
        )
    } else {
        format!("{seen:?}")
    };
    let trimmed = lower.trim_start();
    let html = trimmed.starts_with('<') || lower.contains("<html") || lower.contains("<!doctype");
    if lower.contains("invalid checksum") {
        ReportClass::Recheck(format!(
            "Breeze refused the checksum ({seen}): a wrong secret_key or a dead session; re-validating"
        ))
    } else if lower.contains("session key is expired") || lower.contains("invalid session") {
        ReportClass::Dead(format!("Breeze says the session is dead ({seen})"))
    } else if lower.contains("resource not available") {
        ReportClass::Recheck(format!(
            "Breeze answered {seen}: an expired session or the daily API quota spent; re-validating"
        ))
    } else if lower.contains("limit exceed") {
        ReportClass::Transient(format!("Breeze rate limit ({seen})"))
    } else if html || status.is_some_and(|s| s == 429 || s >= 500) {
        // An HTML page (a proxy, a firewall, an outage) never says anything
        // about the session, whatever its status.
        ReportClass::Transient(format!("Breeze failed temporarily ({seen})"))
    } else if matches!(status, Some(401 | 403)) {
        ReportClass::Recheck(format!(
            "Breeze refused the call ({seen}); re-validating the session"
        ))
    } else {
        ReportClass::Recheck(format!(
            "an unrecognised Breeze rejection ({seen}); re-validating"
        ))
    }
}
