//! envd's `filesystem.Filesystem` service translated into podgate's agent file API.

use hyper::Method;
use podgate_types::agent::paths;
use podgate_types::files::{FileInfo, FileKind};

use crate::connect::{ConnectError, Unary};
use crate::daemon::Daemon;
use crate::proto::{Empty, EntryInfo, EntryResponse, ListDirRequest, ListDirResponse, MoveRequest, PathRequest};

type Answer<T> = Result<axum::Json<T>, ConnectError>;

/// `path` and `query` pairs as an agent path with a query string.
pub fn with_query(path: &str, pairs: &[(&str, &str)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        q.append_pair(k, v);
    }
    format!("{path}?{}", q.finish())
}

fn need(path: &str) -> Result<&str, ConnectError> {
    if path.is_empty() { Err(ConnectError::invalid("`path` is required")) } else { Ok(path) }
}

/// `ls -l`-style permissions of `kind` and `mode`.
fn permissions(kind: FileKind, mode: u32) -> String {
    let mut s = String::with_capacity(10);
    s.push(match kind {
        FileKind::Dir => 'd',
        FileKind::Symlink => 'L',
        _ => '-',
    });
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

/// The envd entry of an agent's file info.
pub fn entry(f: FileInfo) -> EntryInfo {
    let modified = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(f.modified_ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into());
    EntryInfo {
        kind: match f.kind {
            FileKind::File => "FILE_TYPE_FILE",
            FileKind::Dir => "FILE_TYPE_DIRECTORY",
            FileKind::Symlink => "FILE_TYPE_SYMLINK",
            FileKind::Other => "FILE_TYPE_UNSPECIFIED",
        },
        permissions: permissions(f.kind, f.mode),
        name: f.name,
        path: f.path,
        size: f.size.to_string(),
        mode: f.mode & 0o7777,
        owner: f.uid.to_string(),
        group: f.gid.to_string(),
        modified_time: modified,
        symlink_target: f.target,
    }
}

async fn stat_of(d: &Daemon, path: &str) -> Result<FileInfo, ConnectError> {
    Ok(d.call(Method::GET, &with_query(paths::FILES_STAT, &[("path", path)]), None).await?)
}

/// `Stat`.
pub async fn stat(d: Daemon, Unary(r): Unary<PathRequest>) -> Answer<EntryResponse> {
    Ok(axum::Json(EntryResponse { entry: entry(stat_of(&d, need(&r.path)?).await?) }))
}

/// `MakeDir`: with parents; an existing path is `already_exists`.
pub async fn make_dir(d: Daemon, Unary(r): Unary<PathRequest>) -> Answer<EntryResponse> {
    let path = need(&r.path)?;
    match stat_of(&d, path).await {
        Ok(_) => return Err(ConnectError::new("already_exists", format!("{path} already exists"))),
        Err(e) if e.code == "not_found" => {}
        Err(e) => return Err(e),
    }
    let info: FileInfo = d.call(Method::POST, paths::FILES_MKDIR, Some(serde_json::json!({ "path": path }))).await?;
    Ok(axum::Json(EntryResponse { entry: entry(info) }))
}

/// `Move`.
pub async fn move_entry(d: Daemon, Unary(r): Unary<MoveRequest>) -> Answer<EntryResponse> {
    let (from, to) = (need(&r.source)?, need(&r.destination)?);
    let info: FileInfo =
        d.call(Method::POST, paths::FILES_MOVE, Some(serde_json::json!({ "from": from, "to": to }))).await?;
    Ok(axum::Json(EntryResponse { entry: entry(info) }))
}

/// `ListDir`: `depth` levels (0 is 1).
pub async fn list_dir(d: Daemon, Unary(r): Unary<ListDirRequest>) -> Answer<ListDirResponse> {
    let depth = r.depth.max(1).to_string();
    let path = with_query(paths::FILES_LIST, &[("path", need(&r.path)?), ("depth", &depth)]);
    let list: Vec<FileInfo> = d.call(Method::GET, &path, None).await?;
    Ok(axum::Json(ListDirResponse { entries: list.into_iter().map(entry).collect() }))
}

/// `Remove`: a file, or a directory with what it holds.
pub async fn remove(d: Daemon, Unary(r): Unary<PathRequest>) -> Answer<Empty> {
    let path = with_query(paths::FILES, &[("path", need(&r.path)?), ("recursive", "true")]);
    let _: serde_json::Value = d.call(Method::DELETE, &path, None).await?;
    Ok(axum::Json(Empty {}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_read_like_ls() {
        assert_eq!(permissions(FileKind::Dir, 0o755), "drwxr-xr-x");
        assert_eq!(permissions(FileKind::File, 0o640), "-rw-r-----");
        assert_eq!(with_query("/v1/files", &[("path", "/a b&c")]), "/v1/files?path=%2Fa+b%26c");
    }
}
