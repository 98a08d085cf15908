//! PID 1 duties besides reaping: start the main command and forward signals to children.

use std::os::unix::process::CommandExt as _;
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::signal::unix::{SignalKind, signal};

use crate::reaper::Reaper;

/// How long children get after a forwarded SIGTERM before the agent exits anyway.
const STOP_GRACE: Duration = Duration::from_secs(8);

/// Starts the sandbox's main command in its own process group; its output goes to the agent's.
pub fn start_main(reaper: &Reaper, argv: &[String]) {
    if argv.is_empty() {
        return;
    }
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]).process_group(0);
    match reaper.spawn(&mut cmd) {
        Ok((child, exited)) => {
            let pid = child.id();
            eprintln!("podgate-agent: started main command {argv:?} as pid {pid}");
            tokio::spawn(async move {
                if let Ok(exit) = exited.await {
                    eprintln!("podgate-agent: main command (pid {pid}) ended: {exit:?}");
                }
            });
        }
        Err(e) => eprintln!("podgate-agent: cannot start main command {argv:?}: {e}"),
    }
}

/// TERM and INT that stop the sandbox. As PID 1 the agent takes them only from outside the
/// sandbox (the runtime stopping it: the sender is in an ancestor PID namespace, so its pid
/// reads 0); a process of the sandbox sending them (`kill -TERM 1`) is ignored, so the sandbox
/// user cannot stop the sandbox from within.
fn stop_signals() -> std::io::Result<tokio::sync::mpsc::Receiver<Signal>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::iterator::SignalsInfo;
    use signal_hook::iterator::exfiltrator::WithOrigin;
    let mut signals = SignalsInfo::<WithOrigin>::new([SIGTERM, SIGINT])?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let init = std::process::id() == 1;
    std::thread::Builder::new().name("stop-signals".into()).spawn(move || {
        for origin in signals.forever() {
            let sig = if origin.signal == SIGINT { Signal::SIGINT } else { Signal::SIGTERM };
            if let Some(sender) = origin.process.filter(|p| init && p.pid > 0) {
                eprintln!("podgate-agent: ignoring {sig:?} from pid {} inside the sandbox", sender.pid);
                continue;
            }
            if tx.blocking_send(sig).is_err() {
                return;
            }
        }
    })?;
    Ok(rx)
}

/// Forwards HUP/INT/QUIT/USR1/USR2/WINCH to every child's process group; on TERM or INT (from
/// outside the sandbox, see [`stop_signals`]) it also asks every process to stop (all of them,
/// when the agent is PID 1), waits for them, and returns so the agent can exit.
pub async fn forward_signals(reaper: Reaper) -> std::io::Result<()> {
    let kinds = [
        (SignalKind::hangup(), Signal::SIGHUP),
        (SignalKind::quit(), Signal::SIGQUIT),
        (SignalKind::user_defined1(), Signal::SIGUSR1),
        (SignalKind::user_defined2(), Signal::SIGUSR2),
        (SignalKind::window_change(), Signal::SIGWINCH),
    ];
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Signal>(16);
    for (kind, sig) in kinds {
        let mut s = signal(kind)?;
        let tx = tx.clone();
        tokio::spawn(async move {
            while s.recv().await.is_some() {
                if tx.send(sig).await.is_err() {
                    return;
                }
            }
        });
    }
    let mut stops = stop_signals()?;
    let stop = loop {
        tokio::select! {
            Some(sig) = rx.recv() => reaper.signal_all(sig),
            Some(sig) = stops.recv() => break sig,
        }
    };
    eprintln!("podgate-agent: {stop:?} received, stopping children");
    reaper.signal_all(stop);
    if std::process::id() == 1 {
        // As init, every process in the sandbox is ours to stop; kill(-1) spares PID 1 itself.
        let _ = kill(Pid::from_raw(-1), stop);
    }
    let deadline = tokio::time::Instant::now() + STOP_GRACE;
    while !reaper.pids().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
