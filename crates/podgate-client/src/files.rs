//! File transfers and the file API: directories as tar streams, single files streamed, stat,
//! list, mkdir, move, remove.

use reqwest::Method;
use serde::de::DeserializeOwned;

use super::{Client, Counter, Error, Result, counted, seg};

impl Client {
    /// Uploads the local directory `local` into `remote` in the sandbox as one tar stream;
    /// `counter` (if any) is advanced by the bytes sent.
    pub async fn upload_dir(
        &self,
        id: &str,
        local: &std::path::Path,
        remote: &str,
        counter: Option<Counter>,
    ) -> Result<podgate_types::files::TarUploaded> {
        let stream = counted(podgate_tar::pack_stream(local.to_path_buf()), counter);
        let query = [("path", remote.to_string())];
        self.put_stream(id, "/files/tar", &query, "application/x-tar", stream).await
    }

    /// Downloads the directory `remote` from the sandbox into `local` as one tar stream. Entries
    /// that would land outside `local` are refused (the sandbox is not trusted either).
    pub async fn download_dir(
        &self,
        id: &str,
        remote: &str,
        local: &std::path::Path,
        counter: Option<Counter>,
    ) -> Result<podgate_tar::Unpacked> {
        use futures_util::StreamExt as _;
        let resp = self
            .http
            .get(format!("{}/v1/sandboxes/{}/files/tar", self.base, seg(id)))
            .bearer_auth(&self.token)
            .query(&[("path", remote)])
            .send()
            .await
            .map_err(|e| Error::Transport(format!("download of {remote} failed: {e}")))?;
        if !resp.status().is_success() {
            Self::checked(resp).await?;
            return Err(Error::Transport("unexpected answer".into()));
        }
        let stream = resp.bytes_stream().map(move |chunk| {
            let b = chunk.map_err(std::io::Error::other)?;
            if let Some(c) = &counter {
                c.fetch_add(b.len() as u64, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(b)
        });
        podgate_tar::unpack_stream(Box::pin(stream), local.to_path_buf())
            .await
            .map_err(|e| Error::Transport(format!("extracting {remote} into {}: {e}", local.display())))
    }

    /// Uploads a local file to `path` in the sandbox, streamed; `mode` as octal permission bits.
    pub async fn upload(
        &self,
        id: &str,
        path: &str,
        local: &std::path::Path,
        mode: Option<u32>,
        counter: Option<Counter>,
    ) -> Result<podgate_types::files::FileInfo> {
        let file = tokio::fs::File::open(local)
            .await
            .map_err(|e| Error::Transport(format!("cannot read {}: {e}", local.display())))?;
        let stream = counted(tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024), counter);
        let mut query = vec![("path", path.to_string()), ("parents", "true".to_string())];
        if let Some(m) = mode {
            query.push(("mode", format!("{m:o}")));
        }
        self.put_stream(id, "/files", &query, "application/octet-stream", stream).await
    }

    /// `PUT /v1/sandboxes/{id}{route}` with a streamed body; the JSON answer.
    async fn put_stream<S, T>(
        &self,
        id: &str,
        route: &str,
        query: &[(&str, String)],
        content_type: &str,
        body: S,
    ) -> Result<T>
    where
        S: futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + Sync + 'static,
        T: DeserializeOwned,
    {
        let resp = self
            .http
            .put(format!("{}/v1/sandboxes/{}{route}", self.base, seg(id)))
            .bearer_auth(&self.token)
            .query(query)
            .header("content-type", content_type)
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await
            .map_err(|e| Error::Transport(format!("upload to {} failed: {e}", self.base)))?;
        let bytes = Self::checked(resp).await?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Transport(e.to_string()))
    }

    /// Downloads `path` from the sandbox into a local file, streamed; returns the bytes written
    /// and the remote permission bits without setuid, setgid and sticky (a sandbox is not
    /// trusted: its files must not become privileged programs here).
    pub async fn download(
        &self,
        id: &str,
        path: &str,
        local: &std::path::Path,
        counter: Option<Counter>,
    ) -> Result<(u64, Option<u32>)> {
        let resp = self
            .http
            .get(format!("{}/v1/sandboxes/{}/files", self.base, seg(id)))
            .bearer_auth(&self.token)
            .query(&[("path", path)])
            .send()
            .await
            .map_err(|e| Error::Transport(format!("download from {}: {e}", self.base)))?;
        if !resp.status().is_success() {
            Self::checked(resp).await?;
            return Err(Error::Transport("unexpected answer".into()));
        }
        let mode = resp
            .headers()
            .get(podgate_types::files::MODE_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|m| u32::from_str_radix(m, 8).ok())
            .map(|m| m & 0o777);
        let n = save_body(resp, local, counter).await?;
        Ok((n, mode))
    }

    /// `GET /v1/sandboxes/{id}/files/stat`.
    pub async fn stat(&self, id: &str, path: &str) -> Result<podgate_types::files::FileInfo> {
        let resp = self
            .http
            .get(format!("{}/v1/sandboxes/{}/files/stat", self.base, seg(id)))
            .bearer_auth(&self.token)
            .query(&[("path", path)])
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let bytes = Self::checked(resp).await?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Transport(e.to_string()))
    }

    /// `GET /v1/sandboxes/{id}/files/list`.
    pub async fn list_files(&self, id: &str, path: &str, depth: u32) -> Result<Vec<podgate_types::files::FileInfo>> {
        let resp = self
            .http
            .get(format!("{}/v1/sandboxes/{}/files/list", self.base, seg(id)))
            .bearer_auth(&self.token)
            .query(&[("path", path.to_string()), ("depth", depth.to_string())])
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let bytes = Self::checked(resp).await?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Transport(e.to_string()))
    }

    /// `DELETE /v1/sandboxes/{id}/files`: removes a file, or a tree with `recursive`.
    pub async fn remove_file(&self, id: &str, path: &str, recursive: bool) -> Result<()> {
        let resp = self
            .http
            .delete(format!("{}/v1/sandboxes/{}/files", self.base, seg(id)))
            .bearer_auth(&self.token)
            .query(&[("path", path.to_string()), ("recursive", recursive.to_string())])
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        Self::checked(resp).await.map(|_| ())
    }

    /// `POST /v1/sandboxes/{id}/files/mkdir` (`mkdir -p`).
    pub async fn mkdir(&self, id: &str, path: &str) -> Result<podgate_types::files::FileInfo> {
        let body = podgate_types::files::MkdirRequest { path: path.into() };
        self.call(Method::POST, &format!("/v1/sandboxes/{}/files/mkdir", seg(id)), Some(&body)).await
    }

    /// `POST /v1/sandboxes/{id}/files/move`.
    pub async fn move_file(&self, id: &str, from: &str, to: &str) -> Result<podgate_types::files::FileInfo> {
        let body = podgate_types::files::MoveRequest { from: from.into(), to: to.into() };
        self.call(Method::POST, &format!("/v1/sandboxes/{}/files/move", seg(id)), Some(&body)).await
    }
}

/// Writes a response body to the file `local`, counting bytes into `counter`; the bytes written.
pub(crate) async fn save_body(
    resp: reqwest::Response,
    local: &std::path::Path,
    counter: Option<Counter>,
) -> Result<u64> {
    use futures_util::StreamExt as _;
    use tokio::io::AsyncWriteExt as _;
    let mut out = tokio::fs::File::create(local)
        .await
        .map_err(|e| Error::Transport(format!("cannot write {}: {e}", local.display())))?;
    let mut stream = resp.bytes_stream();
    let mut n = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::Transport(format!("download interrupted: {e}")))?;
        out.write_all(&chunk).await.map_err(|e| Error::Transport(format!("writing {}: {e}", local.display())))?;
        n += chunk.len() as u64;
        if let Some(c) = &counter {
            c.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
    }
    out.flush().await.map_err(|e| Error::Transport(e.to_string()))?;
    Ok(n)
}
