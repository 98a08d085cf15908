//! A private PostgreSQL server for tests: `initdb` into a temporary directory, listening only on a
//! Unix socket in that directory, stopped and removed on drop. Needs the PostgreSQL server binaries
//! (Debian's `postgresql` package); as root it runs them as the `postgres` user.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A frozen server (see [`TestPg::freeze`]); dropping it lets the server run again.
pub struct Frozen(Box<dyn Fn()>);

impl Drop for Frozen {
    fn drop(&mut self) {
        (self.0)()
    }
}

/// One running (or stopped) private PostgreSQL cluster.
pub struct TestPg {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl TestPg {
    /// Creates and starts a cluster; panics with the reason when it cannot.
    pub fn start() -> TestPg {
        let bin = bin_dir();
        let dir = tempfile::Builder::new().prefix("pg").tempdir().expect("creating a temporary directory");
        if is_root() {
            run(Command::new("chown").args(["postgres:postgres"]).arg(dir.path()));
        }
        let pg = TestPg { dir, bin };
        pg.run_pg(
            "initdb",
            &["-D", &pg.data(), "-U", "podgate", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"],
        );
        pg.resume();
        pg
    }

    /// A URL for the `postgres` database over the cluster's socket.
    pub fn url(&self) -> String {
        format!("postgres://podgate@localhost/postgres?host={}", self.dir.path().display())
    }

    /// Stops the server (fast shutdown: clients are disconnected); the data stays.
    pub fn stop(&self) {
        self.run_pg("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    /// Freezes the server and its backends (SIGSTOP) until the guard is dropped: connections and
    /// queries hang, as when the database's host stops answering.
    pub fn freeze(&self) -> Frozen {
        let pid = std::fs::read_to_string(self.dir.path().join("data/postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().map(str::to_string))
            .expect("postmaster.pid of a running server");
        let signal = move |sig: &str| {
            let _ = Command::new("pkill").args([&format!("-{sig}"), "-P", &pid]).status();
            let _ = Command::new("kill").args([&format!("-{sig}"), &pid]).status();
        };
        signal("STOP");
        Frozen(Box::new(move || signal("CONT")))
    }

    /// Starts the server again (or the first time) and waits until it accepts connections.
    pub fn resume(&self) {
        let opts = format!(
            "-c listen_addresses= -k {} -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            self.dir.path().display()
        );
        let log = self.dir.path().join("log");
        self.run_pg("pg_ctl", &["-D", &self.data(), "-o", &opts, "-l", &log.to_string_lossy(), "-w", "start"]);
    }

    fn data(&self) -> String {
        self.dir.path().join("data").to_string_lossy().into_owned()
    }

    fn run_pg(&self, tool: &str, args: &[&str]) {
        run(self.pg_command(tool).args(args));
    }

    /// `tool` from the server binaries, as the `postgres` user when this process is root.
    fn pg_command(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }
}

impl Drop for TestPg {
    fn drop(&mut self) {
        let data = self.data();
        // Already stopped is fine here.
        let _ = self
            .pg_command("pg_ctl")
            .args(["-D", &data, "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Whether this process runs as root (`/proc/self` belongs to the effective user).
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The directory of `initdb` and `pg_ctl`: `$PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`.
fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, p): &(u32, PathBuf)| Path::new(p).join("initdb").is_file())
        .collect();
    versions.sort();
    versions.pop().map(|(_, p)| p).expect(
        "PostgreSQL server binaries not found: install the postgresql package (scripts/test does) or set PG_BIN",
    )
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
