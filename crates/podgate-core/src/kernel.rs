//! The kernel every core service shares: the store, the runtime driver, the policy, metrics,
//! rate limits, the audit trail, activity marks, and the little state that must be one per
//! server (reconciler leadership, refills, resumes). It has no behaviour of its own; the services
//! (`Sandboxes`, `Startup`, `Bootstrap`, `Lifecycle`, `Reconciler`, `Volumes`, `Snapshots`,
//! `Templates`, `Quotas`, `Recordings`, `AgentRequests`, `AccessTokens`; `Terminals` on top of `Sandboxes`) each
//! hold an `Arc` of it and own their operations in their own file.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use podgate_runtime::Driver;
use podgate_store::Store;

use crate::activity::Activity;
use crate::audit::Audit;
use crate::limits::RateLimiter;
use crate::recordings::Recorder;
use crate::{CoreConfig, Metrics};

/// The shared parts of the core.
pub(crate) struct Kernel {
    pub(crate) store: Store,
    /// The runtime, behind per-call deadlines.
    pub(crate) driver: Arc<dyn Driver>,
    pub(crate) cfg: CoreConfig,
    pub(crate) metrics: Metrics,
    pub(crate) limiter: RateLimiter,
    pub(crate) audit: Audit,
    /// User activity seen by this server, for idle shutdown.
    pub(crate) activity: Activity,
    /// Writes terminal recordings into the store.
    pub(crate) recorder: Recorder,
    /// Whether this replica held the reconciler lease at its last check.
    pub(crate) leading: AtomicBool,
    /// Templates whose warm pools are being refilled now.
    pub(crate) refilling: crate::pools::Refills,
    /// Sandboxes whose idle pause the runtime refused (e.g. Kubernetes without a persistent
    /// `/workspace`): not tried again while they live.
    pub(crate) idle_refused: Mutex<HashSet<String>>,
    /// One lock per sandbox being resumed, so that concurrent uses resume it once.
    pub(crate) resuming: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Kernel {
    pub(crate) fn new(store: Store, driver: Arc<dyn Driver>, cfg: CoreConfig, metrics: Metrics) -> Kernel {
        // A runtime that stops answering fails requests instead of hanging them.
        let driver: Arc<dyn Driver> = Arc::new(podgate_runtime::Timed::new(driver, cfg.driver_deadlines));
        Kernel {
            limiter: RateLimiter::new(store.clone(), cfg.rates),
            audit: Audit::new(store.clone()),
            recorder: Recorder::new(store.clone(), cfg.recording.max_bytes),
            activity: Activity::new(store.clone()),
            store,
            driver,
            cfg,
            metrics,
            leading: AtomicBool::new(false),
            refilling: Default::default(),
            idle_refused: Default::default(),
            resuming: Default::default(),
        }
    }
}

/// Each service is a handle on the kernel; any service reaches another through these.
pub(crate) trait Services {
    fn sandboxes(&self) -> crate::Sandboxes;
    fn volumes(&self) -> crate::volumes::Volumes;
    fn snapshots(&self) -> crate::snapshots::Snapshots;
    fn templates(&self) -> crate::templates::Templates;
    fn quotas(&self) -> crate::quotas::Quotas;
    fn lifecycle(&self) -> crate::lifecycle::Lifecycle;
    fn startup(&self) -> crate::startup::Startup;
    fn bootstrap(&self) -> crate::bootstrap::Bootstrap;
    fn reconciler(&self) -> crate::reconciler::Reconciler;
    fn recordings(&self) -> crate::recordings::Recordings;
    fn agent_requests(&self) -> crate::agent_requests::AgentRequests;
    fn access_tokens(&self) -> crate::access_tokens::AccessTokens;
    fn observe(&self) -> crate::observe::Observe;
}

impl Services for Arc<Kernel> {
    fn sandboxes(&self) -> crate::Sandboxes {
        crate::Sandboxes { k: self.clone() }
    }
    fn volumes(&self) -> crate::volumes::Volumes {
        crate::volumes::Volumes { k: self.clone() }
    }
    fn snapshots(&self) -> crate::snapshots::Snapshots {
        crate::snapshots::Snapshots { k: self.clone() }
    }
    fn templates(&self) -> crate::templates::Templates {
        crate::templates::Templates { k: self.clone() }
    }
    fn quotas(&self) -> crate::quotas::Quotas {
        crate::quotas::Quotas { k: self.clone() }
    }
    fn lifecycle(&self) -> crate::lifecycle::Lifecycle {
        crate::lifecycle::Lifecycle { k: self.clone() }
    }
    fn startup(&self) -> crate::startup::Startup {
        crate::startup::Startup { k: self.clone() }
    }
    fn bootstrap(&self) -> crate::bootstrap::Bootstrap {
        crate::bootstrap::Bootstrap { k: self.clone() }
    }
    fn reconciler(&self) -> crate::reconciler::Reconciler {
        crate::reconciler::Reconciler { k: self.clone() }
    }
    fn recordings(&self) -> crate::recordings::Recordings {
        crate::recordings::Recordings { k: self.clone() }
    }
    fn agent_requests(&self) -> crate::agent_requests::AgentRequests {
        crate::agent_requests::AgentRequests { k: self.clone() }
    }
    fn access_tokens(&self) -> crate::access_tokens::AccessTokens {
        crate::access_tokens::AccessTokens { k: self.clone() }
    }
    fn observe(&self) -> crate::observe::Observe {
        crate::observe::Observe { k: self.clone() }
    }
}
