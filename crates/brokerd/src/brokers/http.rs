//! The HTTP plumbing every broker module shares: building a fresh client,
//! sending a request, and keeping the status and (maybe) JSON body of the
//! answer so each broker can map it in one place.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use super::BrokerError;
use super::url_rule::UrlRule;

/// The TLS configuration of every broker client: the root certificates
/// and the verifier are built once per process and shared (immutable), not
/// once per client; 2,000 sessions each held their own copy. Session
/// resumption is off, so no client ever shares TLS state with another: a
/// fresh client starts from nothing but the roots (invariant 2).
fn tls_config() -> rustls::ClientConfig {
    static SHARED: LazyLock<rustls::ClientConfig> = LazyLock::new(|| {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.resumption = rustls::client::Resumption::disabled();
        // reqwest speaks HTTP/1.1 only in this build.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config
    });
    // Cloning shares the verifier and its roots (`Arc`s).
    SHARED.clone()
}

/// A fresh HTTP client with brokerd's timeouts. Every login gets its own.
pub fn new_client(timeout: Duration) -> Result<reqwest::Client, BrokerError> {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls_config())
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

    /// True when the body is an HTML page (a web server speaking, not a
    /// broker's JSON API).
    pub fn is_html(&self) -> bool {
        let head = self.raw_head.trim_start().to_ascii_lowercase();
        self.json.is_none()
            && (head.starts_with("<!doctype")
                || head.starts_with("<html")
                || head.contains("<html"))
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
///
/// HTTP 429 is [`BrokerError::RateLimited`] whatever the broker and the
/// body: every broker's facts file makes it a rate limit, never a verdict
/// on the session or the credentials, and the daemon's pacer must hear of
/// it to slow down.
pub async fn send(req: reqwest::RequestBuilder) -> Result<Answer, BrokerError> {
    let resp = req.send().await.map_err(describe)?;
    let status = resp.status().as_u16();
    if status == 429 {
        let host = resp.url().host_str().unwrap_or_default().to_string();
        return Err(BrokerError::RateLimited(format!(
            "{host} answered HTTP 429 (too many requests); brokerd slows its calls to it"
        )));
    }
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

/// Whether an answer from a login endpoint says the endpoint does not exist
/// at the configured URL: what it looks like, or `None` when it may be the
/// broker (or a passing outage) speaking.
///
/// - 404, 405 and 410, whatever the body: no outage answers "no such
///   endpoint" or "not with this method"; a broker's login endpoint that
///   exists never does. A JSON 404 is usually another API's "route not
///   found".
/// - Any other 4xx with an HTML page, except 403 (a WAF or IP block, which
///   a new URL would not fix), 408 and 429: an HTML page is a web server's
///   answer, never a broker API's, so another server is behind the URL.
/// - Never a 5xx (a gateway's 502/503 page during maintenance) nor a 2xx
///   HTML page (Breeze serves maintenance pages with 200): those pass, so
///   the caller treats them as transient and backs off.
pub fn missing_endpoint(answer: &Answer) -> Option<String> {
    let body = if answer.json.is_some() {
        "a JSON body"
    } else if answer.is_html() {
        "an HTML page"
    } else if answer.raw_head.trim().is_empty() {
        "an empty body"
    } else {
        "a non-JSON body"
    };
    let status = answer.status;
    let wrong = match status {
        404 | 405 | 410 => true,
        403 | 408 | 429 => false,
        400..=499 => answer.is_html(),
        _ => false,
    };
    wrong.then(|| format!("HTTP {status} with {body}"))
}

/// A login endpoint's answer checked by [`missing_endpoint`]: `Config`
/// naming the key whose URL is wrong when the endpoint does not exist.
/// `call` names the endpoint (`tradeApiLogin`), `key` the config key
/// (`account.kotak_neo.login_host`), `configured` its value and `expected`
/// the form it should take. None of these is secret, and the body is not
/// quoted (a page may echo the request).
///
/// A `Config` error puts the slot in `locked_out`: retrying a URL that
/// does not exist only spends logins (and, for Kotak, TOTP windows).
pub fn check_login_endpoint(
    answer: &Answer,
    call: &str,
    key: &str,
    configured: &str,
    expected: &str,
) -> Result<(), BrokerError> {
    match missing_endpoint(answer) {
        None => Ok(()),
        Some(what) => Err(BrokerError::Config(format!(
            "{key}: the login call {call} answered {what}: nothing serves it at \
             {configured:?}, so the URL (host or path) is probably wrong; expected {expected}"
        ))),
    }
}

/// [`check_login_endpoint`] for a login endpoint under one URL key.
pub fn check_login_url(
    answer: &Answer,
    call: &str,
    rule: &UrlRule,
    configured: &str,
) -> Result<(), BrokerError> {
    check_login_endpoint(answer, call, &rule.key(), configured, &rule.expected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_shares_the_roots_and_keeps_no_tls_state_between_logins() {
        let a = tls_config();
        let b = tls_config();
        // No session tickets: nothing learnt by one client reaches another.
        let resumption = format!("{:?}", a.resumption);
        assert!(
            resumption.contains("tls12_resumption: Disabled"),
            "{resumption}"
        );
        assert!(
            resumption.contains("NoClientSessionStorage"),
            "{resumption}"
        );
        assert_eq!(a.alpn_protocols, vec![b"http/1.1".to_vec()]);
        // The verifier (and its ~150 roots) is one allocation for all.
        assert!(Arc::ptr_eq(
            &a.crypto_provider().clone(),
            &b.crypto_provider().clone()
        ));
        new_client(Duration::from_secs(1)).expect("a client builds on the shared config");
    }

    const NGINX_404: &str = "<html><head><title>404 Not Found</title></head><body>\
                             <center><h1>404 Not Found</h1></center></body></html>";

    #[test]
    fn missing_endpoints_are_404_405_410_and_4xx_web_pages() {
        let json_404 = r#"{"status":"error","message":"Route not found"}"#;
        let cases = [
            (404, NGINX_404, Some("HTTP 404 with an HTML page")),
            (404, json_404, Some("HTTP 404 with a JSON body")),
            (404, "", Some("HTTP 404 with an empty body")),
            (404, "Not Found", Some("HTTP 404 with a non-JSON body")),
            (405, "", Some("HTTP 405 with an empty body")),
            (
                410,
                "<!DOCTYPE html><p>gone",
                Some("HTTP 410 with an HTML page"),
            ),
            (
                400,
                "<html>plain HTTP to an HTTPS port</html>",
                Some("HTTP 400 with an HTML page"),
            ),
            (401, "<html>auth</html>", Some("HTTP 401 with an HTML page")),
            // The broker's own 4xx answers are JSON: the broker decides.
            (400, r#"{"error":[{"code":"400"}]}"#, None),
            (401, r#"{"fault":{"code":900901}}"#, None),
            // A firewall, a timeout, a rate limit: not the URL.
            (403, "<html>Access Denied</html>", None),
            (408, "<html>Request Timeout</html>", None),
            (429, "<html>Too Many Requests</html>", None),
            // Gateways and maintenance pages: transient.
            (502, "<html><body>502 Bad Gateway</body></html>", None),
            (503, NGINX_404, None),
            (200, "<html><body>maintenance</body></html>", None),
            (200, r#"{"status":"success"}"#, None),
        ];
        for (status, body, want) in cases {
            let got = missing_endpoint(&Answer::new(status, body.as_bytes()));
            assert_eq!(got.as_deref(), want, "HTTP {status} {body:?}");
        }
    }

    #[test]
    fn a_missing_login_endpoint_is_config_naming_the_key() {
        let answer = Answer::new(404, NGINX_404.as_bytes());
        let e = check_login_endpoint(
            &answer,
            "tradeApiLogin",
            "account.kotak_neo.login_host",
            "https://mis.kotaksecurities.com.example",
            "https://mis.kotaksecurities.com",
        )
        .unwrap_err();
        let BrokerError::Config(m) = e else {
            panic!("{e:?}")
        };
        assert!(m.starts_with("account.kotak_neo.login_host: "), "{m}");
        assert!(
            m.contains("tradeApiLogin answered HTTP 404 with an HTML page"),
            "{m}"
        );
        assert!(
            m.contains("expected https://mis.kotaksecurities.com"),
            "{m}"
        );
        let fine = Answer::new(502, b"<html>502 Bad Gateway</html>");
        assert!(check_login_endpoint(&fine, "x", "k", "u", "e").is_ok());
    }
}
