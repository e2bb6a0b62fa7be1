//! Whether a broker binds a session to the address it was created from
//! (docs/ha.md): a daemon that takes the lead of such a session from
//! another host logs in again instead of serving it.

use super::BrokerId;

/// The broker facts: Kotak Neo answers `1037` to orders from an IP other
/// than the one that logged in (shared/brokers/kotak_neo.md); Zerodha,
/// Breeze, Jainam (XTS) and Angel One sessions carry over between hosts
/// whose static IPs are registered. `[daemon.ha] address_bound` overrides.
pub fn address_bound_by_default(broker: BrokerId) -> bool {
    match broker {
        BrokerId::KotakNeo => true,
        BrokerId::Zerodha => false,
        BrokerId::Breeze => false,
        BrokerId::Jainam => false,
        BrokerId::AngelOne => false,
    }
}
