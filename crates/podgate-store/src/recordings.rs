//! Terminal recordings: one row per recording (its size and last write) and its bytes in ordered
//! chunks, so that whichever replica recorded a terminal, every replica serves the recording.

use crate::{Result, Store};

/// One recording, without its bytes.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct RecordingRow {
    pub sandbox_id: String,
    pub terminal_id: String,
    /// Bytes written so far.
    pub size: i64,
    /// The last write (unix ms).
    pub modified_at: i64,
}

impl Store {
    /// Starts an empty recording; false if this terminal already has one (it is left as it is).
    pub async fn start_recording(&self, sandbox: &str, terminal: &str, now: i64) -> Result<bool> {
        let n = on_db!(self, p => sqlx::query(
            "INSERT INTO recordings (sandbox_id, terminal_id, size, modified_at) VALUES ($1, $2, 0, $3) \
             ON CONFLICT (sandbox_id, terminal_id) DO NOTHING",
        )
        .bind(sandbox)
        .bind(terminal)
        .bind(now)
        .execute(p)
        .await?
        .rows_affected());
        Ok(n == 1)
    }

    /// Appends chunk `seq` to a recording and counts its bytes; false if the recording is gone
    /// (purged while it was written).
    pub async fn append_recording(
        &self,
        sandbox: &str,
        terminal: &str,
        seq: i64,
        data: &[u8],
        now: i64,
    ) -> Result<bool> {
        let n = on_db!(self, p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query(
                "UPDATE recordings SET size = size + $3, modified_at = $4 WHERE sandbox_id = $1 AND terminal_id = $2",
            )
            .bind(sandbox)
            .bind(terminal)
            .bind(data.len() as i64)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 1 {
                sqlx::query("INSERT INTO recording_chunks (sandbox_id, terminal_id, seq, data) VALUES ($1, $2, $3, $4)")
                    .bind(sandbox)
                    .bind(terminal)
                    .bind(seq)
                    .bind(data)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            n
        });
        Ok(n == 1)
    }

    /// The recordings of a sandbox, oldest first.
    pub async fn recordings(&self, sandbox: &str) -> Result<Vec<RecordingRow>> {
        Ok(on_db!(self, p => sqlx::query_as(
            "SELECT * FROM recordings WHERE sandbox_id = $1 ORDER BY modified_at, terminal_id",
        )
        .bind(sandbox)
        .fetch_all(p)
        .await?))
    }

    /// One recording, if it exists.
    pub async fn recording(&self, sandbox: &str, terminal: &str) -> Result<Option<RecordingRow>> {
        Ok(on_db!(self, p => sqlx::query_as("SELECT * FROM recordings WHERE sandbox_id = $1 AND terminal_id = $2")
            .bind(sandbox)
            .bind(terminal)
            .fetch_optional(p)
            .await?))
    }

    /// Up to `limit` chunks of a recording after chunk `after` (-1: from the start), in order, with
    /// their sequence numbers.
    pub async fn recording_chunks(
        &self,
        sandbox: &str,
        terminal: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, Vec<u8>)>> {
        Ok(on_db!(self, p => sqlx::query_as(
            "SELECT seq, data FROM recording_chunks WHERE sandbox_id = $1 AND terminal_id = $2 AND seq > $3 \
             ORDER BY seq LIMIT $4",
        )
        .bind(sandbox)
        .bind(terminal)
        .bind(after)
        .bind(limit)
        .fetch_all(p)
        .await?))
    }

    /// Removes recordings last written before `before` (unix ms), chunks and all; returns how many.
    pub async fn purge_recordings(&self, before: i64) -> Result<u64> {
        // Their chunks go with them (ON DELETE CASCADE).
        Ok(on_db!(self, p => sqlx::query("DELETE FROM recordings WHERE modified_at < $1")
            .bind(before)
            .execute(p)
            .await?
            .rows_affected()))
    }
}

#[cfg(test)]
mod tests {
    use super::RecordingRow;

    crate::test_util::both!(recordings_grow_in_order_and_go_when_old);
    async fn recordings_grow_in_order_and_go_when_old(s: crate::Store) {
        assert!(s.start_recording("sb", "t1", 10).await.unwrap());
        assert!(!s.start_recording("sb", "t1", 11).await.unwrap(), "one recording per terminal");
        assert!(s.start_recording("sb", "t2", 20).await.unwrap());
        assert!(s.start_recording("other", "t1", 5).await.unwrap());
        assert!(s.append_recording("sb", "t1", 0, b"hello ", 30).await.unwrap());
        assert!(s.append_recording("sb", "t1", 1, b"world\n", 40).await.unwrap());
        assert!(!s.append_recording("sb", "nope", 0, b"x", 40).await.unwrap(), "no such recording");

        let rows = s.recordings("sb").await.unwrap();
        let row =
            |t: &str, size, at| RecordingRow { sandbox_id: "sb".into(), terminal_id: t.into(), size, modified_at: at };
        assert_eq!(rows, [row("t2", 0, 20), row("t1", 12, 40)], "oldest first");
        assert_eq!(s.recording("sb", "t1").await.unwrap(), Some(row("t1", 12, 40)));
        assert_eq!(s.recording("sb", "t3").await.unwrap(), None);

        let all = s.recording_chunks("sb", "t1", -1, 10).await.unwrap();
        assert_eq!(all, [(0, b"hello ".to_vec()), (1, b"world\n".to_vec())]);
        assert_eq!(s.recording_chunks("sb", "t1", 0, 10).await.unwrap(), [(1, b"world\n".to_vec())]);
        assert_eq!(s.recording_chunks("sb", "t1", -1, 1).await.unwrap().len(), 1, "the limit holds");

        // Written before 35: other (5) and t2 (20) go; t1 (40) stays with its chunks.
        assert_eq!(s.purge_recordings(35).await.unwrap(), 2);
        assert!(s.recordings("other").await.unwrap().is_empty());
        assert_eq!(s.recordings("sb").await.unwrap(), [row("t1", 12, 40)]);
        assert_eq!(s.purge_recordings(41).await.unwrap(), 1);
        assert!(s.recording_chunks("sb", "t1", -1, 10).await.unwrap().is_empty(), "chunks go with it");
        assert!(!s.append_recording("sb", "t1", 2, b"late", 50).await.unwrap(), "a purged recording takes no more");
    }
}
