//! The audit trail: every security-relevant action becomes an event in the database and a JSON
//! line on the `audit` log target. Recording never fails the action it describes: a store error
//! is logged (the log line is still written).

pub use podgate_store::AuditFilter;
use podgate_store::{AuditRow, Store};
use podgate_types::api::AuditEvent;

use crate::clock::now_ms;
use crate::{Caller, Error, Result};

/// Longest detail kept (command lines, paths), in characters.
pub const MAX_DETAIL: usize = 300;
/// Most events one query returns.
pub const MAX_EVENTS: i64 = 1000;

/// An event about to be recorded.
#[derive(Debug)]
pub struct Event(AuditRow);

impl Event {
    /// `action` by an authenticated caller.
    pub fn by(caller: &Caller, action: &str) -> Event {
        Event(AuditRow {
            actor_id: Some(caller.user_id.clone()),
            actor_name: Some(caller.user_name.clone()),
            source: caller.source.clone(),
            action: action.into(),
            result: "ok".into(),
            ..Default::default()
        })
    }

    /// `action` by the server itself (the reconciler, a bootstrap).
    pub fn system(action: &str) -> Event {
        Event(AuditRow {
            actor_name: Some("system".into()),
            action: action.into(),
            result: "ok".into(),
            ..Default::default()
        })
    }

    /// `action` by someone not (yet) authenticated, from `source`.
    pub fn anonymous(source: Option<&str>, action: &str) -> Event {
        Event(AuditRow {
            source: source.map(str::to_string),
            action: action.into(),
            result: "ok".into(),
            ..Default::default()
        })
    }

    pub fn sandbox(mut self, id: &str) -> Event {
        self.0.sandbox_id = Some(id.to_string());
        self
    }

    /// What was acted on; at most [`MAX_DETAIL`] characters are kept.
    pub fn detail(mut self, d: impl Into<String>) -> Event {
        let mut d: String = d.into();
        if let Some((cut, _)) = d.char_indices().nth(MAX_DETAIL) {
            d.truncate(cut);
            d.push('…');
        }
        self.0.detail = Some(d);
        self
    }

    pub fn result(mut self, r: &str) -> Event {
        self.0.result = r.to_string();
        self
    }

    /// `ok`, or the error's code and message.
    pub fn outcome<T>(self, r: &Result<T>) -> Event {
        match r {
            Ok(_) => self,
            Err(e) => {
                let detail = match &self.0.detail {
                    Some(d) => format!("{d}: {e}"),
                    None => e.to_string(),
                };
                self.result(e.code()).detail(detail)
            }
        }
    }
}

/// Records and reads audit events.
#[derive(Clone)]
pub struct Audit {
    store: Store,
}

impl Audit {
    pub fn new(store: Store) -> Audit {
        Audit { store }
    }

    /// Forgets events older than `retention`; returns how many.
    pub async fn purge(&self, retention: std::time::Duration) -> Result<u64> {
        let before = now_ms().saturating_sub(retention.as_millis() as i64);
        Ok(self.store.purge_audit(before).await?)
    }

    /// Writes the event to the `audit` log target and the database.
    pub async fn record(&self, e: Event) {
        let mut row = e.0;
        row.at = now_ms();
        tracing::info!(
            target: "audit",
            action = %row.action,
            result = %row.result,
            actor_id = row.actor_id.as_deref(),
            actor_name = row.actor_name.as_deref(),
            source = row.source.as_deref(),
            sandbox_id = row.sandbox_id.as_deref(),
            detail = row.detail.as_deref(),
            "audit"
        );
        if let Err(err) = self.store.insert_audit(&row).await {
            tracing::error!(error = %err, action = %row.action, "could not store an audit event");
        }
    }

    /// Events matching `f` (admins).
    pub async fn query(&self, caller: &Caller, mut f: AuditFilter) -> Result<Vec<AuditEvent>> {
        caller.require_admin()?;
        if f.limit <= 0 || f.limit > MAX_EVENTS {
            f.limit = MAX_EVENTS.min(f.limit.max(1));
        }
        Ok(self.store.audit(&f).await?.into_iter().map(view).collect())
    }

    /// The whole recorded life of one sandbox, by id, deleted or not (its owner or admins;
    /// anyone else gets the same 404 as for a sandbox that never existed).
    pub async fn sandbox_events(&self, caller: &Caller, id: &str) -> Result<Vec<AuditEvent>> {
        let missing = || Error::NotFound(format!("sandbox {id:?} not found"));
        let row = self.store.sandbox(id).await?.ok_or_else(missing)?;
        if !caller.may_access(&row.owner_id) {
            return Err(missing());
        }
        let f = AuditFilter { sandbox_id: Some(row.id), oldest_first: true, limit: MAX_EVENTS, ..Default::default() };
        Ok(self.store.audit(&f).await?.into_iter().map(view).collect())
    }
}

fn view(r: AuditRow) -> AuditEvent {
    AuditEvent {
        id: r.id,
        at: r.at,
        actor_id: r.actor_id,
        actor_name: r.actor_name,
        source: r.source,
        action: r.action,
        sandbox_id: r.sandbox_id,
        result: r.result,
        detail: r.detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_are_cut_on_a_character_boundary() {
        let long = Event::system("x").detail("é".repeat(MAX_DETAIL + 50));
        assert_eq!(long.0.detail.unwrap().chars().count(), MAX_DETAIL + 1, "the cut plus the ellipsis");
        let short = Event::system("x").detail("echo hi");
        assert_eq!(short.0.detail.as_deref(), Some("echo hi"));
    }
}
