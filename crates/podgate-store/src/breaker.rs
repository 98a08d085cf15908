//! Failing fast while the database is out of reach: after a query finds it unreachable, the
//! queries of the next [`OPEN_FOR`] fail at once instead of each waiting for a connection; the
//! first one after that tries the database again. A database that is gone refuses connections;
//! one that hangs makes waits for a connection time out while no query completes (under load,
//! waits may time out too, but queries keep completing).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// How long queries fail at once after the database was found unreachable.
const OPEN_FOR: Duration = Duration::from_secs(1);

/// How long a query waits for a database connection before it fails (and the API answers 503).
pub(crate) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// The store's circuit breaker; cheap to clone (clones share it).
#[derive(Clone, Debug)]
pub(crate) struct Breaker {
    start: Instant,
    /// Milliseconds since `start` until which queries fail at once (0: closed).
    open_until: Arc<AtomicU64>,
    /// Milliseconds since `start` when a query last completed.
    last_ok: Arc<AtomicU64>,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker { start: Instant::now(), open_until: Arc::new(AtomicU64::new(0)), last_ok: Arc::new(AtomicU64::new(0)) }
    }
}

impl Breaker {
    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Fails while the breaker is open.
    pub(crate) fn check(&self) -> Result<()> {
        if self.now() < self.open_until.load(Ordering::Relaxed) {
            return Err(Error::Database(sqlx::Error::PoolTimedOut));
        }
        Ok(())
    }

    /// Records that a query completed.
    pub(crate) fn ok(&self) {
        self.last_ok.store(self.now(), Ordering::Relaxed);
    }

    /// Opens the breaker when `e` says the database is out of reach. A wait for a connection
    /// that timed out while other queries completed within that wait is load, not an outage.
    pub(crate) fn saw(&self, e: &Error) {
        let now = self.now();
        let progressing = now.saturating_sub(self.last_ok.load(Ordering::Relaxed)) < ACQUIRE_TIMEOUT.as_millis() as u64;
        let busy = matches!(e, Error::Database(sqlx::Error::PoolTimedOut)) && progressing;
        if e.is_unreachable() && !busy {
            self.open_until.store(now + OPEN_FOR.as_millis() as u64, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_on_outages_only() {
        let b = Breaker::default();
        b.check().unwrap();
        b.saw(&Error::Conflict("x".into()));
        b.check().unwrap();
        b.ok();
        b.saw(&Error::Database(sqlx::Error::PoolTimedOut));
        b.check().expect("a wait that timed out while queries complete is load");
        b.last_ok.store(0, Ordering::Relaxed);
        b.open_until.store(0, Ordering::Relaxed);
        // Long after the last completed query (the test's clock starts at 0 and `now` is
        // compared with it): pretend time has passed.
        let later = Breaker { start: Instant::now() - Duration::from_secs(10), ..b.clone() };
        later.saw(&Error::Database(sqlx::Error::PoolTimedOut));
        assert!(later.check().unwrap_err().is_unreachable());
        later.open_until.store(0, Ordering::Relaxed);
        later.check().unwrap();
        // Refused connections (an I/O error) open it whatever the load.
        later.ok();
        later.saw(&Error::Database(sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))));
        assert!(later.check().is_err());
    }
}
