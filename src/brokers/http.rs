//! The HTTP plumbing every broker module shares: building a fresh client,
//! sending a request, and keeping the status and (maybe) JSON body of the
//! answer so each broker can map it in one place.

use std::time::Duration;

use super::BrokerError;

/// A fresh HTTP client with brokerd's timeouts. Every login gets its own.
pub fn new_client(timeout: Duration) -> Result<reqwest::Client, BrokerError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("brokerd/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| BrokerError::Transient(format!("cannot build HTTP client: {e}")))
}

/// A broker's answer: status, and the body parsed as JSON when it is JSON.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status code.
    pub status: u16,
    /// The body, when it parsed as JSON.
    pub json: Option<serde_json::Value>,
    /// The first bytes of a body that is not JSON, for error messages.
    raw_head: String,
}

impl Answer {
    /// Builds an answer from a status and body bytes.
    pub fn new(status: u16, body: &[u8]) -> Self {
        let json = serde_json::from_slice(body).ok();
        let raw_head = if json.is_some() {
            String::new()
        } else {
            String::from_utf8_lossy(&body[..body.len().min(120)]).into_owned()
        };
        Self {
            status,
            json,
            raw_head,
        }
    }

    /// A short, single-line excerpt of a non-JSON body.
    pub fn snippet(&self) -> String {
        let one_line: String = self
            .raw_head
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if one_line.is_empty() {
            "empty body".into()
        } else {
            format!("body starts {one_line:?}")
        }
    }
}

/// Sends `req` and reads the whole answer. Network errors and timeouts are
/// transient; they never carry the request (which may hold secrets).
pub async fn send(req: reqwest::RequestBuilder) -> Result<Answer, BrokerError> {
    let resp = req.send().await.map_err(describe)?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(describe)?;
    Ok(Answer::new(status, &body))
}

/// A reqwest error as one line without the URL's query (which may carry ids).
fn describe(e: reqwest::Error) -> BrokerError {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "broken response body"
    } else {
        "request failed"
    };
    let host = e
        .url()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    BrokerError::Transient(format!("{what} talking to {host}"))
}
