//! The optional HTTP endpoint for monitoring (`[http] listen`): `GET
//! /metrics` is the Prometheus text of the `metrics` operation, every
//! session included; `GET /healthz` answers 200 when every session is
//! usable or waiting as expected, 503 with the reasons otherwise. Neither
//! ever shows a token, a secret or a login link: the endpoint has no
//! authentication, so it carries nothing a session could be built from.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::server::Shared;
use crate::session::{SlotStatus, State as SlotState};

/// Binds the listener before the daemon reports ready, so a taken port
/// stops the start instead of surfacing when Prometheus finds nothing.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen for metrics on {addr}: {e}; pick a free port in [http] listen"
        )
    })
}

/// Serves until `cancel`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(shared);
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "metrics and health endpoint ready");
    }
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await
    {
        warn!(error = %e, "metrics and health endpoint failed");
    }
}

fn statuses(shared: &Shared) -> Vec<SlotStatus> {
    shared.registry.slots().iter().map(|s| s.status()).collect()
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    (
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        shared
            .metrics
            .render(&statuses(&shared), &shared.registry.pacer().hosts()),
    )
        .into_response()
}

/// Whether a session in `state` is as it should be. Waiting for a person
/// is expected (Zerodha and Breeze need a browser login every day), and so
/// is a session nobody has asked for yet; a failing login, a lock-out, a
/// conflict or a full store need someone.
pub fn healthy(state: SlotState) -> bool {
    match state {
        SlotState::Empty | SlotState::Active | SlotState::Refreshing | SlotState::AuthRequired => {
            true
        }
        SlotState::Backoff
        | SlotState::LockedOut
        | SlotState::Conflict
        | SlotState::StoreUnavailable => false,
    }
}

async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    let all = statuses(&shared);
    let unhealthy: Vec<_> = all
        .iter()
        .filter(|s| !healthy(s.state))
        .map(|s| {
            json!({
                "broker": s.key.broker.as_str(),
                "account": s.key.account,
                "api": s.key.api.as_str(),
                "state": s.state.as_str(),
                // Error messages name problems and fixes, never secrets
                // (the same text `status` shows).
                "reason": s.last_error.as_ref().map(|(_, message)| message),
            })
        })
        .collect();
    let (code, status) = if unhealthy.is_empty() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unhealthy")
    };
    let body = json!({"status": status, "sessions": all.len(), "unhealthy": unhealthy});
    (code, axum::Json(body)).into_response()
}
