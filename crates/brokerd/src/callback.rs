//! The optional callback listener: the redirect URL registered with Zerodha
//! and Breeze. The browser lands here after a person logs in; the listener
//! checks `state` (Zerodha), completes the exchange through the slot, and
//! shows a short page with the outcome. It never echoes or logs the token.
//!
//! Routes (`{account}` may be left out when the broker has one account):
//! - `GET /callback/zerodha/{account}?request_token=..&status=success&state=..`
//! - `GET|POST /callback/breeze/{account}` with `API_Session` (form field or
//!   query) or `apisession` (query or form field)

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, RawForm, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::secret::Secret;
use crate::session::{ErrorCode, Registry, RequestError, Slot};

/// What the handlers share.
#[derive(Clone)]
struct Ctx {
    registry: Arc<Registry>,
    /// How long a submission waits for one already being exchanged.
    wait: Duration,
}

/// Binds the listener (before READY, so a taken port stops the start with
/// a clear error).
pub async fn bind(addr: std::net::SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen for login callbacks on {addr}: {e}; pick a free port in [callback] listen"
        )
    })
}

/// Serves until `cancel`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    wait: Duration,
    cancel: CancellationToken,
) {
    let app = Router::new()
        .route("/callback/zerodha", get(zerodha_only))
        .route("/callback/zerodha/{account}", get(zerodha))
        .route("/callback/breeze", get(breeze_only).post(breeze_only))
        .route("/callback/breeze/{account}", get(breeze).post(breeze))
        .with_state(Ctx { registry, wait });
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "login callback listener ready");
    }
    let stop = cancel.clone();
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
    {
        warn!(error = %e, "login callback listener failed");
    }
}

type Params = HashMap<String, String>;

async fn zerodha(
    State(ctx): State<Ctx>,
    Path(account): Path<String>,
    Query(q): Query<Params>,
) -> Response {
    zerodha_for(ctx, Some(account), q).await
}

async fn zerodha_only(State(ctx): State<Ctx>, Query(q): Query<Params>) -> Response {
    zerodha_for(ctx, None, q).await
}

async fn zerodha_for(ctx: Ctx, account: Option<String>, q: Params) -> Response {
    let slot = match ctx.registry.find("zerodha", account.as_deref(), None) {
        Ok(s) => s,
        Err(e) => return page(StatusCode::NOT_FOUND, "Unknown account", &e.message),
    };
    if let Some(status) = q.get("status").filter(|s| *s != "success") {
        return page(
            StatusCode::BAD_REQUEST,
            "Login not completed",
            &format!(
                "Kite reported status {status:?} for {}; log in again.",
                slot.key()
            ),
        );
    }
    let Some(token) = q
        .get("request_token")
        .filter(|t| crate::session::plausible_submission(t))
    else {
        return page(
            StatusCode::BAD_REQUEST,
            "No request token",
            "This address is where Kite sends the browser after a login; it needs request_token.",
        );
    };
    // Kite passes `redirect_params` back verbatim: brokerd's login links
    // carry a single-use state, and a redirect without it was not started
    // by one of them.
    let Some(state) = q.get("state") else {
        return page(
            StatusCode::BAD_REQUEST,
            "Login link not from brokerd",
            &format!(
                "The redirect carries no state. Open the login link brokerd gives (`brokerctl login-url zerodha --account {}` \
                 or the auth_required alert), not Kite's bare login page.",
                slot.key().account
            ),
        );
    };
    complete(&ctx, &slot, Secret::new(token.as_str()), Some(state)).await
}

async fn breeze(
    State(ctx): State<Ctx>,
    Path(account): Path<String>,
    Query(q): Query<Params>,
    form: RawForm,
) -> Response {
    breeze_for(ctx, Some(account), q, form).await
}

async fn breeze_only(State(ctx): State<Ctx>, Query(q): Query<Params>, form: RawForm) -> Response {
    breeze_for(ctx, None, q, form).await
}

async fn breeze_for(ctx: Ctx, account: Option<String>, q: Params, form: RawForm) -> Response {
    let slot = match ctx.registry.find("breeze", account.as_deref(), None) {
        Ok(s) => s,
        Err(e) => return page(StatusCode::NOT_FOUND, "Unknown account", &e.message),
    };
    let form: Params = form_pairs(&form.0);
    let key = [&form, &q].into_iter().find_map(|p| {
        p.iter()
            .find(|(k, _)| {
                matches!(
                    k.to_ascii_lowercase().as_str(),
                    "api_session" | "apisession"
                )
            })
            .map(|(_, v)| v.trim().to_string())
    });
    let Some(key) = key.filter(|k| crate::session::plausible_submission(k)) else {
        return page(
            StatusCode::BAD_REQUEST,
            "No session key",
            "This address is where ICICI sends the browser after a login; it needs API_Session.",
        );
    };
    complete(&ctx, &slot, Secret::new(key), None).await
}

/// Form bodies are small `a=b&c=d` pairs; parsed with the URL crate that
/// reqwest already brings.
fn form_pairs(body: &[u8]) -> Params {
    reqwest::Url::parse("http://form.invalid/")
        .map(|mut u| {
            u.set_query(Some(&String::from_utf8_lossy(body)));
            u.query_pairs().into_owned().collect()
        })
        .unwrap_or_default()
}

async fn complete(
    ctx: &Ctx,
    slot: &Arc<Slot>,
    submission: Secret,
    state: Option<&str>,
) -> Response {
    let key = slot.key().clone();
    info!(broker = %key.broker, account = %key.account, submission = %submission.fingerprint(),
          "browser login arrived at the callback");
    match slot.submit(submission, state, ctx.wait).await {
        Ok(live) => {
            let user = live.session.meta.user_id.as_deref().unwrap_or("?");
            page(
                StatusCode::OK,
                "Logged in",
                &format!(
                    "{}/{} is logged in as {user}. The session is valid until {} (generation {}). \
                     Every waiting program has it now; you can close this tab.",
                    key.broker,
                    key.account,
                    ist(live.expires_at()),
                    live.generation
                ),
            )
        }
        Err(e) if e.code == ErrorCode::StoreUnavailable => page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Login not used: brokerd cannot store it",
            &store_unavailable_text(&key, &e),
        ),
        Err(e) => {
            let status = match e.code {
                ErrorCode::BadRequest | ErrorCode::LoginFailed => StatusCode::BAD_REQUEST,
                ErrorCode::LockedOut => StatusCode::FORBIDDEN,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            page(status, "Login failed", &failure_text(&e))
        }
    }
}

/// The page of a submission refused before its exchange because the store
/// cannot take a session: what happened, that the login was kept, and when
/// to come back.
fn store_unavailable_text(key: &crate::brokers::SessionKey, e: &RequestError) -> String {
    let (what, broker, lasts) = match key.broker {
        crate::brokers::BrokerId::Zerodha => (
            "request token",
            "Kite",
            "Kite's request tokens expire a few minutes after the login",
        ),
        crate::brokers::BrokerId::Breeze => {
            ("session key", "ICICI", "ICICI's session keys expire too")
        }
        // No browser login for these; kept exhaustive on purpose.
        crate::brokers::BrokerId::Jainam
        | crate::brokers::BrokerId::KotakNeo
        | crate::brokers::BrokerId::AngelOne => ("login", "the broker", "logins expire"),
    };
    format!(
        "brokerd cannot store a session right now (disk full?), so your login was not used: the {what} was \
         not sent to {broker} and is still unspent. Try this same page again (reload) after the operator has \
         freed space; {lasts}, so if it says the login expired, log in again with the link. Details: {} ({})",
        e.message,
        e.code.as_str()
    )
}

fn failure_text(e: &RequestError) -> String {
    format!("{} ({})", e.message, e.code.as_str())
}

fn ist(t: chrono::DateTime<chrono::Utc>) -> String {
    t.with_timezone(&crate::brokers::ist::offset())
        .format("%Y-%m-%d %H:%M IST")
        .to_string()
}

fn page(status: StatusCode, title: &str, message: &str) -> Response {
    let body = format!("<p>{}</p>", escape(message));
    (status, Html(shell(title, &body))).into_response()
}

fn shell(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"referrer\" content=\"no-referrer\">\
         <title>{t}</title></head><body><h1>{t}</h1>{body}</body></html>",
        t = escape(title)
    )
}

/// HTML-escapes text (messages can quote what a broker or a URL said).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn parses_form_bodies() {
        let p = form_pairs(b"API_Session=1234567&x=a%2Bb");
        assert_eq!(p["API_Session"], "1234567");
        assert_eq!(p["x"], "a+b");
        assert!(form_pairs(b"").is_empty());
    }
}
