//! Kotak Neo's many error shapes, normalised in one place and classified
//! the way the session slot must branch. Shapes: `shared/brokers/kotak_neo.md`.

use serde_json::Value;

/// An error answer reduced to its code and message, rendered `[code] message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Normalized {
    /// HTTP status of the answer.
    pub status: u16,
    /// The broker's code, from whichever field carried it.
    pub code: Option<String>,
    /// The broker's message, from whichever field carried it.
    pub message: String,
}

impl std::fmt::Display for Normalized {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.code {
            Some(code) => write!(f, "[{code}] {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// A JSON scalar as text (codes come as numbers or strings).
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Reads code and message from every known shape: `errMsg`, `message`,
/// `description`, `emsg`, `error[0].message`, `fault.message` for text;
/// `stCode`, `code`, `errorCode`, `error[0].code`, `fault.code` for codes.
pub fn normalize(status: u16, body: Option<&Value>, raw: &str) -> Normalized {
    let Some(body) = body else {
        let excerpt: String = raw
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(80)
            .collect();
        let message = if excerpt.is_empty() {
            format!("HTTP {status} with an empty body")
        } else {
            format!("HTTP {status} with a non-JSON body ({excerpt:?})")
        };
        return Normalized {
            status,
            code: None,
            message,
        };
    };
    let first = body
        .get("error")
        .and_then(Value::as_array)
        .and_then(|a| a.first());
    let fault = body.get("fault");
    let message = ["errMsg", "message", "description", "emsg"]
        .iter()
        .find_map(|k| text(body.get(*k)))
        .or_else(|| text(first.and_then(|e| e.get("message"))))
        .or_else(|| text(fault.and_then(|f| f.get("message"))))
        .unwrap_or_else(|| format!("HTTP {status} without an error message"));
    let code = ["stCode", "code", "errorCode"]
        .iter()
        .find_map(|k| text(body.get(*k)))
        .or_else(|| text(first.and_then(|e| e.get("code"))))
        .or_else(|| text(fault.and_then(|f| f.get("code"))));
    Normalized {
        status,
        code,
        message,
    }
}

/// What an answer to a post-login call means for the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallClass {
    /// The session is dead: re-login (fenced by generation).
    DeadSession,
    /// An IP whitelisting rule (`100008`): re-logging in cannot help.
    IpNotAllowed,
    /// `1037`: the session was created from another IP than this call's.
    SessionIpMismatch,
    /// Try again later; the session may be fine.
    Transient,
    /// Not recognisably any of those.
    Other,
}

/// Classifies the answer to a post-login call (as a client reports it).
pub fn classify_call(n: &Normalized, is_json: bool) -> CallClass {
    let code = n.code.as_deref().unwrap_or("");
    let msg = n.message.to_ascii_lowercase();
    if code == "100008" {
        return CallClass::IpNotAllowed;
    }
    if code == "1037" {
        return CallClass::SessionIpMismatch;
    }
    if matches!(n.status, 401 | 403)
        || matches!(code, "100022" | "900901")
        || msg.contains("invalid jwt token")
        || msg.contains("invalid session")
    {
        return CallClass::DeadSession;
    }
    if !is_json || n.status == 424 || n.status == 429 || n.status >= 500 {
        return CallClass::Transient;
    }
    CallClass::Other
}

/// Why a login step failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoginFailure {
    /// Outage, overload, timeout, non-JSON: back off and retry.
    Transient(String),
    /// The TOTP (or, ambiguously, the mobile number) was rejected: one retry
    /// in the next window is allowed.
    Totp(String),
    /// MPIN, UCC or access token rejected: never retried automatically.
    Rejected(String),
    /// The request itself is malformed: a configuration problem.
    Config(String),
}

/// Which of the two login steps answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// `tradeApiLogin` (mobile, UCC, TOTP).
    Login,
    /// `tradeApiValidate` (MPIN).
    Validate,
}

/// Classifies a login step's answer; `Ok` only when `data.status` is `success`.
pub fn classify_login<'a>(
    step: Step,
    status: u16,
    body: Option<&'a Value>,
    raw: &str,
) -> Result<&'a Value, LoginFailure> {
    let n = normalize(status, body, raw);
    if body.is_none() || status == 424 || status == 429 || status >= 500 {
        return Err(LoginFailure::Transient(format!(
            "Kotak login answered {n} (HTTP {status})"
        )));
    }
    if let Some(data) = body
        .and_then(|b| b.get("data"))
        .filter(|d| d.get("status").and_then(Value::as_str) == Some("success"))
    {
        return Ok(data);
    }
    let msg = n.message.to_ascii_lowercase();
    let code = n.code.as_deref().unwrap_or("");
    let fault = body.is_some_and(|b| b.get("fault").is_some());
    Err(if msg.contains("mpin") {
        LoginFailure::Rejected(format!(
            "the MPIN was rejected ({n}); fix the account's mpin secret. Kotak locks the account after a few wrong MPINs, so brokerd does not retry"
        ))
    } else if msg.contains("ucc") {
        LoginFailure::Rejected(format!(
            "the UCC was rejected ({n}); set ucc to the client code shown in the Neo app profile"
        ))
    } else if fault || code == "900901" {
        LoginFailure::Rejected(format!(
            "the API access token was rejected ({n}); copy it again from the Neo app's Trade API dashboard (resetting it there ends every session)"
        ))
    } else if step == Step::Login && (msg.contains("totp") || msg.contains("otp")) {
        LoginFailure::Totp(n.to_string())
    } else if msg.contains("missing required field") {
        LoginFailure::Config(format!(
            "Kotak refused the login request ({n}); check the account's kotak_neo settings"
        ))
    } else if step == Step::Validate && status == 401 {
        LoginFailure::Rejected(format!(
            "the MPIN step was refused ({n}); check the mpin and the access token"
        ))
    } else if data_without_success(body) {
        LoginFailure::Transient(format!("Kotak login answered without success ({n})"))
    } else {
        LoginFailure::Rejected(format!("Kotak rejected the login ({n})"))
    })
}

/// `data` present but `status` not `success`: an odd answer, not a verdict.
fn data_without_success(body: Option<&Value>) -> bool {
    body.and_then(|b| b.get("data"))
        .is_some_and(Value::is_object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn n(status: u16, body: Value) -> Normalized {
        normalize(status, Some(&body), "")
    }

    #[test]
    fn every_documented_shape_normalises() {
        let cases = [
            (
                json!({"status":"error","message":"Invalid credentials or TOTP.","errorCode":"401"}),
                "[401] Invalid credentials or TOTP.",
            ),
            (
                json!({"stCode":401,"errMsg":"Invalid MPIN","status":"failure"}),
                "[401] Invalid MPIN",
            ),
            (
                json!({"stCode":429,"errMsg":"Invalid UCC","status":"failure"}),
                "[429] Invalid UCC",
            ),
            (
                json!({"error":[{"code":"400","message":"Missing required field 'MobileNumber'"}]}),
                "[400] Missing required field 'MobileNumber'",
            ),
            (
                json!({"stCode":100022,"errMsg":"invalid session token","stat":"Not_Ok"}),
                "[100022] invalid session token",
            ),
            (
                json!({"fault":{"code":900901,"message":"Invalid Credentials","description":"x"}}),
                "[900901] Invalid Credentials",
            ),
            (
                json!({"code":"900901","message":"Invalid Credentials","description":"Invalid JWT token. Make sure"}),
                "[900901] Invalid Credentials",
            ),
            (json!({"emsg":"something odd"}), "something odd"),
            (
                json!({"description":"only a description"}),
                "only a description",
            ),
        ];
        for (body, want) in cases {
            assert_eq!(n(200, body).to_string(), want);
        }
        let html = normalize(502, None, "<html><body>Bad Gateway</body></html>");
        assert!(html.to_string().contains("non-JSON"), "{html}");
    }

    #[test]
    fn calls_classify_into_dead_ip_transient() {
        let dead = [
            n(401, json!({"message":"Invalid session, please re-login"})),
            n(403, json!({})),
            n(
                200,
                json!({"stCode":100022,"errMsg":"invalid session token","stat":"Not_Ok"}),
            ),
            n(
                401,
                json!({"fault":{"code":900901,"message":"Invalid Credentials"}}),
            ),
            n(
                200,
                json!({"code":"900901","message":"Invalid Credentials","description":"Invalid JWT token."}),
            ),
            n(200, json!({"message":"Invalid JWT token"})),
        ];
        for d in dead {
            assert_eq!(classify_call(&d, true), CallClass::DeadSession, "{d}");
        }
        assert_eq!(
            classify_call(
                &n(200, json!({"stCode":100008,"errMsg":"unauthorized"})),
                true
            ),
            CallClass::IpNotAllowed
        );
        assert_eq!(
            classify_call(
                &n(
                    200,
                    json!({"stCode":1037,"errMsg":"session ip doesnt match with reqest ip"})
                ),
                true
            ),
            CallClass::SessionIpMismatch
        );
        assert_eq!(
            classify_call(&n(424, json!({})), true),
            CallClass::Transient
        );
        assert_eq!(
            classify_call(&n(503, json!({})), true),
            CallClass::Transient
        );
        assert_eq!(
            classify_call(&normalize(502, None, "<html>"), false),
            CallClass::Transient
        );
        assert_eq!(
            classify_call(
                &n(200, json!({"stCode":5000,"errMsg":"order rejected"})),
                true
            ),
            CallClass::Other
        );
    }

    #[test]
    fn login_answers_classify() {
        let ok = json!({"data":{"token":"t","sid":"s","status":"success"}});
        assert!(classify_login(Step::Login, 200, Some(&ok), "").is_ok());
        let totp =
            json!({"status":"error","message":"Invalid credentials or TOTP.","errorCode":"401"});
        assert!(matches!(
            classify_login(Step::Login, 401, Some(&totp), ""),
            Err(LoginFailure::Totp(_))
        ));
        let mpin = json!({"stCode":401,"errMsg":"Invalid MPIN","status":"failure"});
        let err = classify_login(Step::Validate, 200, Some(&mpin), "").unwrap_err();
        assert!(
            matches!(&err, LoginFailure::Rejected(m) if m.contains("MPIN") && m.contains("[401] Invalid MPIN")),
            "{err:?}"
        );
        let ucc = json!({"stCode":429,"errMsg":"Invalid UCC","status":"failure"});
        assert!(
            matches!(classify_login(Step::Login, 200, Some(&ucc), ""), Err(LoginFailure::Rejected(m)) if m.contains("UCC"))
        );
        let fault = json!({"fault":{"code":900901,"message":"Invalid Credentials"}});
        assert!(
            matches!(classify_login(Step::Login, 401, Some(&fault), ""), Err(LoginFailure::Rejected(m)) if m.contains("access token"))
        );
        assert!(matches!(
            classify_login(Step::Login, 424, Some(&json!({})), ""),
            Err(LoginFailure::Transient(_))
        ));
        assert!(matches!(
            classify_login(Step::Login, 502, None, "<html>"),
            Err(LoginFailure::Transient(_))
        ));
        let missing =
            json!({"error":[{"code":"400","message":"Missing required field 'MobileNumber'"}]});
        assert!(matches!(
            classify_login(Step::Login, 400, Some(&missing), ""),
            Err(LoginFailure::Config(_))
        ));
    }
}
