//! Every answer shape of the facts file, normalised and classified: login
//! answers into `LoginFailure`, session calls into `Class`, client reports
//! into `Report`.

use serde_json::{Value, json};

use super::errors::*;
use crate::brokers::Report;

fn n(status: u16, body: Value) -> Normalized {
    normalize(status, Some(&body), "")
}

fn class(status: u16, body: Value) -> Class {
    classify(&n(status, body))
}

fn gateway(code: &str, message: &str) -> Value {
    json!({"success": false, "message": message, "errorCode": code, "data": ""})
}

fn envelope(code: &str, message: &str) -> Value {
    json!({"status": false, "message": message, "errorcode": code, "data": null})
}

fn strings(code: &str, message: &str) -> Value {
    json!({"status": "false", "message": message, "errorcode": code, "data": "null"})
}

#[test]
fn both_envelopes_normalise_with_bools_or_strings() {
    let a = n(200, envelope("AB1050", "Invalid totp"));
    assert_eq!(
        (a.ok, a.code.as_deref(), a.to_string().as_str()),
        (Some(false), Some("AB1050"), "[AB1050] Invalid totp")
    );
    let b = n(200, strings("AB1007", "Login Id or password is invalid"));
    assert_eq!((b.ok, b.code.as_deref()), (Some(false), Some("AB1007")));
    let c = n(401, gateway("AG8001", "Invalid Token"));
    assert_eq!((c.ok, c.code.as_deref()), (Some(false), Some("AG8001")));
    let d = n(200, json!({"success": "TRUE", "data": {}}));
    assert_eq!(d.ok, Some(true));
    let e = n(
        200,
        json!({"status": true, "message": "SUCCESS", "errorcode": ""}),
    );
    assert_eq!((e.ok, e.code), (Some(true), None), "an empty code is none");
    let f = n(500, json!({"errorCode": 123}));
    assert_eq!(f.to_string(), "[123] HTTP 500 without a message");
    let text = normalize(403, None, "Access denied because of exceeding access rate");
    assert!(
        !text.json && text.message.contains("exceeding access rate"),
        "{text}"
    );
    assert_eq!(
        normalize(502, None, "").message,
        "HTTP 502 with an empty body"
    );
    // A JSON array or string is not an envelope.
    assert!(!normalize(200, Some(&json!(["x"])), "[\"x\"]").json);
}

#[test]
fn dead_session_shapes_at_any_status() {
    for code in ["AG8001", "AG8002", "AG8003"] {
        for status in [200, 401, 403] {
            assert_eq!(
                class(status, gateway(code, "x")),
                Class::DeadSession,
                "{code} {status}"
            );
        }
    }
    assert_eq!(
        class(200, envelope("AB1010", "AMX Session Expired")),
        Class::DeadSession
    );
    assert_eq!(
        class(200, strings("AB1011", "Client not login")),
        Class::DeadSession
    );
    // Lower-case codes and messages alone (clients retype them).
    assert_eq!(
        class(200, json!({"errorcode": "ag8002"})),
        Class::DeadSession
    );
    assert_eq!(
        class(200, json!({"message": "Invalid Token"})),
        Class::DeadSession
    );
    assert_eq!(class(401, json!({})), Class::DeadSession);
    for code in ["AB8050", "AB8051"] {
        assert_eq!(class(200, envelope(code, "x")), Class::RefreshDead);
    }
    assert_eq!(
        class(200, json!({"message": "Refresh Token Expired"})),
        Class::RefreshDead,
        "not the jwt's expiry"
    );
}

#[test]
fn login_answers_classify() {
    let ok = json!({"status": true, "message": "SUCCESS", "errorcode": "",
        "data": {"jwtToken": "j", "refreshToken": "r", "feedToken": "f"}});
    assert_eq!(classify_login(200, Some(&ok), "").unwrap()["jwtToken"], "j");
    let no_jwt = json!({"status": true, "data": {"refreshToken": "r"}});
    assert!(matches!(
        classify_login(200, Some(&no_jwt), ""),
        Err(LoginFailure::Transient(_))
    ));

    let totp = envelope("AB1050", "Invalid totp");
    assert!(
        matches!(classify_login(200, Some(&totp), ""), Err(LoginFailure::Totp(m)) if m == "[AB1050] Invalid totp")
    );

    let rejected = [
        (strings("AB1007", "Login Id or password is invalid"), "pin"),
        (envelope("AB1000", "Invalid Email Or Password"), "pin"),
        (envelope("AB1001", "Invalid Email"), "pin"),
        (envelope("AB1002", "Invalid Password Length"), "pin"),
        (envelope("AB1006", "Client Is Block For Trading"), "blocked"),
        (envelope("AB1032", "User Not Found"), "client_code"),
        (gateway("AG8004", "Invalid API Key"), "API key"),
        (
            json!({"status": false, "message": "Something odd", "errorcode": "AB9999"}),
            "rejected",
        ),
    ];
    for (body, hint) in rejected {
        let got = classify_login(200, Some(&body), "");
        assert!(
            matches!(&got, Err(LoginFailure::Rejected(m)) if m.contains(hint)),
            "{body}: {got:?}"
        );
    }

    let not_allowed = envelope(
        "",
        "LoginByPassword is not allowed. Please switch to Login by MPIN now.",
    );
    assert!(
        matches!(classify_login(200, Some(&not_allowed), ""), Err(LoginFailure::Config(m)) if m.contains("client code") && m.contains("enable-totp"))
    );
    let header =
        json!({"status": false, "message": "Invalid Header - X-MACAddress", "errorcode": ""});
    assert!(matches!(
        classify_login(400, Some(&header), ""),
        Err(LoginFailure::Config(_))
    ));

    let transient = [
        (
            200,
            Some(envelope(
                "AB1004",
                "Something Went Wrong, Please Try After Sometime",
            )),
            "",
        ),
        (200, Some(envelope("AB2000", "Error not specified")), ""),
        (
            200,
            Some(envelope(
                "AB2001",
                "Internal Error, Please try after sometime",
            )),
            "",
        ),
        (
            503,
            Some(envelope(
                "AB1004",
                "Something Went Wrong, Please Try After Sometime",
            )),
            "",
        ),
        (403, None, "Access denied because of exceeding access rate"),
        (
            200,
            None,
            "<html><head><title>Request Rejected</title></head><body>The requested URL was rejected. Your support ID is: 123</body></html>",
        ),
        (502, None, "<html><body>502 Bad Gateway</body></html>"),
        (429, Some(json!({"message": "Too many requests"})), ""),
        (500, Some(json!({})), ""),
        (200, None, ""),
        // A dead-token answer to a call without a token: the gateway, not a verdict.
        (200, Some(gateway("AG8001", "Invalid Token")), ""),
    ];
    for (status, body, raw) in transient {
        let got = classify_login(status, body.as_ref(), raw);
        assert!(
            matches!(got, Err(LoginFailure::Transient(_))),
            "{status} {body:?} {raw}: {got:?}"
        );
    }
}

#[test]
fn reports_classify_dead_ip_or_transient() {
    let dead = [
        (Some(200), gateway("AG8001", "Invalid Token").to_string()),
        (Some(401), gateway("AG8002", "Token Expired").to_string()),
        (None, gateway("AG8003", "Token missing").to_string()),
        (
            Some(200),
            envelope("AB1010", "AMX Session Expired").to_string(),
        ),
        (Some(200), strings("AB1011", "Client not login").to_string()),
        (
            Some(200),
            envelope("AB8050", "Invalid Refresh Token").to_string(),
        ),
        (
            Some(200),
            envelope("AB8051", "Refresh Token Expired").to_string(),
        ),
        (None, "Invalid Token".to_string()),
        // WebSocket 2.0's x-error-message, and the order WebSocket's codes.
        (Some(401), "Invalid Header - Invalid Auth token".to_string()),
        (Some(401), "Invalid Header - Invalid Feed Token".to_string()),
        (Some(401), String::new()),
        (Some(403), "Token Expired".to_string()),
    ];
    for (status, reason) in dead {
        let got = super::classify_report(status, &reason);
        assert!(
            matches!(got, Report::DeadSession(_)),
            "{status:?} {reason}: {got:?}"
        );
    }
    let alive = [
        (
            Some(403),
            "Access denied because of exceeding access rate".to_string(),
        ),
        (
            Some(200),
            "<html><title>Request Rejected</title></html>".to_string(),
        ),
        (
            Some(200),
            envelope("AB1004", "Something Went Wrong, Please Try After Sometime").to_string(),
        ),
        (Some(503), String::new()),
        (Some(401), "Invalid Header - Invalid API Key".to_string()),
        (
            Some(401),
            "Invalid Header - Invalid Client Code".to_string(),
        ),
        (Some(429), "connection limit exceeded".to_string()),
        (
            Some(200),
            envelope("AB4008", "Order rejected: insufficient funds").to_string(),
        ),
        (None, String::new()),
    ];
    for (status, reason) in alive {
        let got = super::classify_report(status, &reason);
        assert!(
            matches!(got, Report::Transient(_)),
            "{status:?} {reason}: {got:?}"
        );
    }
    let ip = super::classify_report(
        Some(200),
        &envelope(
            "",
            "Order not allowed from this IP: use your registered static IP",
        )
        .to_string(),
    );
    assert!(matches!(ip, Report::IpNotAllowed(_)), "{ip:?}");
    assert!(
        matches!(
            super::classify_report(Some(200), "Ship it"),
            Report::Transient(_)
        ),
        "'ship' is no IP"
    );
}
