//! How often a cached refusal may be checked with the provisioning server:
//! at most once per MAC per `mps.recheck_interval_secs`, counting every
//! question this replica sent about the MAC (a first lookup too). So a
//! flood of refused requests for one device costs at most one MPS query
//! per interval, and an answer younger than the interval is final.
//!
//! Memory is bounded: only MACs asked about within the last interval
//! matter, and when `capacity` of them are that recent, further rechecks
//! are refused (the cached answer stands) rather than remembered.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// MACs remembered at most (≈ 50 bytes each).
pub const DEFAULT_CAPACITY: usize = 100_000;

pub struct RecheckLimiter {
    interval: Duration,
    capacity: usize,
    state: Mutex<State>,
}

struct State {
    /// When the provisioning server was last asked about each MAC.
    asked: HashMap<[u8; 6], Instant>,
    last_prune: Option<Instant>,
}

impl RecheckLimiter {
    /// `interval` zero: rechecks are off.
    pub fn new(interval: Duration, capacity: usize) -> RecheckLimiter {
        RecheckLimiter {
            interval,
            capacity: capacity.max(1),
            state: Mutex::new(State {
                asked: HashMap::new(),
                last_prune: None,
            }),
        }
    }

    pub fn off() -> RecheckLimiter {
        RecheckLimiter::new(Duration::ZERO, 1)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn recent(&self, st: &State, mac: &[u8; 6], now: Instant) -> bool {
        st.asked
            .get(mac)
            .is_some_and(|t| now.saturating_duration_since(*t) < self.interval)
    }

    /// Makes room for a new MAC if possible; false when every remembered
    /// MAC is still recent. Old entries are swept at most every 100 ms so a
    /// full table does not cost a sweep per request.
    fn room(&self, st: &mut State, mac: &[u8; 6], now: Instant) -> bool {
        if st.asked.len() < self.capacity || st.asked.contains_key(mac) {
            return true;
        }
        if st
            .last_prune
            .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_millis(100))
        {
            let interval = self.interval;
            st.asked
                .retain(|_, t| now.saturating_duration_since(*t) < interval);
            st.last_prune = Some(now);
        }
        st.asked.len() < self.capacity
    }

    /// The server is being asked about `mac` (for any reason).
    pub fn asked(&self, mac: [u8; 6]) {
        self.asked_at(mac, Instant::now());
    }

    /// [`Self::asked`] at `now` (tests move the clock instead of sleeping).
    pub fn asked_at(&self, mac: [u8; 6], now: Instant) {
        if self.interval.is_zero() {
            return;
        }
        let mut st = self.lock();
        if self.room(&mut st, &mac, now) {
            st.asked.insert(mac, now);
        }
    }

    /// Whether [`Self::try_take`] may succeed now (changes nothing): the
    /// MAC was not asked about within the interval. Room in a full table
    /// is only made (and judged) by `try_take`.
    pub fn would_allow(&self, mac: &[u8; 6]) -> bool {
        self.would_allow_at(mac, Instant::now())
    }

    /// [`Self::would_allow`] at `now`.
    pub fn would_allow_at(&self, mac: &[u8; 6], now: Instant) -> bool {
        if self.interval.is_zero() {
            return false;
        }
        !self.recent(&self.lock(), mac, now)
    }

    /// Takes `mac`'s recheck if it is due: true means "ask the server now".
    pub fn try_take(&self, mac: [u8; 6]) -> bool {
        self.try_take_at(mac, Instant::now())
    }

    /// [`Self::try_take`] at `now`.
    pub fn try_take_at(&self, mac: [u8; 6], now: Instant) -> bool {
        if self.interval.is_zero() {
            return false;
        }
        let mut st = self.lock();
        if self.recent(&st, &mac, now) || !self.room(&mut st, &mac, now) {
            return false;
        }
        st.asked.insert(mac, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_recheck_per_mac_per_interval() {
        let l = RecheckLimiter::new(Duration::from_millis(50), 100);
        let (a, b) = ([1; 6], [2; 6]);
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        assert!(l.would_allow_at(&a, t0));
        assert!(l.try_take_at(a, t0));
        assert!(!l.would_allow_at(&a, at(49)));
        assert!(
            !l.try_take_at(a, at(49)),
            "a second recheck within the interval"
        );
        assert!(l.try_take_at(b, at(49)), "another MAC has its own");
        assert!(l.would_allow_at(&a, at(50)));
        assert!(l.try_take_at(a, at(50)), "due again after the interval");
        // A first lookup counts too: an answer that young is final.
        let c = [3; 6];
        l.asked_at(c, at(50));
        assert!(!l.try_take_at(c, at(99)));
        assert!(l.try_take_at(c, at(100)));
    }

    #[test]
    fn off_never_allows() {
        let l = RecheckLimiter::off();
        assert!(!l.would_allow(&[1; 6]));
        assert!(!l.try_take([1; 6]));
    }

    #[test]
    fn a_full_table_refuses_rather_than_grows() {
        let l = RecheckLimiter::new(Duration::from_secs(60), 3);
        for i in 0..3u8 {
            assert!(l.try_take([i; 6]));
        }
        assert!(!l.try_take([9; 6]), "all three are recent: no room");
        assert_eq!(l.lock().asked.len(), 3);
        let short = RecheckLimiter::new(Duration::from_millis(10), 2);
        let t0 = Instant::now();
        assert!(short.try_take_at([1; 6], t0) && short.try_take_at([2; 6], t0));
        let later = t0 + Duration::from_millis(10);
        assert!(
            short.would_allow_at(&[3; 6], later),
            "a full table of old entries"
        );
        assert!(
            short.try_take_at([3; 6], later),
            "expired entries make room"
        );
        assert!(short.lock().asked.len() <= 2);
    }
}
