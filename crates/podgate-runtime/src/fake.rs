//! A driver for tests of the layers above it (feature `test-util`): it places nothing, every
//! instance's agent is one unix socket the test serves, and it records what it was asked.

use std::path::PathBuf;
use std::sync::Mutex;

use crate::{AgentEndpoint, Instance, InstanceStatus, PlacementSpec};

/// The fake driver; pause, resume and snapshots are refused as unsupported.
pub struct FakeDriver {
    socket: PathBuf,
    /// Instances removed, in order.
    pub deleted: Mutex<Vec<String>>,
    /// Instances started, in order.
    pub started: Mutex<Vec<String>>,
    /// Pauses asked for (each refused: this driver cannot pause).
    pub pauses: Mutex<u32>,
    /// Instances that are gone from the runtime's listing.
    pub vanished: Mutex<Vec<String>>,
    /// Instances whose delete the runtime refuses.
    pub undeletable: Mutex<Vec<String>>,
}

impl FakeDriver {
    /// A driver whose every instance's agent answers on the unix socket `socket`.
    pub fn new(socket: PathBuf) -> FakeDriver {
        FakeDriver {
            socket,
            deleted: Mutex::default(),
            started: Mutex::default(),
            pauses: Mutex::default(),
            vanished: Mutex::default(),
            undeletable: Mutex::default(),
        }
    }
}

#[async_trait::async_trait]
impl crate::Driver for FakeDriver {
    fn name(&self) -> &'static str {
        "fake"
    }
    async fn ping(&self) -> crate::Result<()> {
        Ok(())
    }
    async fn create(&self, _spec: &PlacementSpec) -> crate::Result<()> {
        Ok(())
    }
    async fn start(&self, id: &str) -> crate::Result<AgentEndpoint> {
        self.started.lock().unwrap().push(id.into());
        Ok(AgentEndpoint::Unix(self.socket.clone()))
    }
    async fn inspect(&self, id: &str) -> crate::Result<Option<Instance>> {
        Ok(Some(Instance::new(id, InstanceStatus::Running)))
    }
    async fn list(&self) -> crate::Result<Vec<Instance>> {
        let mut deleted = self.deleted.lock().unwrap().clone();
        deleted.extend(self.vanished.lock().unwrap().iter().cloned());
        let started = self.started.lock().unwrap().clone();
        let live = started.into_iter().filter(|id| !deleted.contains(id));
        Ok(live.map(|id| Instance::new(id, InstanceStatus::Running)).collect())
    }
    async fn delete(&self, id: &str) -> crate::Result<()> {
        if self.undeletable.lock().unwrap().iter().any(|u| u == id) {
            return Err(crate::Error::Unavailable("the runtime refuses".into()));
        }
        self.deleted.lock().unwrap().push(id.into());
        Ok(())
    }
    async fn logs(&self, _id: &str, _lines: usize) -> crate::Result<String> {
        Ok(String::new())
    }
    async fn pause(&self, _id: &str) -> crate::Result<()> {
        *self.pauses.lock().unwrap() += 1;
        Err(crate::Error::Unsupported { driver: "fake", what: "pause".into() })
    }
    async fn resume(&self, _id: &str) -> crate::Result<Option<crate::AgentEndpoint>> {
        Err(crate::Error::Unsupported { driver: "fake", what: "resume".into() })
    }
    async fn delete_volume(&self, _name: &str) -> crate::Result<()> {
        Ok(())
    }
    async fn snapshot(&self, _id: &str, _image: &str) -> crate::Result<u64> {
        Err(crate::Error::Unsupported { driver: "fake", what: "snapshot".into() })
    }
    async fn delete_image(&self, _image: &str) -> crate::Result<()> {
        Ok(())
    }
    async fn save_image(&self, _image: &str, _dest: &std::path::Path) -> crate::Result<()> {
        Ok(())
    }
    async fn load_image(&self, _src: &std::path::Path, _image: &str) -> crate::Result<u64> {
        Ok(0)
    }
    async fn build_image(&self, _context: &std::path::Path, _image: &str) -> crate::Result<String> {
        Ok(String::new())
    }
}
