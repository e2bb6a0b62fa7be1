//! The KiteTicker websocket (`wss://ws.kite.trade?api_key=..&access_token=..`
//! in production; here `ws://127.0.0.1:PORT/?api_key=..&access_token=..`).
//!
//! The upgrade is accepted only for an access token that is live for the
//! app of `api_key`; any other is refused before the upgrade with HTTP 403
//! and Kite's `TokenException` envelope (`shared/brokers/zerodha.md`: "a dead
//! token makes the upgrade fail with 403"). An accepted connection takes
//! the SDK's text messages `{"a":"subscribe","v":[tokens]}`,
//! `{"a":"unsubscribe","v":[tokens]}` and `{"a":"mode","v":[mode,[tokens]]}`
//! (an unknown action or mode answers `{"type":"error","data":..}`), and
//! every [`TICK_EVERY`] sends one binary message: the ticks of every
//! subscribed instrument in its mode (`ltp` 8 bytes, `quote` 44, `full`
//! 184, the layouts KiteTicker parses; big-endian, prices in paise), or the
//! 1-byte heartbeat while nothing is subscribed.
//!
//! Open connections are not closed when their token dies (whether Kite
//! does is not documented); [`super::KiteSim::drop_ticker_connections`]
//! drops them all, as a network blip would.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::server::reply;
use super::{Shared, TickerAttempt};

/// How often a connection gets its ticks (or a heartbeat).
pub const TICK_EVERY: Duration = Duration::from_millis(500);

/// A subscribed instrument's streaming mode.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Ltp,
    Quote,
    Full,
}

impl Mode {
    fn parse(s: &str) -> Option<Mode> {
        match s {
            "ltp" => Some(Mode::Ltp),
            "quote" => Some(Mode::Quote),
            "full" => Some(Mode::Full),
            _ => None,
        }
    }
}

/// `GET /?api_key=..&access_token=..`: the websocket upgrade.
pub(super) async fn connect(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let api_key = q.get("api_key").cloned().unwrap_or_default();
    let access_token = q.get("access_token").cloned().unwrap_or_default();
    let text = |name: &str| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let mut g = s.inner.lock();
    let live = s
        .app_index(&api_key)
        .is_some_and(|app| g.live(app, &access_token).is_some());
    let attempt = TickerAttempt {
        api_key,
        access_token,
        accepted: live && ws.is_ok(),
        status: if !live {
            403
        } else if ws.is_ok() {
            101
        } else {
            400
        },
        kite_version: text("x-kite-version"),
        user_agent: text(header::USER_AGENT.as_str()),
        subscribed: Vec::new(),
        open: false,
    };
    g.ticker.push(attempt);
    let id = g.ticker.len() - 1;
    drop(g);
    if !live {
        tracing::debug!("kite sim: ticker refused a dead or unknown token");
        let body = json!({"status": "error", "error_type": "TokenException",
            "message": "Incorrect `api_key` or `access_token`."});
        return reply(StatusCode::FORBIDDEN, body);
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            let body = json!({"status": "error", "error_type": "InputException",
                "message": format!("Expected a websocket upgrade ({e}).")});
            return reply(StatusCode::BAD_REQUEST, body);
        }
    };
    s.inner.lock().ticker[id].open = true;
    tracing::debug!("kite sim: ticker connected");
    ws.on_upgrade(move |socket| serve(s, id, socket))
}

/// One accepted connection, until the client goes or the simulator drops it.
async fn serve(s: Arc<Shared>, id: usize, mut socket: WebSocket) {
    let mut dropped = s.ticker_drop.subscribe();
    let mut subs: BTreeMap<u32, Mode> = BTreeMap::new();
    let mut tick = tokio::time::interval(TICK_EVERY);
    let mut n: u32 = 0;
    loop {
        tokio::select! {
            msg = socket.recv() => match msg {
                Some(Ok(Message::Text(t))) => {
                    if let Some(error) = on_text(&s, id, &mut subs, t.as_str()) {
                        let text = json!({"type": "error", "data": error}).to_string();
                        if socket.send(Message::Text(text.into())).await.is_err() {
                            break;
                        }
                    }
                }
                // Pings are answered by the websocket layer itself.
                Some(Ok(Message::Binary(_) | Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
            },
            _ = tick.tick() => {
                let bytes = if subs.is_empty() { vec![0] } else { ticks(&subs, n) };
                n = n.wrapping_add(1);
                if socket.send(Message::Binary(bytes.into())).await.is_err() {
                    break;
                }
            }
            _ = dropped.changed() => {
                let _ = socket.send(Message::Close(None)).await;
                break;
            }
        }
    }
    s.inner.lock().ticker[id].open = false;
    tracing::debug!("kite sim: ticker connection closed");
}

/// Applies one text message; `Some(error)` for what Kite would refuse.
fn on_text(s: &Shared, id: usize, subs: &mut BTreeMap<u32, Mode>, text: &str) -> Option<String> {
    let Ok(msg) = serde_json::from_str::<Value>(text) else {
        return Some("Invalid message".into());
    };
    let tokens = |v: &Value| -> Option<Vec<u32>> {
        v.as_array()?
            .iter()
            .map(|t| t.as_u64().and_then(|t| u32::try_from(t).ok()))
            .collect()
    };
    match msg["a"].as_str() {
        Some("subscribe") => {
            let Some(list) = tokens(&msg["v"]) else {
                return Some("Invalid instrument tokens".into());
            };
            for t in &list {
                // Kite's default mode for a new subscription is quote.
                subs.entry(*t).or_insert(Mode::Quote);
            }
            s.inner.lock().ticker[id].subscribed.extend(list);
            None
        }
        Some("unsubscribe") => {
            let Some(list) = tokens(&msg["v"]) else {
                return Some("Invalid instrument tokens".into());
            };
            list.iter().for_each(|t| {
                subs.remove(t);
            });
            None
        }
        Some("mode") => {
            let Some(mode) = msg["v"][0].as_str().and_then(Mode::parse) else {
                return Some("Invalid mode".into());
            };
            let Some(list) = tokens(&msg["v"][1]) else {
                return Some("Invalid instrument tokens".into());
            };
            for t in list {
                if let Some(m) = subs.get_mut(&t) {
                    *m = mode;
                }
            }
            None
        }
        _ => Some("Invalid action".into()),
    }
}

/// One binary message with a packet per subscribed instrument: a 2-byte
/// count, then each packet behind its 2-byte length.
fn ticks(subs: &BTreeMap<u32, Mode>, n: u32) -> Vec<u8> {
    let count = u16::try_from(subs.len()).unwrap_or(u16::MAX);
    let mut out = count.to_be_bytes().to_vec();
    for (&token, &mode) in subs.iter().take(usize::from(count)) {
        let p = packet(token, mode, n);
        let len = u16::try_from(p.len()).unwrap_or(u16::MAX);
        out.extend(len.to_be_bytes());
        out.extend(p);
    }
    out
}

/// The packet of one instrument: made-up prices that move by 5 paise a tick.
fn packet(token: u32, mode: Mode, n: u32) -> Vec<u8> {
    let ltp = 100_000 + (token % 1000) * 100 + (n % 200) * 5;
    let mut p: Vec<u8> = Vec::with_capacity(184);
    let put =
        |p: &mut Vec<u8>, values: &[u32]| values.iter().for_each(|v| p.extend(v.to_be_bytes()));
    put(&mut p, &[token, ltp]);
    if mode == Mode::Ltp {
        return p;
    }
    // last qty, average price, volume, buy qty, sell qty, open, high, low, close
    put(
        &mut p,
        &[
            1,
            ltp,
            1000 + n,
            500,
            400,
            ltp - 500,
            ltp + 500,
            ltp - 1000,
            ltp - 200,
        ],
    );
    if mode == Mode::Quote {
        return p;
    }
    let now = u32::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
    // last trade time, oi, oi day high, oi day low, exchange time
    put(&mut p, &[now, 0, 0, 0, now]);
    // Five bids, then five asks: quantity, price, orders (u16) and 2 bytes.
    for level in 0..10u32 {
        let price = if level < 5 {
            ltp - 5 * (level + 1)
        } else {
            ltp + 5 * (level - 4)
        };
        put(&mut p, &[10 * (level + 1), price]);
        p.extend(u16::try_from(level + 1).unwrap_or(0).to_be_bytes());
        p.extend([0, 0]);
    }
    p
}
