//! `Timed`: a driver whose every call has a deadline, so that a runtime that stops answering
//! makes requests fail with "unavailable" instead of hanging them (and the reconciler) forever.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::{AgentEndpoint, Driver, Error, Instance, PlacementSpec, Result};

/// Deadlines of driver calls.
#[derive(Clone, Copy, Debug)]
pub struct Deadlines {
    /// `create`, which may pull an image.
    pub create: Duration,
    /// Every other call.
    pub call: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines { create: Duration::from_secs(900), call: Duration::from_secs(60) }
    }
}

/// Wraps a driver with [`Deadlines`].
pub struct Timed {
    inner: Arc<dyn Driver>,
    deadlines: Deadlines,
}

impl Timed {
    pub fn new(inner: Arc<dyn Driver>, deadlines: Deadlines) -> Timed {
        Timed { inner, deadlines }
    }

    async fn within<T>(&self, limit: Duration, what: &str, f: impl Future<Output = Result<T>>) -> Result<T> {
        match tokio::time::timeout(limit, f).await {
            Ok(r) => r,
            Err(_) => Err(Error::Unavailable(format!(
                "the {} runtime did not answer {what} within {limit:?}",
                self.inner.name()
            ))),
        }
    }
}

#[async_trait::async_trait]
impl Driver for Timed {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn ping(&self) -> Result<()> {
        self.within(self.deadlines.call, "a ping", self.inner.ping()).await
    }

    async fn create(&self, spec: &PlacementSpec) -> Result<()> {
        self.within(self.deadlines.create, "a create", self.inner.create(spec)).await
    }

    async fn start(&self, sandbox_id: &str) -> Result<AgentEndpoint> {
        // Some drivers wait for their instance to run (a pod scheduled, its image pulled) with
        // their own startup timeout: as long as a create.
        self.within(self.deadlines.create, "a start", self.inner.start(sandbox_id)).await
    }

    async fn inspect(&self, sandbox_id: &str) -> Result<Option<Instance>> {
        self.within(self.deadlines.call, "an inspect", self.inner.inspect(sandbox_id)).await
    }

    async fn list(&self) -> Result<Vec<Instance>> {
        self.within(self.deadlines.call, "a list", self.inner.list()).await
    }

    async fn delete(&self, sandbox_id: &str) -> Result<()> {
        self.within(self.deadlines.call, "a delete", self.inner.delete(sandbox_id)).await
    }

    async fn logs(&self, sandbox_id: &str, lines: usize) -> Result<String> {
        self.within(self.deadlines.call, "a logs request", self.inner.logs(sandbox_id, lines)).await
    }

    async fn pause(&self, sandbox_id: &str) -> Result<()> {
        self.within(self.deadlines.call, "a pause", self.inner.pause(sandbox_id)).await
    }

    async fn resume(&self, sandbox_id: &str) -> Result<Option<AgentEndpoint>> {
        // Some drivers recreate the instance: as long as a create.
        self.within(self.deadlines.create, "a resume", self.inner.resume(sandbox_id)).await
    }

    fn progress(&self, sandbox_id: &str) -> Option<String> {
        self.inner.progress(sandbox_id)
    }

    fn disk_caps(&self) -> crate::DiskCaps {
        self.inner.disk_caps()
    }

    async fn unlock_volume(&self, name: &str, key: &crate::VolumeKey) -> Result<()> {
        self.within(self.deadlines.create, "a volume unlock", self.inner.unlock_volume(name, key)).await
    }

    async fn lock_volume(&self, name: &str) -> Result<()> {
        self.within(self.deadlines.create, "a volume lock", self.inner.lock_volume(name)).await
    }

    async fn delete_volume(&self, name: &str) -> Result<()> {
        self.within(self.deadlines.call, "a volume delete", self.inner.delete_volume(name)).await
    }

    async fn snapshot(&self, sandbox_id: &str, image: &str) -> Result<u64> {
        // Writing a large filesystem out may take as long as a create.
        self.within(self.deadlines.create, "a snapshot", self.inner.snapshot(sandbox_id, image)).await
    }

    async fn delete_image(&self, image: &str) -> Result<()> {
        self.within(self.deadlines.call, "an image delete", self.inner.delete_image(image)).await
    }

    async fn save_image(&self, image: &str, dest: &std::path::Path) -> Result<()> {
        self.within(self.deadlines.create, "an image export", self.inner.save_image(image, dest)).await
    }

    async fn load_image(&self, src: &std::path::Path, image: &str) -> Result<u64> {
        self.within(self.deadlines.create, "an image import", self.inner.load_image(src, image)).await
    }

    async fn build_image(&self, context: &std::path::Path, image: &str) -> Result<String> {
        self.within(self.deadlines.create, "an image build", self.inner.build_image(context, image)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A runtime that never answers.
    struct Hung;

    #[async_trait::async_trait]
    impl Driver for Hung {
        fn name(&self) -> &'static str {
            "hung"
        }
        async fn ping(&self) -> Result<()> {
            std::future::pending().await
        }
        async fn create(&self, _: &PlacementSpec) -> Result<()> {
            std::future::pending().await
        }
        async fn start(&self, _: &str) -> Result<AgentEndpoint> {
            std::future::pending().await
        }
        async fn inspect(&self, _: &str) -> Result<Option<Instance>> {
            std::future::pending().await
        }
        async fn list(&self) -> Result<Vec<Instance>> {
            std::future::pending().await
        }
        async fn delete(&self, _: &str) -> Result<()> {
            std::future::pending().await
        }
        async fn logs(&self, _: &str, _: usize) -> Result<String> {
            std::future::pending().await
        }
        async fn pause(&self, _: &str) -> Result<()> {
            std::future::pending().await
        }
        async fn resume(&self, _: &str) -> Result<Option<AgentEndpoint>> {
            std::future::pending().await
        }
        async fn delete_volume(&self, _: &str) -> Result<()> {
            std::future::pending().await
        }
        async fn snapshot(&self, _: &str, _: &str) -> Result<u64> {
            std::future::pending().await
        }
        async fn delete_image(&self, _: &str) -> Result<()> {
            std::future::pending().await
        }
        async fn save_image(&self, _: &str, _: &std::path::Path) -> Result<()> {
            std::future::pending().await
        }
        async fn load_image(&self, _: &std::path::Path, _: &str) -> Result<u64> {
            std::future::pending().await
        }
        async fn build_image(&self, _: &std::path::Path, _: &str) -> Result<String> {
            std::future::pending().await
        }
    }

    #[tokio::test]
    async fn a_hung_runtime_answers_unavailable_in_time() {
        let d = Deadlines { create: Duration::from_millis(80), call: Duration::from_millis(20) };
        let t = Timed::new(Arc::new(Hung), d);
        let started = std::time::Instant::now();
        assert!(matches!(t.list().await, Err(Error::Unavailable(m)) if m.contains("a list")));
        assert!(matches!(t.delete("x").await, Err(Error::Unavailable(_))));
        let e = t.create(&PlacementSpec::default()).await.unwrap_err();
        assert!(e.to_string().contains("the hung runtime did not answer a create within 80ms"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
