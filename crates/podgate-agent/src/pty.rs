//! PTYs: open a pair, spawn a command as session leader on the slave, and read, write and resize
//! through the master as a nonblocking `AsyncFd`.

use std::io;
use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};

use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
use nix::libc;
use nix::pty::{Winsize, openpty};
use tokio::io::unix::AsyncFd;
use tokio::sync::oneshot;

use crate::reaper::{Exit, Reaper};

/// The master side of a PTY whose slave runs a command.
pub struct Pty {
    master: AsyncFd<OwnedFd>,
    /// Pid of the command, which leads its own session and process group.
    pub pid: i32,
}

fn winsize(cols: u16, rows: u16) -> Winsize {
    Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 }
}

fn set_cloexec(fd: &OwnedFd) -> io::Result<()> {
    fcntl(fd.as_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    Ok(())
}

impl Pty {
    /// Spawns `cmd` on a new PTY of `cols`×`rows`. The command becomes a session leader with the
    /// PTY as its controlling terminal.
    pub fn spawn(
        reaper: &Reaper,
        cmd: &mut Command,
        cols: u16,
        rows: u16,
    ) -> io::Result<(Pty, oneshot::Receiver<Exit>)> {
        let pair = openpty(Some(&winsize(cols, rows)), None)?;
        // Neither side may leak into other children spawned concurrently.
        set_cloexec(&pair.master)?;
        set_cloexec(&pair.slave)?;
        cmd.stdin(Stdio::from(pair.slave.try_clone()?))
            .stdout(Stdio::from(pair.slave.try_clone()?))
            .stderr(Stdio::from(pair.slave));
        // SAFETY: the closure runs in the child between fork and exec and only makes two
        // async-signal-safe system calls (setsid, ioctl) on the child's own stdin.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(io::Error::last_os_error());
                }
                if libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let (child, exited) = reaper.spawn(cmd)?;
        let flags = OFlag::from_bits_truncate(fcntl(pair.master.as_fd(), FcntlArg::F_GETFL)?);
        fcntl(pair.master.as_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        // SAFETY: an OwnedFd always returns the same open descriptor from as_raw_fd until it is
        // dropped, and the AsyncFd owns it for its whole life.
        let master = unsafe { AsyncFd::register(pair.master) }.map_err(|e| e.into_parts().1)?;
        let pty = Pty { master, pid: child.id() as i32 };
        Ok((pty, exited))
    }

    /// Reads what the command wrote; `Ok(0)` once the slave side is gone.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.master.readable().await?;
            match guard.try_io(|fd| nix::unistd::read(fd.get_ref(), buf).map_err(io::Error::from)) {
                Ok(Ok(n)) => return Ok(n),
                // EIO: every slave descriptor is closed (the command and its children exited).
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(0),
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }

    /// Writes all of `data` as keyboard input.
    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let mut guard = self.master.writable().await?;
            match guard.try_io(|fd| nix::unistd::write(fd.get_ref(), data).map_err(io::Error::from)) {
                Ok(Ok(n)) => data = &data[n..],
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }

    /// The terminal's foreground process group (where a typed Ctrl-C would go), else the
    /// command's own group.
    pub fn foreground_group(&self) -> i32 {
        nix::unistd::tcgetpgrp(self.master.get_ref()).map_or(self.pid, |p| p.as_raw())
    }

    /// Sets the window size; the kernel sends SIGWINCH to the foreground process group.
    pub fn resize(&self, cols: u16, rows: u16) -> io::Result<()> {
        let ws = winsize(cols, rows);
        // SAFETY: TIOCSWINSZ reads one `winsize` from the valid pointer we pass; the descriptor is
        // the PTY master we own for the duration of the call.
        let r = unsafe { libc::ioctl(self.master.get_ref().as_raw_fd(), libc::TIOCSWINSZ as _, &ws) };
        if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }
}
