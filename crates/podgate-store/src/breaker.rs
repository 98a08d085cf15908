//! Failing fast while the database is out of reach: after a query finds it unreachable, the
//! queries of the next [`OPEN_FOR`] fail at once instead of each waiting for a connection; the
//! first one after that tries the database again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// How long queries fail at once after the database was found unreachable.
const OPEN_FOR: Duration = Duration::from_secs(1);

/// The store's circuit breaker; cheap to clone (clones share it).
#[derive(Clone, Debug)]
pub(crate) struct Breaker {
    start: Instant,
    /// Milliseconds since `start` until which queries fail at once (0: closed).
    open_until: Arc<AtomicU64>,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker { start: Instant::now(), open_until: Arc::new(AtomicU64::new(0)) }
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

    /// Opens the breaker when `e` says the database is out of reach. A wait for a connection
    /// that timed out while the pool holds connections is load, not an outage: it does not.
    pub(crate) fn saw(&self, e: &Error, open_connections: u32) {
        let busy = matches!(e, Error::Database(sqlx::Error::PoolTimedOut)) && open_connections > 0;
        if e.is_unreachable() && !busy {
            self.open_until.store(self.now() + OPEN_FOR.as_millis() as u64, Ordering::Relaxed);
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
        b.saw(&Error::Conflict("x".into()), 0);
        b.check().unwrap();
        b.saw(&Error::Database(sqlx::Error::PoolTimedOut), 4);
        b.check().expect("a busy pool is not an outage");
        b.saw(&Error::Database(sqlx::Error::PoolTimedOut), 0);
        assert!(b.check().unwrap_err().is_unreachable());
        b.open_until.store(0, Ordering::Relaxed);
        b.check().unwrap();
    }
}
