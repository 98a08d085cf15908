//! The agent image for tests: the static agent alone at `/podgate-agent`, as
//! `deploy/agent.Dockerfile` makes it, imported into the local Docker engine (nothing is pulled)
//! and removed when dropped.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// An agent image in the local engine; removed on drop.
pub struct AgentImage {
    pub name: String,
}

impl AgentImage {
    /// Imports `agent` (the static binary) as a new image with a name unique in this process
    /// (tests of one file may run as threads of one process).
    pub fn import(agent: &Path) -> std::io::Result<AgentImage> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("podgate-test/agent:p{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let (Some(dir), Some(file)) = (agent.parent(), agent.file_name()) else {
            return Err(std::io::Error::other(format!("{} is not a file path", agent.display())));
        };
        // One entry, named podgate-agent whatever the binary's file name.
        let tar = Command::new("tar")
            .arg("-C")
            .arg(dir)
            .args(["--transform", "s,.*,podgate-agent,", "-cf", "-"])
            .arg(file)
            .output()?;
        let mut import = Command::new("docker")
            .args(["import", "--change", "USER 65534:65534", "-", &name])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()?;
        std::io::Write::write_all(import.stdin.as_mut().expect("piped stdin"), &tar.stdout)?;
        drop(import.stdin.take());
        if !import.wait()?.success() {
            return Err(std::io::Error::other(format!("docker import of {name} failed")));
        }
        Ok(AgentImage { name })
    }
}

impl Drop for AgentImage {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", "-f", &self.name]).output();
    }
}
