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
    if argv.first().map(String::as_str) == Some("own") {
        if let Err(e) = privileges::own(argv.get(1).map(String::as_str), argv.get(2).map(String::as_str)) {
            eprintln!("podgate-agent: own: {e}");
            std::process::exit(1);
        }
        return;
    }
    if argv.first().map(String::as_str) == Some("install") {
        // Kubernetes: the agent image's init container copies the agent into the pod's shared folder.
        if let Err(e) = install(argv.get(1).map(String::as_str)) {
            eprintln!("podgate-agent: install: {e}");
            std::process::exit(1);
        }
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
    let ready = match take_secret(&args.secret).and_then(|secret| Ok((secret, bind(&args.listen)?))) {
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

/// Copies this binary to `dest` (mode 0755): how the agent image hands the agent to a pod.
fn install(dest: Option<&str>) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let dest = dest.ok_or_else(|| std::io::Error::other(format!("a destination is required\n{}", args::USAGE)))?;
    let me = std::env::current_exe()?;
    let tmp = format!("{dest}.tmp");
    std::fs::copy(&me, &tmp)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&tmp, dest)
}

/// Reads the per-sandbox secret and removes its source, so that it stays in this process's
/// memory only and processes in the sandbox cannot read it: a file is deleted; a variable is
/// removed from the environment children inherit, and the agent makes itself non-dumpable, which
/// closes its `/proc/1/environ` (still holding the original) to the sandbox user it may run as.
fn take_secret(source: &args::SecretSource) -> std::io::Result<String> {
    let secret = match source {
        args::SecretSource::File(path) => {
            let s = std::fs::read_to_string(path)
                .map_err(|e| std::io::Error::other(format!("reading {}: {e}", path.display())))?;
            std::fs::remove_file(path)?;
            s
        }
        args::SecretSource::Env(name) => {
            let s = std::env::var(name).map_err(|_| std::io::Error::other(format!("${name} is not set")))?;
            nix::sys::prctl::set_dumpable(false).map_err(std::io::Error::other)?;
            // SAFETY: called from `main` before the runtime or any other thread starts.
            unsafe { std::env::remove_var(name) };
            s
        }
    }
    .trim()
    .to_string();
    if secret.is_empty() {
        return Err(std::io::Error::other(format!("the secret in {source:?} is empty")));
    }
    Ok(secret)
}

/// A bound API listener.
enum Bound {
    Unix(std::os::unix::net::UnixListener),
    Tcp(std::net::TcpListener),
}

/// Binds the API listener before the runtime exists, with a backlog as long as tokio's own
/// (std's 128 refuses connections when many clients arrive at once).
fn bind(listen: &args::Listen) -> std::io::Result<Bound> {
    use nix::sys::socket::{AddressFamily, Backlog, SockFlag, SockType, SockaddrIn, SockaddrIn6, UnixAddr};
    let failed = |e: nix::Error| std::io::Error::other(format!("binding {listen:?}: {e}"));
    let flags = SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK;
    match listen {
        args::Listen::Unix(socket) => {
            let _ = std::fs::remove_file(socket);
            let fd = nix::sys::socket::socket(AddressFamily::Unix, SockType::Stream, flags, None).map_err(failed)?;
            nix::sys::socket::bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &UnixAddr::new(socket).map_err(failed)?)
                .map_err(failed)?;
            nix::sys::socket::listen(&fd, Backlog::new(1024).map_err(failed)?).map_err(failed)?;
            Ok(Bound::Unix(std::os::unix::net::UnixListener::from(fd)))
        }
        args::Listen::Tcp(addr) => {
            let family = if addr.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
            let fd = nix::sys::socket::socket(family, SockType::Stream, flags, None).map_err(failed)?;
            nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::ReuseAddr, &true).map_err(failed)?;
            let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
            match addr {
                std::net::SocketAddr::V4(a) => nix::sys::socket::bind(raw, &SockaddrIn::from(*a)),
                std::net::SocketAddr::V6(a) => nix::sys::socket::bind(raw, &SockaddrIn6::from(*a)),
            }
            .map_err(failed)?;
            nix::sys::socket::listen(&fd, Backlog::new(1024).map_err(failed)?).map_err(failed)?;
            podgate_agent::ports::hide_port(addr.port());
            Ok(Bound::Tcp(std::net::TcpListener::from(fd)))
        }
    }
}

async fn serve(args: args::Args, secret: String, listener: Bound) -> std::io::Result<()> {
    // Outside a container (tests), adopt orphans of our children as PID 1 would.
    let _ = nix::sys::prctl::set_child_subreaper(true);

    let reaper = reaper::Reaper::default();
    tokio::spawn(reaper::run(reaper.clone()));
    init::start_main(&reaper, &args.cmd);

    let dirs = Dirs::from_env();
    let terminals = Terminals::new(reaper.clone(), dirs.clone(), args.terminal_idle);
    tokio::spawn(terminals.clone().run_sweeper());
    let (ports_tx, ports) = tokio::sync::watch::channel(Vec::new());
    tokio::spawn(podgate_agent::ports::watch(ports_tx));
    let metrics = podgate_agent::metrics::Metrics::default();
    tokio::spawn(metrics.clone().run());
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
        metrics,
    });
    eprintln!("podgate-agent: serving on {:?}", args.listen);
    let app = server::router(state);
    match listener {
        Bound::Unix(l) => {
            let l = tokio::net::UnixListener::from_std(l)?;
            tokio::select! {
                r = axum::serve(l, app) => r,
                r = init::forward_signals(reaper) => r,
            }
        }
        Bound::Tcp(l) => {
            let l = tokio::net::TcpListener::from_std(l)?;
            tokio::select! {
                r = axum::serve(l, app) => r,
                r = init::forward_signals(reaper) => r,
            }
        }
    }
}
