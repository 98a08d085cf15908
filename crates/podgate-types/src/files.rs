//! File API types, shared by the agent, the server and the clients.

use serde::{Deserialize, Serialize};

/// What a directory entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    Other,
}

/// A file's metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileInfo {
    /// Absolute path inside the sandbox.
    pub path: String,
    pub name: String,
    pub kind: FileKind,
    pub size: u64,
    /// Permission bits (e.g. 420 = 0o644).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Unix milliseconds.
    pub modified_ms: i64,
    /// Where a symlink points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// Body of `POST …/files/mkdir` (creates parents too, like `mkdir -p`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MkdirRequest {
    pub path: String,
}

/// Body of `POST …/files/move`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MoveRequest {
    pub from: String,
    pub to: String,
}

/// Header carrying a file's permission bits (octal) on downloads and uploads.
pub const MODE_HEADER: &str = "x-podgate-file-mode";

/// Answer of a directory upload (`PUT …/files/tar`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TarUploaded {
    /// Files, symlinks and links written.
    pub files: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

/// What happened to a path under a watched directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum WatchKind {
    /// Created, or moved in from outside the watched tree.
    Create,
    /// Contents or metadata changed.
    Modify,
    /// Removed, or moved out of the watched tree.
    Delete,
    /// Renamed within the watched tree: `path` → `to`.
    Rename,
    /// Events were lost (the kernel queue overflowed): rescan the tree.
    Overflow,
}

/// One event of a directory watch (a text frame on `…/files/watch`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WatchEvent {
    pub kind: WatchKind,
    /// Absolute path inside the sandbox.
    pub path: String,
    /// The new path of a rename.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}
