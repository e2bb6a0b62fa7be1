//! One broker host's limiter: at most `concurrency` calls in flight, started
//! no faster than `per_second`, first come first served; a rate-limit
//! answer halves the rate, which climbs back after a calm spell.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::brokers::pace::Pace;
use brokerd_core::time::SharedClock;

/// The slowest a host is ever paced down to, as a share of its configured
/// rate: however many 429s arrive, logins keep trickling.
const FLOOR_SHARE: f64 = 1.0 / 16.0;
/// After a rate-limit answer, nothing starts at the host for this long.
const COOL_DOWN: Duration = Duration::from_secs(2);
/// A rate cut stays this long without a further rate-limit answer before
/// the rate doubles again (up to the configured one).
const CALM: Duration = Duration::from_secs(10);

/// One broker host's queue and rate.
#[derive(Debug)]
pub struct HostPacer {
    host: String,
    pace: Pace,
    clock: SharedClock,
    // tokio's semaphore queues waiters in order: first come, first served.
    slots: Arc<Semaphore>,
    rate: Mutex<Rate>,
    /// Tickets handed out (the next ticket's number).
    issued: AtomicU64,
    /// Tickets that left the queue (admitted, or given up).
    left: AtomicU64,
    /// Rate-limit answers from the host.
    rate_limited: AtomicU64,
}

#[derive(Debug)]
struct Rate {
    /// Calls per second now (`pace.per_second`, or less after a 429).
    current: f64,
    /// The earliest start of the next call.
    next_at: DateTime<Utc>,
    /// The last rate change (a cut, or a step back up).
    changed_at: DateTime<Utc>,
}

/// A place in a host's queue. Dropping it before admission gives the place
/// up (a login task stopped by a shutdown), so later positions stay right.
#[derive(Debug)]
pub struct Ticket {
    pacer: Arc<HostPacer>,
    number: u64,
    admitted: bool,
}

/// Admission to call the broker; the concurrency slot is held until it is
/// dropped (when the broker call has answered).
#[derive(Debug)]
pub struct Admission {
    pacer: Arc<HostPacer>,
    _slot: OwnedSemaphorePermit,
}

impl Admission {
    /// The admitted call was answered with a rate limit (HTTP 429).
    pub fn rate_limited(&self) {
        self.pacer.throttled();
    }
}

/// A queued ticket seen from outside: its place, while it waits.
#[derive(Clone, Debug)]
pub struct Spot {
    pacer: Arc<HostPacer>,
    number: u64,
}

impl Spot {
    /// Where the ticket stands.
    pub fn place(&self) -> Place {
        let ahead = self
            .number
            .saturating_sub(self.pacer.left.load(Ordering::SeqCst));
        Place {
            ahead,
            estimate: self.pacer.estimate(ahead + 1),
        }
    }

    /// The host of the queue.
    pub fn host(&self) -> &str {
        self.pacer.host()
    }
}

/// Where a queued call stands, for `status` and error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place {
    /// Calls ahead of this one (0: next).
    pub ahead: u64,
    /// A rough wait before this call starts.
    pub estimate: Duration,
}

impl HostPacer {
    /// A limiter for `host` at `pace`, on `clock`.
    pub fn new(host: String, pace: Pace, clock: SharedClock) -> Arc<Self> {
        let now = clock.now();
        Arc::new(Self {
            host,
            pace,
            slots: Arc::new(Semaphore::new(pace.concurrency)),
            rate: Mutex::new(Rate {
                current: pace.per_second,
                next_at: now,
                changed_at: now,
            }),
            clock,
            issued: AtomicU64::new(0),
            left: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
        })
    }

    /// The host this limiter paces.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The configured pace.
    pub fn pace(&self) -> Pace {
        self.pace
    }

    /// Calls per second allowed now (lower than the pace after a 429).
    pub fn current_rate(&self) -> f64 {
        let now = self.clock.now();
        let mut rate = self.rate.lock();
        self.recover(&mut rate, now);
        rate.current
    }

    /// Joins the queue.
    pub fn ticket(self: &Arc<Self>) -> Ticket {
        Ticket {
            pacer: Arc::clone(self),
            number: self.issued.fetch_add(1, Ordering::SeqCst),
            admitted: false,
        }
    }

    /// Calls admitted and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.pace.concurrency - self.slots.available_permits()
    }

    /// Rate-limit answers from the host so far.
    pub fn rate_limited_total(&self) -> u64 {
        self.rate_limited.load(Ordering::Relaxed)
    }

    /// Calls queued and not yet admitted.
    pub fn waiting(&self) -> u64 {
        self.issued
            .load(Ordering::SeqCst)
            .saturating_sub(self.left.load(Ordering::SeqCst))
    }

    /// A rate-limit answer from the host: halve the rate (not below a
    /// sixteenth of the pace) and start nothing for a moment.
    pub fn throttled(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
        let now = self.clock.now();
        let mut rate = self.rate.lock();
        let floor = self.pace.per_second * FLOOR_SHARE;
        rate.current = (rate.current / 2.0).max(floor);
        rate.changed_at = now;
        let pause = now + chrono::Duration::from_std(COOL_DOWN).unwrap_or_default();
        rate.next_at = rate.next_at.max(pause);
        tracing::warn!(host = %self.host, per_second = rate.current,
                       "the broker answered a rate limit; slowing logins to this host");
    }

    /// Doubles a cut rate back towards the pace, one step per calm spell.
    fn recover(&self, rate: &mut Rate, now: DateTime<Utc>) {
        let calm = chrono::Duration::from_std(CALM).unwrap_or_default();
        while rate.current < self.pace.per_second && now - rate.changed_at >= calm {
            rate.current = (rate.current * 2.0).min(self.pace.per_second);
            rate.changed_at += calm;
        }
    }

    /// The start time of the next call, taken (each call moves it on by one
    /// interval at the current rate).
    fn next_start(&self) -> DateTime<Utc> {
        let now = self.clock.now();
        let mut rate = self.rate.lock();
        self.recover(&mut rate, now);
        let at = rate.next_at.max(now);
        let interval = Duration::from_secs_f64(1.0 / rate.current);
        rate.next_at = at + chrono::Duration::from_std(interval).unwrap_or_default();
        at
    }

    fn estimate(&self, ahead: u64) -> Duration {
        let rate = self.current_rate();
        // Whichever bounds it: starts per second, or the calls in flight
        // (assumed to take about a second each, a slow broker's login).
        let by_rate = ahead as f64 / rate;
        let by_slots = ahead as f64 / self.pace.concurrency as f64;
        Duration::from_secs_f64(by_rate.max(by_slots))
    }
}

impl Ticket {
    /// Where this ticket stands in its host's queue.
    pub fn place(&self) -> Place {
        self.spot().place()
    }

    /// A handle that tells this ticket's place while the ticket itself
    /// waits (the login task holds the ticket, `status` the spot).
    pub fn spot(&self) -> Spot {
        Spot {
            pacer: Arc::clone(&self.pacer),
            number: self.number,
        }
    }

    /// The host of the queue.
    pub fn host(&self) -> &str {
        self.pacer.host()
    }

    /// Waits for a concurrency slot, then for the rate's next start.
    pub async fn admit(mut self) -> Admission {
        let slot = Arc::clone(&self.pacer.slots)
            .acquire_owned()
            .await
            .expect("a host's semaphore is never closed");
        let at = self.pacer.next_start();
        let clock = Arc::clone(&self.pacer.clock);
        brokerd_core::time::sleep_until(&*clock, at, tokio::time::sleep).await;
        self.admitted = true;
        self.pacer.left.fetch_add(1, Ordering::SeqCst);
        Admission {
            pacer: Arc::clone(&self.pacer),
            _slot: slot,
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.admitted {
            self.pacer.left.fetch_add(1, Ordering::SeqCst);
        }
    }
}
