//! The sandbox network: a bridge with inter-container traffic off, created once and shared by
//! the servers that start together (the oldest one is kept).

use std::collections::HashMap;

use bollard::models::NetworkCreateRequest;
use bollard::query_parameters::{InspectNetworkOptions, ListNetworksOptionsBuilder};
use podgate_runtime::{Error, Result};

use crate::DockerDriver;
use crate::errors::engine_error;

impl DockerDriver {
    /// Creates the sandbox network when missing and returns its id and the name of its bridge.
    /// Servers starting together may each create one: all keep the oldest and remove the others.
    pub(crate) async fn ensure_network(&self) -> Result<(String, String)> {
        let name = &self.cfg.network;
        let unavailable =
            |e: bollard::errors::Error| Error::Unavailable(format!("network {name}: {}", engine_error(&e)));
        let mut ids = self.networks_named(name).await?;
        if ids.is_empty() {
            let opts = HashMap::from([("com.docker.network.bridge.enable_icc".to_string(), "false".to_string())]);
            let body = NetworkCreateRequest {
                name: name.clone(),
                driver: Some("bridge".into()),
                options: Some(opts),
                labels: Some(HashMap::from([("io.podgate.network".to_string(), "egress".to_string())])),
                ..Default::default()
            };
            match self.docker.create_network(body).await {
                Ok(_) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => {}
                Err(e) => return Err(unavailable(e)),
            }
            ids = self.networks_named(name).await?;
        }
        let Some(id) = ids.first().cloned() else {
            return Err(Error::Unavailable(format!("network {name} vanished after it was created")));
        };
        for dup in &ids[1..] {
            let _ = self.docker.remove_network(dup).await;
        }
        let net = self.docker.inspect_network(&id, None::<InspectNetworkOptions>).await.map_err(unavailable)?;
        if net.driver.as_deref() != Some("bridge") {
            return Err(Error::InvalidSpec(format!("network {name} is not a bridge network")));
        }
        let bridge = net
            .options
            .and_then(|o| o.get("com.docker.network.bridge.name").cloned())
            .unwrap_or_else(|| format!("br-{}", id.get(..12).unwrap_or(&id)));
        Ok((id, bridge))
    }

    /// Ids of the networks called exactly `name`, oldest first.
    pub(crate) async fn networks_named(&self, name: &str) -> Result<Vec<String>> {
        let filters = HashMap::from([("name", vec![name.to_string()])]);
        let opts = ListNetworksOptionsBuilder::new().filters(&filters).build();
        let list = self
            .docker
            .list_networks(Some(opts))
            .await
            .map_err(|e| Error::Unavailable(format!("listing networks: {}", engine_error(&e))))?;
        let mut nets: Vec<(String, String)> = list
            .into_iter()
            .filter(|n| n.name.as_deref() == Some(name))
            .filter_map(|n| Some((sortable_time(n.created.as_deref().unwrap_or("")), n.id?)))
            .collect();
        nets.sort();
        Ok(nets.into_iter().map(|(_, id)| id).collect())
    }
}

/// An RFC 3339 time from the engine (fraction of varying length) in a form that sorts as text.
fn sortable_time(t: &str) -> String {
    let (whole, frac) = t.split_once('.').unwrap_or((t.trim_end_matches('Z'), "0Z"));
    let digits: String = frac.chars().take_while(char::is_ascii_digit).collect();
    format!("{whole}.{digits:0<9}")
}
