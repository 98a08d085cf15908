//! Child supervision: spawns processes, reaps every exited child (our own and re-parented orphans)
//! and hands each tracked child's exit status to whoever waits for it.
//!
//! The agent never uses `waitpid` on single children elsewhere: this module is the only reaper, so
//! zombies re-parented to PID 1 are collected and no exit status is stolen.

use std::collections::HashMap;
use std::io;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};

use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use tokio::sync::oneshot;

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    /// Shell-style code: the exit code, or 128+N for signal N.
    pub fn code(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }
}

/// The process table: pids we spawned and wait for.
#[derive(Clone, Default)]
pub struct Reaper {
    tracked: Arc<Mutex<HashMap<i32, oneshot::Sender<Exit>>>>,
}

impl Reaper {
    /// Spawns `cmd` and registers it before any SIGCHLD for it can be handled.
    pub fn spawn(&self, cmd: &mut Command) -> io::Result<(Child, oneshot::Receiver<Exit>)> {
        let (tx, rx) = oneshot::channel();
        if let Some((uid, gid)) = crate::privileges::spawn_as() {
            // The agent's own uid never reaches a process of the sandbox.
            use std::os::unix::process::CommandExt as _;
            cmd.uid(uid).gid(gid);
        }
        let mut tracked = self.lock();
        let child = cmd.spawn()?;
        let pid = i32::try_from(child.id()).map_err(|_| io::Error::other("pid out of range"))?;
        tracked.insert(pid, tx);
        Ok((child, rx))
    }

    /// Collects every exited child without blocking; returns how many were reaped.
    pub fn reap(&self) -> usize {
        let mut tracked = self.lock();
        let mut n = 0;
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => {
                    n += 1;
                    if let Some(tx) = tracked.remove(&pid.as_raw()) {
                        let _ = tx.send(Exit::Code(code));
                    }
                }
                Ok(WaitStatus::Signaled(pid, sig, _)) => {
                    n += 1;
                    if let Some(tx) = tracked.remove(&pid.as_raw()) {
                        let _ = tx.send(Exit::Signal(sig as i32));
                    }
                }
                Ok(WaitStatus::StillAlive) | Err(_) => return n,
                Ok(_) => {}
            }
        }
    }

    /// Pids currently tracked.
    pub fn pids(&self) -> Vec<i32> {
        self.lock().keys().copied().collect()
    }

    /// Sends `sig` to the process group of every tracked child (each is its own group leader).
    pub fn signal_all(&self, sig: Signal) {
        for pid in self.pids() {
            let _ = killpg(Pid::from_raw(pid), sig);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, oneshot::Sender<Exit>>> {
        // A panic while holding the lock cannot leave the map inconsistent: keep going.
        self.tracked.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Reaps on every SIGCHLD, and every second as a safety net. Runs forever.
pub async fn run(reaper: Reaper) -> io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut sigchld = signal(SignalKind::child())?;
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = sigchld.recv() => {}
            _ = tick.tick() => {}
        }
        reaper.reap();
    }
}
