//! `podgate`: the command-line client and, with the `server` feature (on by default), the
//! control-plane server in one binary.

mod cli;
mod files;
#[cfg(feature = "server")]
mod runtime_args;
#[cfg(feature = "server")]
mod server;

use clap::{CommandFactory as _, FromArgMatches as _, Subcommand};

/// Self-hosted sandboxes: isolated Linux containers on demand.
#[derive(clap::Parser)]
#[command(name = "podgate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the podgate server (REST API, reconciler) on this machine.
    #[cfg(feature = "server")]
    Server(Box<server::ServerArgs>),
    /// Save the server URL and token for later commands.
    Login(cli::LoginArgs),
    /// Manage users (admins): create, ls.
    User(cli::UserArgs),
    /// Manage API tokens: create, ls, revoke.
    Token(cli::TokenArgs),
    /// Manage your SSH public keys (for `ssh -p 2222 NAME@host`): add, ls, rm.
    SshKey(cli::SshKeyArgs),
    /// Print OpenSSH `Host` blocks for your sandboxes (append to ~/.ssh/config).
    SshConfig(cli::SshConfigArgs),
    /// Rotate the server's session-token signing keys (admins).
    Keys(cli::KeysArgs),
    /// Create a sandbox and wait until it runs.
    Up(Box<cli::UpArgs>),
    /// List sandboxes.
    Ls(cli::LsArgs),
    /// Run a command in a sandbox; exits with its exit code.
    Exec(cli::ExecArgs),
    /// Delete sandboxes (their persistent volumes stay unless --volume).
    Down(cli::DownArgs),
    /// Delete sandboxes, like `down`.
    Rm(cli::DownArgs),
    /// Persistent volumes: list, delete.
    Volume(cli::VolumeArgs),
    /// Open an encrypted workspace with its passphrase.
    Unlock(cli::LockArgs),
    /// Lock an encrypted workspace: its files are unreadable until `unlock`.
    Lock(cli::LockArgs),
    /// Snapshots of sandboxes (your images): create, list, delete, export, import.
    #[command(visible_alias = "image")]
    Snapshot(cli::SnapshotArgs),
    /// A new sandbox from a snapshot of a running one.
    Fork(cli::ForkArgs),
    /// Templates and their warm pools: define (admins), list, delete.
    Template(cli::TemplateArgs),
    /// Freeze sandboxes, keeping their processes and memory (using one resumes it).
    Pause(cli::PauseArgs),
    /// Continue paused sandboxes.
    Resume(cli::PauseArgs),
    /// Extend a sandbox's TTL and/or set its idle timeout.
    Extend(cli::ExtendArgs),
    /// Open an interactive terminal in a sandbox (re-attaches after a dropped connection).
    Enter(cli::EnterArgs),
    /// List a sandbox's terminals.
    Terminals(cli::TerminalsArgs),
    /// Copy files or directories to or from a sandbox (NAME:PATH names the sandbox side).
    Cp(cli::CpArgs),
    /// Show a sandbox's bootstrap log (fetch, verify, extract, install); -f follows it.
    Logs(cli::LogsArgs),
    /// List a sandbox's terminal recordings, or print one (asciicast v2).
    Recordings(cli::RecordingsArgs),
    /// Keep a local directory and a sandbox directory in sync, both ways, until interrupted.
    Sync(cli::SyncArgs),
    /// Forward local ports to ports inside a sandbox.
    PortForward(cli::PortForwardArgs),
    /// The E2B-compatible API: `podgate e2b env` prints the environment for E2B SDK programs.
    E2b(cli::E2bArgs),
}

/// The command line, with `podgate server`'s config file (`--config`) as its flags' defaults.
fn parse() -> Cli {
    let exit = |e: clap::Error| -> ! { e.exit() };
    with_config_file(Cli::from_arg_matches(&Cli::command().get_matches()).unwrap_or_else(|e| exit(e)))
}

/// Without the server there is no config file to read.
#[cfg(not(feature = "server"))]
fn with_config_file(cli: Cli) -> Cli {
    cli
}

/// `podgate server --config FILE`: the command line parsed again with the file's values as the
/// flags' defaults.
#[cfg(feature = "server")]
fn with_config_file(cli: Cli) -> Cli {
    let exit = |e: clap::Error| -> ! { e.exit() };
    let Command::Server(args) = &cli.command else { return cli };
    let Some(path) = &args.config else { return cli };
    let server = Cli::command().find_subcommand("server").cloned().expect("the server subcommand");
    let file = match server::ConfigFile::read(path, &server) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("podgate: {e:#}");
            std::process::exit(2);
        }
    };
    let cmd = Cli::command().mut_subcommand("server", |s| file.apply(s));
    let mut cli = Cli::from_arg_matches(&cmd.get_matches()).unwrap_or_else(|e| exit(e));
    if let Command::Server(args) = &mut cli.command {
        args.oidc_file = file.oidc;
    }
    cli
}

fn main() {
    let cli = parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("podgate: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            #[cfg(feature = "server")]
            Command::Server(a) => server::run(*a).await.map(|()| 0),
            Command::Login(a) => cli::login(a).await.map(|()| 0),
            Command::Up(a) => cli::up(*a).await.map(|()| 0),
            Command::Ls(a) => cli::ls(a).await.map(|()| 0),
            Command::Exec(a) => cli::exec(a).await,
            Command::Down(a) | Command::Rm(a) => cli::down(a).await.map(|()| 0),
            Command::Volume(a) => cli::volume(a).await.map(|()| 0),
            Command::Unlock(a) => cli::unlock(a).await.map(|()| 0),
            Command::Lock(a) => cli::lock(a).await.map(|()| 0),
            Command::Snapshot(a) => cli::snapshot(a).await.map(|()| 0),
            Command::Fork(a) => cli::fork(a).await.map(|()| 0),
            Command::Template(a) => cli::template(a).await.map(|()| 0),
            Command::Pause(a) => cli::pause(a, false).await.map(|()| 0),
            Command::Resume(a) => cli::pause(a, true).await.map(|()| 0),
            Command::Extend(a) => cli::extend(a).await.map(|()| 0),
            Command::Enter(a) => cli::enter(a).await,
            Command::Terminals(a) => cli::terminals(a).await.map(|()| 0),
            Command::Cp(a) => cli::cp(a).await.map(|()| 0),
            Command::Logs(a) => cli::logs(a).await,
            Command::Recordings(a) => cli::recordings(a).await.map(|()| 0),
            Command::Keys(a) => cli::keys(a).await.map(|()| 0),
            Command::SshKey(a) => cli::ssh_key(a).await.map(|()| 0),
            Command::SshConfig(a) => cli::ssh_config(a).await.map(|()| 0),
            Command::User(a) => cli::user(a).await.map(|()| 0),
            Command::Token(a) => cli::token(a).await.map(|()| 0),
            Command::Sync(a) => cli::sync(a).await.map(|()| 0),
            Command::PortForward(a) => cli::port_forward(a).await.map(|()| 0),
            Command::E2b(a) => cli::e2b(a).await.map(|()| 0),
        }
    });
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("podgate: {e:#}");
            std::process::exit(1);
        }
    }
}
