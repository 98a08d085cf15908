//! podgate-agent: runs as PID 1 in a sandbox, reaps zombies, forwards signals and serves the agent API.

pub mod archive;
pub mod args;
pub mod bootstrap;
pub mod exec;
pub mod fetch;
pub mod files;
pub mod init;
pub mod launch;
pub mod listen;
pub mod metrics;
pub mod paths;
pub mod ports;
pub mod privileges;
pub mod process_routes;
pub mod processes;
pub mod pty;
pub mod random;
pub mod reaper;
pub mod server;
pub mod sftp;
pub mod signals;
pub mod terminals;
pub mod tunnel;
pub mod watch;
