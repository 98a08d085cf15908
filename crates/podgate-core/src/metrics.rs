//! Prometheus metrics: sandboxes by state, create latency, HTTP requests by route and status.

use std::sync::Arc;

use podgate_store::Store;
use podgate_types::api::SandboxState;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

/// The server's metrics registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    sandboxes: Family<StateLabels, Gauge>,
    create_seconds: Family<OutcomeLabels, Histogram>,
    http: Family<HttpLabels, Counter>,
    gateway_refused: Family<ReasonLabels, Counter>,
    gateway_connections: Counter,
    leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("podgate");
        let sandboxes = Family::<StateLabels, Gauge>::default();
        registry.register("sandboxes", "Sandboxes by lifecycle state (from the database)", sandboxes.clone());
        let create_seconds = Family::<OutcomeLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.05, 2.0, 12))
        });
        registry.register(
            "sandbox_create_seconds",
            "Time from a create request to a running sandbox whose agent answers, or to its failure",
            create_seconds.clone(),
        );
        let http = Family::<HttpLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests by route, method and status", http.clone());
        let gateway_refused = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "gateway_refused",
            "Terminal WebSocket connections refused before the upgrade, by reason",
            gateway_refused.clone(),
        );
        let gateway_connections = Counter::default();
        registry.register(
            "gateway_connections",
            "Terminal WebSocket connections spliced to an agent",
            gateway_connections.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "reconciler_leader",
            "1 while this replica holds the reconciler lease (runs expiry, idle pauses, cleanup)",
            leader.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            sandboxes,
            create_seconds,
            http,
            gateway_refused,
            gateway_connections,
            leader,
        }
    }
}

impl Metrics {
    /// Records one sandbox creation attempt.
    pub fn observe_create(&self, seconds: f64, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.create_seconds.get_or_create(&OutcomeLabels { outcome: outcome.into() }).observe(seconds);
    }

    /// Records one HTTP request; `route` is the matched route template, never the raw path.
    pub fn observe_http(&self, route: &str, method: &str, status: u16) {
        // Any client picks the method: only the standard ones become label values, so the set
        // of series stays bounded.
        let method = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "PATCH" | "OPTIONS" | "CONNECT" | "TRACE" => method,
            _ => "other",
        };
        self.http.get_or_create(&HttpLabels { route: route.into(), method: method.into(), status }).inc();
    }

    /// Records a refused terminal connection.
    pub fn gateway_refused(&self, reason: &str) {
        self.gateway_refused.get_or_create(&ReasonLabels { reason: reason.into() }).inc();
    }

    /// Records whether this replica leads the reconciler.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Records a terminal connection spliced to its agent.
    pub fn gateway_connected(&self) {
        self.gateway_connections.inc();
    }

    /// Refreshes the per-state gauges from the store and renders the text exposition format.
    pub async fn render(&self, store: &Store) -> crate::Result<String> {
        let counts = store.count_by_state().await?;
        for st in SandboxState::ALL {
            let n = counts.iter().find(|(s, _)| s == st.as_str()).map_or(0, |(_, n)| *n);
            self.sandboxes.get_or_create(&StateLabels { state: st.as_str().into() }).set(n);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .map_err(|e| crate::Error::Internal(format!("encoding metrics: {e}")))?;
        Ok(out)
    }
}
