//! Directory upload and download as tar streams ([`podgate_tar`]): extraction never writes
//! outside the target.

use std::io;
use std::path::PathBuf;

use axum::body::Body;
use futures_util::TryStreamExt as _;
use podgate_tar::{UnpackError, Unpacked};

use crate::files::FileError;

/// Extracts the tar stream `body` into `dst` (created if missing).
pub async fn unpack(dst: PathBuf, body: Body) -> Result<Unpacked, FileError> {
    let shown = dst.display().to_string();
    let stream = body.into_data_stream().map_err(io::Error::other);
    podgate_tar::unpack_stream(stream, dst).await.map_err(|e| match e {
        UnpackError::Refused(m) => FileError::Invalid(format!("archive refused: {m}")),
        UnpackError::Io(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            FileError::Denied(format!("extract into {shown}: {e}"))
        }
        // Corrupt or truncated archives, and the tar crate's own refusals.
        UnpackError::Io(e) => FileError::Invalid(format!("extract into {shown}: {e}")),
    })
}

/// A tar stream of the tree at `dir`, produced as the body is read.
pub fn pack(dir: PathBuf) -> Result<Body, FileError> {
    let md = std::fs::metadata(&dir).map_err(|e| FileError::NotFound(format!("{}: {e}", dir.display())))?;
    if !md.is_dir() {
        return Err(FileError::Invalid(format!("{}: not a directory", dir.display())));
    }
    Ok(Body::from_stream(podgate_tar::pack_stream(dir)))
}
