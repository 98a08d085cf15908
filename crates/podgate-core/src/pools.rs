//! Warm-pool refills: one at a time per template, and after a failure not again before a
//! backoff (5 s, doubling up to 5 min; a success resets it), so that a pool that cannot be
//! filled (no image, no room on the cluster) neither floods the runtime nor the log.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The first wait after a failed refill, and the longest.
const FIRST: Duration = Duration::from_secs(5);
const LONGEST: Duration = Duration::from_secs(300);

#[derive(Default)]
struct Refill {
    busy: bool,
    failures: u32,
    not_before: Option<Instant>,
}

/// The refill state of every template with a pool.
#[derive(Default)]
pub struct Refills(Mutex<HashMap<String, Refill>>);

/// The wait after `failures` failed refills in a row.
pub fn backoff(failures: u32) -> Duration {
    match failures {
        0 => Duration::ZERO,
        n => FIRST.saturating_mul(1 << (n - 1).min(16)).min(LONGEST),
    }
}

impl Refills {
    /// Whether template `name` may start a refill now; if so it is marked busy until [`Refills::end`].
    pub fn begin(&self, name: &str, now: Instant) -> bool {
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let r = all.entry(name.to_string()).or_default();
        if r.busy || r.not_before.is_some_and(|t| now < t) {
            return false;
        }
        r.busy = true;
        true
    }

    /// Ends template `name`'s refill; returns the wait before the next one may start.
    pub fn end(&self, name: &str, ok: bool, now: Instant) -> Duration {
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let r = all.entry(name.to_string()).or_default();
        r.busy = false;
        r.failures = if ok { 0 } else { r.failures.saturating_add(1) };
        let wait = backoff(r.failures);
        r.not_before = (!wait.is_zero()).then(|| now + wait);
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_and_a_success_resets() {
        let seq: Vec<u64> = (0..9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(seq, [0, 5, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(backoff(u32::MAX), LONGEST);

        let (r, t0) = (Refills::default(), Instant::now());
        assert!(r.begin("py", t0));
        assert!(!r.begin("py", t0), "one refill at a time");
        assert!(r.begin("go", t0), "templates are independent");
        assert_eq!(r.end("py", false, t0), Duration::from_secs(5));
        assert!(!r.begin("py", t0 + Duration::from_secs(4)));
        assert!(r.begin("py", t0 + Duration::from_secs(5)));
        assert_eq!(r.end("py", false, t0 + Duration::from_secs(5)), Duration::from_secs(10));
        assert!(!r.begin("py", t0 + Duration::from_secs(14)));
        assert!(r.begin("py", t0 + Duration::from_secs(15)));
        assert_eq!(r.end("py", true, t0 + Duration::from_secs(15)), Duration::ZERO);
        assert!(r.begin("py", t0 + Duration::from_secs(15)), "a success resets the backoff");
    }
}
