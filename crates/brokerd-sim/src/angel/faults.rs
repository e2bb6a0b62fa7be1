//! What a test can ask of the simulator and read back from it: injected
//! answers ([`AngelFail`] per [`Endpoint`]), how a dead token is answered
//! ([`DeadShape`]), the TOTPs received, the headers seen, the counters.

use std::time::Duration;

/// Which calls a queued fault applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `loginByPassword`.
    Login,
    /// `generateTokens`.
    Renew,
    /// The session calls: `getProfile`, `getRMS`, `logout`.
    Call,
}

/// An injected answer, consumed one per call of its [`Endpoint`] in the
/// order queued. Apart from `Timeout` and `WrongTotp`, the call is not
/// processed: the shape is answered instead (a TOTP received is still
/// recorded, unspent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AngelFail {
    /// That HTTP status with the documented `AB1004` envelope.
    Status(u16),
    /// HTTP 200, `AB1004` "Something Went Wrong, Please Try After Sometime".
    Ab1004,
    /// HTTP 200, `AB2000` "Error not specified".
    Ab2000,
    /// HTTP 200, `AB2001` "Internal Error, Please try after sometime".
    Ab2001,
    /// HTTP 403 with the plain text "Access denied because of exceeding
    /// access rate" (the rate limit, not JSON).
    RateLimit,
    /// HTTP 200 with the WAF's HTML "Request Rejected" page and a support ID.
    Waf,
    /// HTTP 502 with a proxy's HTML page.
    BadGateway,
    /// HTTP 404 with a web server's HTML page (a wrong REST root).
    NotFound,
    /// Processed as usual (a good TOTP is spent, tokens are issued) but the
    /// answer is held back this long, so a client with a shorter timeout
    /// gives up although the server did its part.
    Timeout(Duration),
    /// `AB1050` "Invalid totp" even for the right code (which is not spent).
    WrongTotp,
    /// `AB1007` in the documented failure sample's strings
    /// (`"status":"false"`, `"data":"null"`).
    BadCredentials,
    /// `AB1006` "Client Is Block For Trading".
    Blocked,
    /// `AB1032` "User Not Found".
    UserNotFound,
    /// The gateway's `AG8004` "Invalid API Key", `success`/`errorCode`, HTTP 200.
    BadApiKey,
    /// "LoginByPassword is not allowed. Please switch to Login by MPIN now."
    PasswordLoginNotAllowed,
    /// `AB8050` "Invalid Refresh Token".
    RefreshInvalid,
    /// `AB8051` "Refresh Token Expired".
    RefreshExpired,
    /// A dead session answered in the gateway shape inside HTTP 200 with
    /// one of `AG8001`, `AG8002`, `AG8003`, or in the documented envelope
    /// with `AB1010` or `AB1011`.
    Dead(DeadCode),
}

/// The dead-session codes of the facts file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeadCode {
    /// `AG8001` Invalid Token.
    Ag8001,
    /// `AG8002` Token Expired.
    Ag8002,
    /// `AG8003` Token missing.
    Ag8003,
    /// `AB1010` AMX Session Expired.
    Ab1010,
    /// `AB1011` Client not login.
    Ab1011,
}

impl DeadCode {
    /// The code and the message the broker sends with it.
    pub fn code_and_message(self) -> (&'static str, &'static str) {
        match self {
            Self::Ag8001 => ("AG8001", "Invalid Token"),
            Self::Ag8002 => ("AG8002", "Token Expired"),
            Self::Ag8003 => ("AG8003", "Token missing"),
            Self::Ab1010 => ("AB1010", "AMX Session Expired"),
            Self::Ab1011 => ("AB1011", "Client not login"),
        }
    }
}

/// How session calls answer a dead, unknown or missing token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeadShape {
    /// The gateway's `{"success":false,"message":…,"errorCode":"AG800x",
    /// "data":""}` inside HTTP 200 (what the JS SDK expects): `AG8003`
    /// without a token, `AG8002` for an expired one, `AG8001` otherwise.
    #[default]
    Gateway200,
    /// The same bodies at HTTP 401.
    Gateway401,
    /// `AB1010` AMX Session Expired, documented envelope, HTTP 200.
    Ab1010,
    /// `AB1011` Client not login, documented envelope in strings
    /// (`"status":"false"`, `"data":"null"`), HTTP 200.
    Ab1011,
}

/// One TOTP the simulator received on `loginByPassword`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TotpAttempt {
    /// When it arrived, by the sim clock, Unix milliseconds.
    pub at_unix_ms: i64,
    /// The 30 s step of the sim clock when it arrived.
    pub step: i64,
    /// Which of the steps `step - 1`, `step`, `step + 1` the code belongs
    /// to for the client code of the request; `None` if none (or unknown).
    pub matched_step: Option<i64>,
    /// Whether the login was accepted with it.
    pub accepted: bool,
}

/// The `X-*` headers of the last call, as sent (the API key left out).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeenHeaders {
    /// `X-UserType`.
    pub user_type: String,
    /// `X-SourceID`.
    pub source_id: String,
    /// `X-ClientLocalIP`.
    pub local_ip: String,
    /// `X-ClientPublicIP`.
    pub public_ip: String,
    /// `X-MACAddress`.
    pub mac: String,
}

/// Counters of the calls received, failed and injected ones included.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AngelStats {
    /// `loginByPassword` calls.
    pub logins: u64,
    /// Logins that issued tokens.
    pub successful_logins: u64,
    /// `generateTokens` calls.
    pub renewals: u64,
    /// Renewals that issued tokens.
    pub successful_renewals: u64,
    /// `getProfile` calls.
    pub profiles: u64,
    /// `getRMS` calls.
    pub calls: u64,
    /// `logout` calls.
    pub logouts: u64,
}
