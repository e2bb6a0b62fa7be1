//! Every answer body the facts file lists, in one place: the documented
//! envelope (booleans, or the docs' failure sample in strings), the
//! gateway's `success`/`errorCode` shape, the plain-text rate limit and the
//! HTML pages.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{AngelFail, DeadCode};

/// A JSON answer.
pub(super) fn reply(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

/// `{"status":true,"message":"SUCCESS","errorcode":"","data":…}`.
pub(super) fn success(data: Value) -> Response {
    reply(
        StatusCode::OK,
        json!({"status": true, "message": "SUCCESS", "errorcode": "", "data": data}),
    )
}

/// The documented failure envelope with booleans and `data: null`.
pub(super) fn failure(status: StatusCode, code: &str, message: &str) -> Response {
    reply(
        status,
        json!({"message": message, "errorcode": code, "status": false, "data": null}),
    )
}

/// The docs' failure sample: the same envelope in strings.
pub(super) fn failure_strings(code: &str, message: &str) -> Response {
    reply(
        StatusCode::OK,
        json!({"status": "false", "message": message, "errorcode": code, "data": "null"}),
    )
}

/// The API gateway's shape.
pub(super) fn gateway(status: StatusCode, code: &str, message: &str) -> Response {
    reply(
        status,
        json!({"success": false, "message": message, "errorCode": code, "data": ""}),
    )
}

/// `AB1050`, the answer to a wrong, stale or reused TOTP.
pub(super) fn invalid_totp() -> Response {
    failure(StatusCode::OK, "AB1050", "Invalid totp")
}

/// `AB1004`, Angel's catch-all temporary failure, at `status`.
pub(super) fn went_wrong(status: StatusCode) -> Response {
    failure(
        status,
        "AB1004",
        "Something Went Wrong, Please Try After Sometime",
    )
}

/// A dead token in the shape of `code`: AG codes in the gateway shape at
/// `status`, AB codes in the documented envelope at HTTP 200 (`AB1011` in
/// the docs' strings, so both envelopes are exercised).
pub(super) fn dead(code: DeadCode, status: StatusCode) -> Response {
    let (c, m) = code.code_and_message();
    match code {
        DeadCode::Ag8001 | DeadCode::Ag8002 | DeadCode::Ag8003 => gateway(status, c, m),
        DeadCode::Ab1010 => failure(StatusCode::OK, c, m),
        DeadCode::Ab1011 => failure_strings(c, m),
    }
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// What nginx answers for a path it does not serve.
pub(super) fn not_found_page() -> Response {
    html(
        StatusCode::NOT_FOUND,
        "<html><head><title>404 Not Found</title></head><body><center><h1>404 Not Found</h1>\
         </center><hr><center>nginx</center></body></html>"
            .into(),
    )
}

/// The answer an injected fault stands for; `None` for the faults that
/// are not a fixed answer (`Timeout`, `WrongTotp`), which the endpoint
/// handles itself.
pub(super) fn injected(fail: &AngelFail) -> Option<Response> {
    Some(match fail {
        AngelFail::Status(code) => {
            went_wrong(StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        }
        AngelFail::Ab1004 => went_wrong(StatusCode::OK),
        AngelFail::Ab2000 => failure(StatusCode::OK, "AB2000", "Error not specified"),
        AngelFail::Ab2001 => failure(
            StatusCode::OK,
            "AB2001",
            "Internal Error, Please try after sometime",
        ),
        AngelFail::RateLimit => (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "text/plain")],
            "Access denied because of exceeding access rate",
        )
            .into_response(),
        AngelFail::Waf => {
            let id: u64 = rand::random();
            html(
                StatusCode::OK,
                format!(
                    "<html><head><title>Request Rejected</title></head><body>The requested URL \
                     was rejected. Please consult with your administrator.<br><br>Your support \
                     ID is: {id}<br><br><a href='javascript:history.back();'>[Go Back]</a>\
                     </body></html>"
                ),
            )
        }
        AngelFail::BadGateway => html(
            StatusCode::BAD_GATEWAY,
            "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad \
             Gateway</h1></center></body></html>"
                .into(),
        ),
        AngelFail::NotFound => not_found_page(),
        AngelFail::BadCredentials => failure_strings("AB1007", "Login Id or password is invalid"),
        AngelFail::Blocked => failure(StatusCode::OK, "AB1006", "Client Is Block For Trading"),
        AngelFail::UserNotFound => failure(StatusCode::OK, "AB1032", "User Not Found"),
        AngelFail::BadApiKey => gateway(StatusCode::OK, "AG8004", "Invalid API Key"),
        AngelFail::PasswordLoginNotAllowed => failure(
            StatusCode::OK,
            "",
            "LoginByPassword is not allowed. Please switch to Login by MPIN now.",
        ),
        AngelFail::RefreshInvalid => invalid_refresh(),
        AngelFail::RefreshExpired => failure(StatusCode::OK, "AB8051", "Refresh Token Expired"),
        AngelFail::Dead(code) => dead(*code, StatusCode::OK),
        AngelFail::Timeout(_) | AngelFail::WrongTotp => return None,
    })
}

/// `AB8050`.
pub(super) fn invalid_refresh() -> Response {
    failure(StatusCode::OK, "AB8050", "Invalid Refresh Token")
}
