//! The SFTP subsystem for SSH: an SFTP v3 server (russh-sftp's protocol) over a WebSocket's
//! binary frames, working on the sandbox's files as the agent's user, so images need no
//! `sftp-server`. Relative paths start at the home directory.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Component, Path, PathBuf};

use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt as _, StreamExt as _};
use russh_sftp::protocol::{Attrs, Data, File, FileAttributes, Handle, Name, OpenFlags, Status, StatusCode, Version};
use russh_sftp::server::StatusReply;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};

pub use podgate_types::sftp::SUBPROTOCOL;
/// Largest read answered at once.
const MAX_READ: u32 = 256 * 1024;
/// Most open handles per session.
const MAX_HANDLES: usize = 1024;

enum Open {
    File(tokio::fs::File),
    /// A directory's entries, sent on the first read.
    Dir(Option<Vec<File>>),
}

/// One SFTP session.
pub struct Sftp {
    home: PathBuf,
    handles: HashMap<String, Open>,
    next: u64,
}

fn status(e: std::io::Error) -> StatusReply {
    let code = match e.kind() {
        ErrorKind::NotFound => StatusCode::NoSuchFile,
        ErrorKind::PermissionDenied => StatusCode::PermissionDenied,
        _ => StatusCode::Failure,
    };
    code.with_message(e.to_string())
}

fn ok(id: u32) -> Status {
    Status { id, status_code: StatusCode::Ok, error_message: "Ok".into(), language_tag: "en-US".into() }
}

/// `path` made absolute against `home`, with `.` and `..` resolved by name.
fn resolve(home: &Path, path: &str) -> PathBuf {
    let joined = if path.starts_with('/') { PathBuf::from(path) } else { home.join(path) };
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

impl Sftp {
    pub fn new(home: PathBuf) -> Sftp {
        Sftp { home, handles: HashMap::new(), next: 0 }
    }

    fn add(&mut self, open: Open) -> Result<String, StatusReply> {
        if self.handles.len() >= MAX_HANDLES {
            return Err(StatusCode::Failure.with_message("too many open handles"));
        }
        self.next += 1;
        let h = self.next.to_string();
        self.handles.insert(h.clone(), open);
        Ok(h)
    }

    fn file(&mut self, handle: &str) -> Result<&mut tokio::fs::File, StatusReply> {
        match self.handles.get_mut(handle) {
            Some(Open::File(f)) => Ok(f),
            _ => Err(StatusCode::Failure.with_message("no such file handle")),
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        resolve(&self.home, p)
    }
}

async fn set_attrs(path: &Path, attrs: &FileAttributes) -> Result<(), StatusReply> {
    if let Some(mode) = attrs.permissions {
        tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7777)).await.map_err(status)?;
    }
    if let Some(size) = attrs.size {
        let f = tokio::fs::OpenOptions::new().write(true).open(path).await.map_err(status)?;
        f.set_len(size).await.map_err(status)?;
    }
    Ok(())
}

impl russh_sftp::server::Handler for Sftp {
    type Error = StatusReply;

    fn unimplemented(&self) -> Self::Error {
        StatusCode::OpUnsupported.into()
    }

    async fn init(&mut self, _version: u32, _extensions: HashMap<String, String>) -> Result<Version, Self::Error> {
        Ok(Version::new())
    }

    async fn open(
        &mut self,
        id: u32,
        filename: String,
        pflags: OpenFlags,
        attrs: FileAttributes,
    ) -> Result<Handle, Self::Error> {
        let mut o = tokio::fs::OpenOptions::new();
        o.read(pflags.contains(OpenFlags::READ))
            .write(pflags.contains(OpenFlags::WRITE) || pflags.contains(OpenFlags::APPEND))
            .append(pflags.contains(OpenFlags::APPEND))
            .truncate(pflags.contains(OpenFlags::TRUNCATE));
        if pflags.contains(OpenFlags::CREATE) {
            if pflags.contains(OpenFlags::EXCLUDE) {
                o.create_new(true);
            } else {
                o.create(true);
            }
            o.mode(attrs.permissions.map_or(0o644, |m| m & 0o7777));
        }
        let f = o.open(self.path(&filename)).await.map_err(status)?;
        Ok(Handle { id, handle: self.add(Open::File(f))? })
    }

    async fn close(&mut self, id: u32, handle: String) -> Result<Status, Self::Error> {
        match self.handles.remove(&handle) {
            Some(Open::File(mut f)) => f.flush().await.map_err(status)?,
            Some(Open::Dir(_)) => {}
            None => return Err(StatusCode::Failure.with_message("no such handle")),
        }
        Ok(ok(id))
    }

    async fn read(&mut self, id: u32, handle: String, offset: u64, len: u32) -> Result<Data, Self::Error> {
        let f = self.file(&handle)?;
        f.seek(std::io::SeekFrom::Start(offset)).await.map_err(status)?;
        let mut data = vec![0; len.min(MAX_READ) as usize];
        let mut got = 0;
        while got < data.len() {
            match f.read(&mut data[got..]).await.map_err(status)? {
                0 => break,
                n => got += n,
            }
        }
        if got == 0 && !data.is_empty() {
            return Err(StatusCode::Eof.into());
        }
        data.truncate(got);
        Ok(Data { id, data })
    }

    async fn write(&mut self, id: u32, handle: String, offset: u64, data: Vec<u8>) -> Result<Status, Self::Error> {
        let f = self.file(&handle)?;
        f.seek(std::io::SeekFrom::Start(offset)).await.map_err(status)?;
        f.write_all(&data).await.map_err(status)?;
        Ok(ok(id))
    }

    async fn lstat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        let m = tokio::fs::symlink_metadata(self.path(&path)).await.map_err(status)?;
        Ok(Attrs { id, attrs: FileAttributes::from(&m) })
    }

    async fn stat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        let m = tokio::fs::metadata(self.path(&path)).await.map_err(status)?;
        Ok(Attrs { id, attrs: FileAttributes::from(&m) })
    }

    async fn fstat(&mut self, id: u32, handle: String) -> Result<Attrs, Self::Error> {
        let m = self.file(&handle)?.metadata().await.map_err(status)?;
        Ok(Attrs { id, attrs: FileAttributes::from(&m) })
    }

    async fn setstat(&mut self, id: u32, path: String, attrs: FileAttributes) -> Result<Status, Self::Error> {
        set_attrs(&self.path(&path), &attrs).await?;
        Ok(ok(id))
    }

    async fn fsetstat(&mut self, id: u32, handle: String, attrs: FileAttributes) -> Result<Status, Self::Error> {
        let f = self.file(&handle)?;
        if let Some(mode) = attrs.permissions {
            f.set_permissions(std::fs::Permissions::from_mode(mode & 0o7777)).await.map_err(status)?;
        }
        if let Some(size) = attrs.size {
            f.set_len(size).await.map_err(status)?;
        }
        Ok(ok(id))
    }

    async fn opendir(&mut self, id: u32, path: String) -> Result<Handle, Self::Error> {
        let mut rd = tokio::fs::read_dir(self.path(&path)).await.map_err(status)?;
        let mut files = Vec::new();
        while let Some(e) = rd.next_entry().await.map_err(status)? {
            if let Ok(m) = e.metadata().await {
                files.push(File::new(e.file_name().to_string_lossy(), FileAttributes::from(&m)));
            }
        }
        Ok(Handle { id, handle: self.add(Open::Dir(Some(files)))? })
    }

    async fn readdir(&mut self, id: u32, handle: String) -> Result<Name, Self::Error> {
        match self.handles.get_mut(&handle) {
            Some(Open::Dir(files)) => match files.take() {
                Some(files) if !files.is_empty() => Ok(Name { id, files }),
                _ => Err(StatusCode::Eof.into()),
            },
            _ => Err(StatusCode::Failure.with_message("no such directory handle")),
        }
    }

    async fn remove(&mut self, id: u32, filename: String) -> Result<Status, Self::Error> {
        tokio::fs::remove_file(self.path(&filename)).await.map_err(status)?;
        Ok(ok(id))
    }

    async fn mkdir(&mut self, id: u32, path: String, attrs: FileAttributes) -> Result<Status, Self::Error> {
        let p = self.path(&path);
        tokio::fs::create_dir(&p).await.map_err(status)?;
        if let Some(mode) = attrs.permissions {
            tokio::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode & 0o7777)).await.map_err(status)?;
        }
        Ok(ok(id))
    }

    async fn rmdir(&mut self, id: u32, path: String) -> Result<Status, Self::Error> {
        tokio::fs::remove_dir(self.path(&path)).await.map_err(status)?;
        Ok(ok(id))
    }

    async fn realpath(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        let p = self.path(&path);
        let real = tokio::fs::canonicalize(&p).await.unwrap_or(p);
        Ok(Name { id, files: vec![File::dummy(real.to_string_lossy())] })
    }

    async fn rename(&mut self, id: u32, oldpath: String, newpath: String) -> Result<Status, Self::Error> {
        tokio::fs::rename(self.path(&oldpath), self.path(&newpath)).await.map_err(status)?;
        Ok(ok(id))
    }

    async fn readlink(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        let target = tokio::fs::read_link(self.path(&path)).await.map_err(status)?;
        Ok(Name { id, files: vec![File::dummy(target.to_string_lossy())] })
    }

    async fn symlink(&mut self, id: u32, linkpath: String, targetpath: String) -> Result<Status, Self::Error> {
        tokio::fs::symlink(targetpath, self.path(&linkpath)).await.map_err(status)?;
        Ok(ok(id))
    }
}

/// Serves an SFTP session on `socket` until either side ends.
pub async fn serve(socket: WebSocket, home: PathBuf) {
    let (ours, theirs) = tokio::io::duplex(512 * 1024);
    russh_sftp::server::run(theirs, Sftp::new(home)).await;
    let (mut from_server, mut to_server) = tokio::io::split(ours);
    let (mut tx, mut rx) = socket.split();
    let inbound = async {
        while let Some(Ok(msg)) = rx.next().await {
            match msg {
                Message::Binary(b) if to_server.write_all(&b).await.is_err() => break,
                Message::Close(_) => break,
                _ => {}
            }
        }
        // Closing our end ends the SFTP server's loop.
        let _ = to_server.shutdown().await;
    };
    let outbound = async {
        let mut buf = vec![0; 64 * 1024];
        loop {
            match from_server.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(Message::Binary(buf[..n].to_vec().into())).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = tx.send(Message::Close(None)).await;
    };
    tokio::join!(inbound, outbound);
}

#[cfg(test)]
mod tests {
    use super::resolve;
    use std::path::Path;

    #[test]
    fn paths_resolve_against_home_without_escaping_root() {
        let home = Path::new("/workspace");
        assert_eq!(resolve(home, "."), Path::new("/workspace"));
        assert_eq!(resolve(home, "a/../b"), Path::new("/workspace/b"));
        assert_eq!(resolve(home, "/etc/../tmp/x"), Path::new("/tmp/x"));
        assert_eq!(resolve(home, "../../../.."), Path::new("/"));
    }
}
