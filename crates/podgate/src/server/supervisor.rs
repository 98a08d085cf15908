//! The server's long-running parts (HTTP, SSH, the reconciler, the waker, the purgers) under one
//! supervisor: they start together and stop together. A signal stops them all; so does any one
//! of them ending on its own, which is a failure (the server then exits with its error instead
//! of serving on without, say, its reconciler).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The running parts of a server.
#[derive(Default)]
pub(super) struct Supervisor {
    stop: CancellationToken,
    tasks: TaskTracker,
    /// The first part that ended on its own, and why.
    failed: Arc<Mutex<Option<String>>>,
}

impl Supervisor {
    /// Starts part `name`: `part` gets the stop token and must return soon after it is cancelled.
    pub(super) fn spawn<F, Fut>(&self, name: &'static str, part: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let (stop, failed) = (self.stop.clone(), self.failed.clone());
        let fut = part(stop.clone());
        self.tasks.spawn(async move {
            let r = fut.await;
            if stop.is_cancelled() {
                if let Err(e) = r {
                    tracing::warn!(part = name, error = format!("{e:#}"), "stopping failed");
                }
                tracing::debug!(part = name, "stopped");
                return;
            }
            let why = match r {
                Ok(()) => "ended".to_string(),
                Err(e) => format!("{e:#}"),
            };
            tracing::error!(part = name, error = %why, "a part of the server ended; stopping the server");
            failed.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(format!("{name}: {why}"));
            stop.cancel();
        });
    }

    /// Starts `part`, a loop that never ends by itself, stopped by dropping it.
    pub(super) fn spawn_loop<Fut>(&self, name: &'static str, part: Fut)
    where
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.spawn(name, |stop| async move {
            tokio::select! {
                () = stop.cancelled() => Ok(()),
                () = part => Ok(()),
            }
        });
    }

    /// Resolves once a part ended on its own (the server is stopping).
    pub(super) async fn failure(&self) {
        self.stop.cancelled().await
    }

    /// Stops every part and waits for them (at most `grace`); the first part that had ended on
    /// its own is the error.
    pub(super) async fn stop(self, grace: Duration) -> anyhow::Result<()> {
        self.stop.cancel();
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait()).await.is_err() {
            tracing::warn!(?grace, "parts of the server did not stop in time; leaving them");
        }
        match self.failed.lock().unwrap_or_else(|e| e.into_inner()).take() {
            Some(why) => anyhow::bail!("the server stopped because {why}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_part_ending_stops_all_and_is_the_error() {
        let sup = Supervisor::default();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let stopped = tx.clone();
        sup.spawn("http", move |stop| async move {
            stop.cancelled().await;
            stopped.send("http").unwrap();
            Ok(())
        });
        sup.spawn_loop("reconciler", std::future::pending());
        sup.spawn("ssh", |_| async { anyhow::bail!("address in use") });
        tokio::time::timeout(Duration::from_secs(5), sup.failure()).await.expect("the failure stops the server");
        let err = sup.stop(Duration::from_secs(5)).await.unwrap_err().to_string();
        assert_eq!(err, "the server stopped because ssh: address in use");
        assert_eq!(rx.recv().await, Some("http"), "the others were told to stop");
    }

    #[tokio::test]
    async fn a_requested_stop_is_clean() {
        let sup = Supervisor::default();
        sup.spawn("http", |stop| async move {
            stop.cancelled().await;
            Ok(())
        });
        sup.spawn_loop("purge", std::future::pending());
        sup.stop(Duration::from_secs(5)).await.unwrap();
    }
}
