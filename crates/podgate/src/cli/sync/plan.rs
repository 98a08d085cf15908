//! What to do with one path, from its state on both sides and at the last sync. Pure: no IO.
//!
//! The conflict rule: when a file changed on both sides since the last sync (or differs on both
//! sides at the first sync), the version with the newer modification time wins and the other one
//! is kept beside it on its own side as `NAME.sync-conflict` (which then syncs like any file). A
//! change beats a deletion: a file deleted on one side and changed on the other comes back.

/// What a path is on one side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
}

/// A path's state on one side: what it is, its size and modification time (ms).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    pub kind: Kind,
    pub size: u64,
    pub mtime_ms: i64,
}

impl Meta {
    /// Whether this differs from `before` in a way that counts as a change (directories do not
    /// change, they only appear and go).
    fn changed_from(&self, before: &Meta) -> bool {
        match (self.kind, before.kind) {
            (Kind::Dir, Kind::Dir) => false,
            _ => self != before,
        }
    }
}

/// Both sides as they were right after the path was last synced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Synced {
    pub local: Meta,
    pub remote: Meta,
}

/// Which side a conflict's winner is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Local,
    Remote,
}

/// What to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Nothing,
    /// Copy the local version to the sandbox (a file, or create a directory).
    Upload,
    /// Copy the sandbox's version here.
    Download,
    DeleteRemote,
    DeleteLocal,
    /// The same on both sides already: just remember it as synced.
    Record,
    /// Gone on both sides: forget it.
    Forget,
    /// Changed on both sides: the winner's version goes over, the loser's is kept aside.
    Conflict(Side),
}

fn changed(now: Option<Meta>, then: Option<Meta>) -> bool {
    match (now, then) {
        (None, None) => false,
        (Some(n), Some(t)) => n.changed_from(&t),
        _ => true,
    }
}

/// Decides for one path. `same_content` is asked only when both sides have a file and both
/// changed (e.g. the first sync), to avoid a transfer or a false conflict.
pub fn decide(
    base: Option<Synced>,
    local: Option<Meta>,
    remote: Option<Meta>,
    same_content: impl FnOnce() -> bool,
) -> Action {
    let local_changed = changed(local, base.map(|b| b.local));
    let remote_changed = changed(remote, base.map(|b| b.remote));
    match (local_changed, remote_changed) {
        (false, false) => Action::Nothing,
        (true, false) => match local {
            Some(_) => Action::Upload,
            None => Action::DeleteRemote,
        },
        (false, true) => match remote {
            Some(_) => Action::Download,
            None => Action::DeleteLocal,
        },
        (true, true) => match (local, remote) {
            (None, None) => Action::Forget,
            (Some(_), None) => Action::Upload,
            (None, Some(_)) => Action::Download,
            (Some(l), Some(r)) => match (l.kind, r.kind) {
                (Kind::Dir, Kind::Dir) => Action::Record,
                (Kind::File, Kind::File) if l.size == r.size && same_content() => Action::Record,
                _ if l.mtime_ms >= r.mtime_ms => Action::Conflict(Side::Local),
                _ => Action::Conflict(Side::Remote),
            },
        },
    }
}

/// Where the losing version of a conflict is kept.
pub fn conflict_name(rel: &str) -> String {
    format!("{rel}.sync-conflict")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(size: u64, mtime_ms: i64) -> Option<Meta> {
        Some(Meta { kind: Kind::File, size, mtime_ms })
    }

    fn synced(l: Option<Meta>, r: Option<Meta>) -> Option<Synced> {
        Some(Synced { local: l.unwrap(), remote: r.unwrap() })
    }

    #[test]
    fn first_sync() {
        assert_eq!(decide(None, file(1, 5), None, || unreachable!()), Action::Upload);
        assert_eq!(decide(None, None, file(1, 5), || unreachable!()), Action::Download);
        assert_eq!(decide(None, file(3, 5), file(3, 9), || true), Action::Record);
        assert_eq!(decide(None, file(3, 5), file(3, 9), || false), Action::Conflict(Side::Remote));
        assert_eq!(decide(None, file(4, 10), file(3, 9), || unreachable!()), Action::Conflict(Side::Local));
    }

    #[test]
    fn one_side_changed() {
        let base = synced(file(1, 1), file(1, 2));
        assert_eq!(decide(base, file(1, 1), file(1, 2), || unreachable!()), Action::Nothing, "our own echo");
        assert_eq!(decide(base, file(2, 3), file(1, 2), || unreachable!()), Action::Upload);
        assert_eq!(decide(base, file(1, 1), file(5, 7), || unreachable!()), Action::Download);
        assert_eq!(decide(base, None, file(1, 2), || unreachable!()), Action::DeleteRemote);
        assert_eq!(decide(base, file(1, 1), None, || unreachable!()), Action::DeleteLocal);
    }

    #[test]
    fn both_changed() {
        let base = synced(file(1, 1), file(1, 2));
        assert_eq!(decide(base, file(2, 30), file(3, 20), || false), Action::Conflict(Side::Local));
        assert_eq!(decide(base, file(2, 10), file(3, 20), || false), Action::Conflict(Side::Remote));
        assert_eq!(decide(base, None, file(3, 20), || unreachable!()), Action::Download, "change beats deletion");
        assert_eq!(decide(base, file(2, 10), None, || unreachable!()), Action::Upload, "change beats deletion");
        assert_eq!(decide(base, None, None, || unreachable!()), Action::Forget);
    }

    #[test]
    fn directories_only_appear_and_go() {
        let dir = |t| Some(Meta { kind: Kind::Dir, size: 4096, mtime_ms: t });
        let base = synced(dir(1), dir(2));
        assert_eq!(decide(base, dir(50), dir(60), || unreachable!()), Action::Nothing);
        assert_eq!(decide(None, dir(1), None, || unreachable!()), Action::Upload);
        assert_eq!(decide(base, None, dir(60), || unreachable!()), Action::DeleteRemote);
        assert_eq!(decide(None, dir(1), dir(2), || unreachable!()), Action::Record);
    }
}
