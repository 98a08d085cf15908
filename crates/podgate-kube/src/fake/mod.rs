//! Test doubles for the Kubernetes driver (feature `test-util`): a fake API server and a
//! kubelet that runs pods on the local Docker engine. They let the driver and the server's
//! Kubernetes path be tested on a machine without a cluster; they never replace the tests
//! against a real cluster (`PODGATE_TEST_KUBECONFIG`).

mod agent_image;
mod api;
mod cleanup;
mod cluster;
mod kubelet;
mod scheduler;

pub use agent_image::AgentImage;
pub use api::Fake;
pub use cleanup::ClusterCleanup;
pub use cluster::Behaviour;
pub use kubelet::{DockerKubelet, Waiting};
