//! Connection-rate throttling per client address: at most N new connections a minute from one
//! address (a sliding window of one-minute buckets kept for the last two minutes).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Addresses tracked at most; beyond that, addresses idle for a minute are forgotten.
const MAX_ADDRESSES: usize = 100_000;

pub(crate) struct Throttle {
    per_minute: u32,
    start: Instant,
    /// address → (minute, connections in it, connections in the minute before).
    seen: Mutex<HashMap<IpAddr, (u64, u32, u32)>>,
}

impl Throttle {
    pub(crate) fn new(per_minute: u32) -> Throttle {
        Throttle { per_minute, start: Instant::now(), seen: Default::default() }
    }

    /// Counts a new connection from `ip`; false when the address is over its rate.
    pub(crate) fn admit(&self, ip: IpAddr) -> bool {
        self.admit_at(ip, self.start.elapsed().as_millis() as u64)
    }

    fn admit_at(&self, ip: IpAddr, now_ms: u64) -> bool {
        if self.per_minute == 0 {
            return true;
        }
        let minute = now_ms / 60_000;
        let into = (now_ms % 60_000) as f64 / 60_000.0;
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= MAX_ADDRESSES && !seen.contains_key(&ip) {
            seen.retain(|_, (m, _, _)| *m + 1 >= minute);
        }
        let e = seen.entry(ip).or_insert((minute, 0, 0));
        if e.0 != minute {
            let previous = if e.0 + 1 == minute { e.1 } else { 0 };
            *e = (minute, 0, previous);
        }
        // The previous minute counts for the part of it still inside the last 60 s.
        let recent = f64::from(e.1) + f64::from(e.2) * (1.0 - into);
        if recent >= f64::from(self.per_minute) {
            return false;
        }
        e.1 += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_each_address() {
        let t = Throttle::new(3);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!((0..3).all(|i| t.admit_at(a, 1000 + i)));
        assert!(!t.admit_at(a, 2000), "a fourth within the minute");
        assert!(t.admit_at(b, 2000), "another address is not affected");
        // The previous minute still counts for the part of it within the last 60 s.
        assert!(!t.admit_at(a, 60_000));
        assert!(t.admit_at(a, 60_000 + 30_000), "1.5 recent");
        assert!(t.admit_at(a, 60_000 + 31_000), "2.45 recent");
        assert!(!t.admit_at(a, 60_000 + 32_000), "3.4 recent");
        assert!(t.admit_at(a, 180_000), "two minutes later the past is forgotten");
        assert!((0..100).all(|i| Throttle::new(0).admit_at(a, i)));
    }
}
