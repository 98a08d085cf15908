//! `podgate-agent serve`: the entry point run as PID 1 inside every sandbox.

use std::sync::Arc;

use podgate_agent::terminals::Terminals;
use podgate_agent::{args, init, paths::Dirs, privileges, reaper, server};

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("--version") {
        println!("podgate-agent {} (protocol {})", env!("CARGO_PKG_VERSION"), podgate_types::AGENT_PROTOCOL_VERSION);
        return;
    }
    let args = match args::parse(&argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("podgate-agent: {e}");
            std::process::exit(2);
        }
    };
    // Secret and socket first: their directory is closed to the sandbox user.
    let ready = match take_secret(&args).and_then(|secret| Ok((secret, bind(&args.socket)?))) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("podgate-agent: {e}");
            std::process::exit(1);
        }
    };
    if let Some((uid, gid)) = args.user
        && let Err(e) = privileges::become_user(uid, gid)
    {
        eprintln!("podgate-agent: {e}");
        std::process::exit(1);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("podgate-agent: cannot start runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(serve(args, ready.0, ready.1)) {
        eprintln!("podgate-agent: {e}");
        std::process::exit(1);
    }
}

/// Reads the per-sandbox secret and removes its file: it stays in memory only, so processes in
/// the sandbox cannot read it.
fn take_secret(args: &args::Args) -> std::io::Result<String> {
    let secret = std::fs::read_to_string(&args.secret_file)
        .map_err(|e| std::io::Error::other(format!("reading {}: {e}", args.secret_file.display())))?
        .trim()
        .to_string();
    if secret.is_empty() {
        return Err(std::io::Error::other(format!("{} is empty", args.secret_file.display())));
    }
    std::fs::remove_file(&args.secret_file)?;
    Ok(secret)
}

/// Binds the API socket before the runtime exists, with a backlog as long as tokio's own (std's
/// 128 refuses connections when many clients arrive at once).
fn bind(socket: &std::path::Path) -> std::io::Result<std::os::unix::net::UnixListener> {
    use nix::sys::socket::{AddressFamily, Backlog, SockFlag, SockType, UnixAddr};
    let _ = std::fs::remove_file(socket);
    let failed = |e: nix::Error| std::io::Error::other(format!("binding {}: {e}", socket.display()));
    let flags = SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK;
    let fd = nix::sys::socket::socket(AddressFamily::Unix, SockType::Stream, flags, None).map_err(failed)?;
    nix::sys::socket::bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &UnixAddr::new(socket).map_err(failed)?)
        .map_err(failed)?;
    nix::sys::socket::listen(&fd, Backlog::new(1024).map_err(failed)?).map_err(failed)?;
    Ok(std::os::unix::net::UnixListener::from(fd))
}

async fn serve(args: args::Args, secret: String, listener: std::os::unix::net::UnixListener) -> std::io::Result<()> {
    // Outside a container (tests), adopt orphans of our children as PID 1 would.
    let _ = nix::sys::prctl::set_child_subreaper(true);

    let reaper = reaper::Reaper::default();
    tokio::spawn(reaper::run(reaper.clone()));
    init::start_main(&reaper, &args.cmd);

    let listener = tokio::net::UnixListener::from_std(listener)?;
    let dirs = Dirs::from_env();
    let terminals = Terminals::new(reaper.clone(), dirs.clone(), args.terminal_idle);
    tokio::spawn(terminals.clone().run_sweeper());
    let (ports_tx, ports) = tokio::sync::watch::channel(Vec::new());
    tokio::spawn(podgate_agent::ports::watch(ports_tx));
    let processes = podgate_agent::processes::Processes::new(reaper.clone(), dirs.clone());
    let bootstrap = podgate_agent::bootstrap::Bootstrap::new(processes.clone(), terminals.clone());
    let state = Arc::new(server::AgentState {
        secret,
        reaper: reaper.clone(),
        dirs,
        terminals,
        processes,
        bootstrap,
        ports,
        listeners: Default::default(),
    });
    eprintln!("podgate-agent: serving on {}", args.socket.display());
    let app = server::router(state);
    tokio::select! {
        r = axum::serve(listener, app) => r,
        r = init::forward_signals(reaper) => r,
    }
}
