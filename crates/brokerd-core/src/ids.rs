//! The names of things: brokers, an account's sessions, one session slot.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The brokers brokerd knows, spelled the same everywhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerId {
    /// Kotak Neo Trade API.
    KotakNeo,
    /// ICICI Breeze.
    Breeze,
    /// Zerodha Kite Connect.
    Zerodha,
    /// Jainam (Symphony XTS).
    Jainam,
    /// Angel One SmartAPI.
    AngelOne,
}

impl BrokerId {
    /// Every broker, in declaration order.
    pub const ALL: [BrokerId; 5] = [
        Self::KotakNeo,
        Self::Breeze,
        Self::Zerodha,
        Self::Jainam,
        Self::AngelOne,
    ];

    /// The wire / config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::KotakNeo => "kotak_neo",
            Self::Breeze => "breeze",
            Self::Zerodha => "zerodha",
            Self::Jainam => "jainam",
            Self::AngelOne => "angel_one",
        }
    }

    /// Whether a session of this broker starts only from a person's
    /// browser login (every day), rather than unattended.
    pub fn needs_a_person(self) -> bool {
        match self {
            Self::Zerodha | Self::Breeze => true,
            Self::KotakNeo | Self::Jainam | Self::AngelOne => false,
        }
    }

    /// Parses the wire / config spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "kotak_neo" => Self::KotakNeo,
            "breeze" => Self::Breeze,
            "zerodha" => Self::Zerodha,
            "jainam" => Self::Jainam,
            "angel_one" => Self::AngelOne,
            _ => return None,
        })
    }
}

impl fmt::Display for BrokerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which of an account's sessions. Only Jainam has a separate market-data
/// session; every other broker has just `interactive`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    /// The trading session (the default).
    #[default]
    Interactive,
    /// Jainam's market-data ("feed") session.
    Market,
}

impl Api {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Interactive => "interactive",
            Self::Market => "market",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "interactive" => Some(Self::Interactive),
            "market" => Some(Self::Market),
            _ => None,
        }
    }
}

impl fmt::Display for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Names one session slot: (broker, account, api).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey {
    /// The broker.
    pub broker: BrokerId,
    /// The account name from the config.
    pub account: String,
    /// Which session of the account.
    pub api: Api,
}

impl SessionKey {
    /// Builds a key.
    pub fn new(broker: BrokerId, account: impl Into<String>, api: Api) -> Self {
        Self {
            broker,
            account: account.into(),
            api,
        }
    }
}

impl fmt::Display for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.broker, self.account, self.api)
    }
}
