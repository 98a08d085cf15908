//! What a caller can observe of a sandbox without changing it: its resource samples (taken by its
//! agent) and its output (the main process's and the agent's, kept by the runtime). Neither
//! resumes a paused sandbox nor counts as activity.

use std::sync::Arc;

use podgate_types::metrics::{MetricsQuery, MetricsSample};
use podgate_types::state::SandboxState;
use time::OffsetDateTime;

use crate::agent_client::AgentError;
use crate::kernel::{Kernel, Services as _};
use crate::{Caller, Error, Result};

/// Most lines of output one call returns.
pub const MAX_LOG_LINES: usize = 10_000;

/// The observation service.
#[derive(Clone)]
pub struct Observe {
    pub(crate) k: Arc<Kernel>,
}

/// One line of a sandbox's output.
#[derive(Clone, Debug, PartialEq)]
pub struct LogLine {
    pub timestamp: OffsetDateTime,
    pub line: String,
}

impl Observe {
    /// The resource samples of the caller's sandbox taken from `q.start` to `q.end`. A sandbox
    /// that is not running (paused, starting) has none to give, and is not woken for them.
    pub async fn samples(&self, caller: &Caller, id_or_name: &str, q: &MetricsQuery) -> Result<Vec<MetricsSample>> {
        let row = self.k.sandboxes().resolve(caller, id_or_name).await?;
        if row.state != SandboxState::Running {
            return Ok(Vec::new());
        }
        match crate::sandboxes::quiet_agent(&row)?.metrics(q).await {
            Ok(samples) => Ok(samples),
            Err(AgentError::Refused { status: 404, .. }) => Ok(Vec::new()),
            Err(e) => {
                tracing::warn!(sandbox_id = %row.id, error = %e, "reading resource samples");
                Err(Error::Unavailable(format!("the agent of sandbox {} is unreachable", row.id)))
            }
        }
    }

    /// The last `limit` lines (at most [`MAX_LOG_LINES`]) of the caller's sandbox's output,
    /// oldest first.
    pub async fn logs(&self, caller: &Caller, id_or_name: &str, limit: usize) -> Result<Vec<LogLine>> {
        let row = self.k.sandboxes().resolve(caller, id_or_name).await?;
        let text = match self.k.driver.logs(&row.id, limit.min(MAX_LOG_LINES)).await {
            Ok(t) => t,
            Err(podgate_runtime::Error::NotFound(_)) => String::new(),
            Err(e) => return Err(Error::Unavailable(format!("reading the output of sandbox {}: {e}", row.id))),
        };
        let created = OffsetDateTime::from_unix_timestamp(row.created_at).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        Ok(parse_logs(&text, created))
    }
}

/// Splits `RFC3339 line` lines; a line without a timestamp (a continuation) takes the previous
/// one's, or `fallback`.
pub fn parse_logs(text: &str, fallback: OffsetDateTime) -> Vec<LogLine> {
    let mut last = fallback;
    text.lines()
        .map(|l| {
            let parsed = l.split_once(' ').and_then(|(t, rest)| {
                OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok().map(|t| (t, rest))
            });
            let (timestamp, line) = parsed.unwrap_or((last, l));
            last = timestamp;
            LogLine { timestamp, line: line.to_string() }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_their_timestamps_and_continuations_inherit_them() {
        let epoch = OffsetDateTime::UNIX_EPOCH;
        let text = "2026-12-03T10:00:00.123456789Z hello world\nno stamp here\n2026-12-03T10:00:01Z \n";
        let lines = parse_logs(text, epoch);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].line, "hello world");
        assert_eq!(lines[0].timestamp.nanosecond(), 123_456_789);
        assert_eq!((lines[1].line.as_str(), lines[1].timestamp), ("no stamp here", lines[0].timestamp));
        assert_eq!(lines[2].line, "");
        assert_eq!(parse_logs("plain", epoch)[0], LogLine { timestamp: epoch, line: "plain".into() });
    }
}
