//! Refused tokens per client address, so that a token guesser is slowed down and
//! seen (issue 9, defect 13).
//!
//! An address that presents `auth.max_failures` wrong tokens within
//! `auth.failure_window_ms` (counted from its first wrong one) is held off: every
//! request of its that carries a token gets 429 with `Retry-After` until the window
//! ends, **a right token included**. Answering a right token normally would tell the
//! guesser which guess was right while it keeps guessing at full speed. Another
//! address's count is its own: nobody's success or failure moves it.
//!
//! IPv6 clients are counted by their /64, the block one host usually holds, so that
//! walking through its addresses does not buy a guesser a fresh count each time. The
//! table holds at most [`MAX_CLIENTS`] addresses; past that the oldest count goes.

use std::{
    collections::{HashMap, VecDeque},
    net::{IpAddr, Ipv6Addr},
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::{logging::Throttle, settings::FailureLimit};

/// Addresses counted at once: bounds the table's memory under a spread-out attack.
pub const MAX_CLIENTS: usize = 10_000;

/// How often refused tokens, and addresses being held off, may each write a line.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The counts, and the log throttles that go with them.
pub struct AuthFailures {
    table: Mutex<Table>,
    refused_log: Throttle,
    held_off_log: Throttle,
}

#[derive(Default)]
struct Table {
    counts: HashMap<IpAddr, Count>,
    /// Each count's key and window start, oldest first, to evict and expire in order.
    /// A count restarted later leaves a stale record here, skipped when reached.
    order: VecDeque<(IpAddr, Instant)>,
}

#[derive(Debug, Clone, Copy)]
struct Count {
    window_start: Instant,
    failures: u32,
}

impl Default for AuthFailures {
    fn default() -> Self {
        AuthFailures {
            table: Mutex::default(),
            refused_log: Throttle::new(LOG_INTERVAL),
            held_off_log: Throttle::new(LOG_INTERVAL),
        }
    }
}

impl AuthFailures {
    /// `Err(how long)` while `client` is held off.
    pub fn check(&self, client: IpAddr, limit: FailureLimit) -> Result<(), Duration> {
        let now = Instant::now();
        let table = self.table();
        match table.counts.get(&key(client)) {
            Some(count) if count.failures >= limit.max_failures.get() => {
                let ends = count.window_start + limit.window;
                if ends > now {
                    Err(ends - now)
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// Records a refused token from `client` on `route`, and logs it (the address and
    /// route, never the token) at most once per interval.
    pub fn failed(&self, client: IpAddr, route: &str, limit: FailureLimit) {
        let now = Instant::now();
        let failures = self.table().count(key(client), now, limit.window);
        if let Some(held_back) = self.refused_log.allow() {
            tracing::warn!(
                %client,
                route,
                refused_since_last_line = held_back,
                "refused authentication: the token is not valid"
            );
        }
        if failures == limit.max_failures.get() {
            if let Some(held_back) = self.held_off_log.allow() {
                tracing::warn!(
                    %client,
                    failures,
                    window = ?limit.window,
                    others_held_off_since_last_line = held_back,
                    "holding off a client address after too many refused tokens (auth.max_failures): it gets 429"
                );
            }
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        // Counts are plain numbers, consistent after every statement.
        self.table.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Table {
    /// Adds a failure for `key` and returns its count in the current window.
    fn count(&mut self, key: IpAddr, now: Instant, window: Duration) -> u32 {
        self.expire(now, window);
        if let Some(count) = self.counts.get_mut(&key) {
            if now.duration_since(count.window_start) < window {
                count.failures = count.failures.saturating_add(1);
                return count.failures;
            }
        }
        while self.counts.len() >= MAX_CLIENTS && !self.counts.contains_key(&key) {
            self.evict_oldest();
        }
        self.counts.insert(
            key,
            Count {
                window_start: now,
                failures: 1,
            },
        );
        self.order.push_back((key, now));
        1
    }

    /// Drops counts whose window has ended.
    fn expire(&mut self, now: Instant, window: Duration) {
        while let Some(&(key, start)) = self.order.front() {
            if now.duration_since(start) < window {
                break;
            }
            self.order.pop_front();
            if self
                .counts
                .get(&key)
                .is_some_and(|count| count.window_start == start)
            {
                self.counts.remove(&key);
            }
        }
    }

    fn evict_oldest(&mut self) {
        while let Some((key, start)) = self.order.pop_front() {
            if self
                .counts
                .get(&key)
                .is_some_and(|count| count.window_start == start)
            {
                self.counts.remove(&key);
                return;
            }
        }
    }
}

/// The address as counted: IPv4 (also when mapped into IPv6), or an IPv6 /64.
fn key(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

    fn limit(max: u32, window_ms: u64) -> FailureLimit {
        FailureLimit {
            max_failures: NonZeroU32::new(max).unwrap(),
            window: Duration::from_millis(window_ms),
        }
    }

    #[test]
    fn an_address_is_held_off_after_its_own_failures_only() {
        let failures = AuthFailures::default();
        let (guesser, other): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let limit = limit(3, 60_000);
        for _ in 0..3 {
            assert!(failures.check(guesser, limit).is_ok());
            failures.failed(guesser, "/v1/sms", limit);
        }
        let wait = failures.check(guesser, limit).unwrap_err();
        assert!(
            wait > Duration::from_secs(59) && wait <= Duration::from_secs(60),
            "{wait:?}"
        );
        assert!(failures.check(other, limit).is_ok());
    }

    #[test]
    fn the_hold_ends_with_the_window() {
        let failures = AuthFailures::default();
        let client: IpAddr = "10.0.0.1".parse().unwrap();
        let limit = limit(1, 100);
        failures.failed(client, "/v1/sms", limit);
        assert!(failures.check(client, limit).is_err());
        std::thread::sleep(Duration::from_millis(150));
        assert!(failures.check(client, limit).is_ok());
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let failures = AuthFailures::default();
        let limit = limit(2, 60_000);
        failures.failed("2001:db8::1".parse().unwrap(), "/v1/sms", limit);
        failures.failed("2001:db8::ffff:2".parse().unwrap(), "/v1/sms", limit);
        assert!(failures.check("2001:db8::3".parse().unwrap(), limit).is_err());
        assert!(failures.check("2001:db8:0:1::3".parse().unwrap(), limit).is_ok());
        assert_eq!(
            key("::ffff:10.0.0.1".parse().unwrap()),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn the_table_never_holds_more_than_its_cap_and_evicts_the_oldest() {
        let failures = AuthFailures::default();
        let limit = limit(1, 60_000);
        let first: IpAddr = "10.0.0.0".parse().unwrap();
        for n in 0..(MAX_CLIENTS as u32 + 10) {
            failures.failed(IpAddr::V4((0x0a00_0000 + n).into()), "/v1/sms", limit);
        }
        let table = failures.table();
        assert_eq!(table.counts.len(), MAX_CLIENTS);
        assert!(!table.counts.contains_key(&first), "the oldest count was evicted");
        assert!(table.order.len() <= 2 * MAX_CLIENTS);
    }
}
