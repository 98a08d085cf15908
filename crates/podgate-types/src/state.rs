//! A sandbox's lifecycle state and its legal moves, in one table ([`SandboxState::sources`]).

use serde::{Deserialize, Serialize};

/// Lifecycle state of a sandbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SandboxState {
    Pending,
    Starting,
    Running,
    Paused,
    Stopping,
    Failed,
    Deleted,
}

use SandboxState::*;

impl SandboxState {
    /// Every state, in lifecycle order.
    pub const ALL: [SandboxState; 7] = [Pending, Starting, Running, Paused, Stopping, Failed, Deleted];

    /// States of a sandbox that exists (not deleted): what lists, names and quotas count.
    pub const LIVE: [SandboxState; 6] = [Pending, Starting, Running, Paused, Stopping, Failed];

    /// States whose instance is being made.
    pub const CREATING: [SandboxState; 2] = [Pending, Starting];

    /// The states a sandbox may move to `self` from. Every state change goes through this table:
    /// the store refuses a move it does not list.
    ///
    /// - `pending → starting → running ⇄ paused` is the life of a sandbox;
    /// - `failed` is reached when its instance vanishes or exits, or its bootstrap fails;
    /// - `stopping → deleted` is a removal, from any live state;
    /// - `pending`/`starting → deleted` is a create that failed (nothing of it remains).
    pub const fn sources(self) -> &'static [SandboxState] {
        match self {
            Pending => &[],
            Starting => &[Pending],
            Running => &[Starting, Paused],
            Paused => &[Running],
            Failed => &[Pending, Starting, Running, Paused],
            Stopping => &Self::LIVE,
            Deleted => &[Pending, Starting, Stopping],
        }
    }

    /// Whether `self → to` is a legal move.
    pub fn may_move_to(self, to: SandboxState) -> bool {
        to.sources().contains(&self)
    }

    /// Whether the sandbox exists (every state but `deleted`).
    pub fn is_live(self) -> bool {
        self != Deleted
    }

    /// The snake_case name used in JSON and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Pending => "pending",
            Starting => "starting",
            Running => "running",
            Paused => "paused",
            Stopping => "stopping",
            Failed => "failed",
            Deleted => "deleted",
        }
    }
}

impl std::str::FromStr for SandboxState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| format!("unknown sandbox state {s:?}"))
    }
}

impl TryFrom<String> for SandboxState {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl std::fmt::Display for SandboxState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every state but the first is reachable, and every live state can be removed: a state
    /// nothing moves to (as `stopped` was) is a lie in the API.
    #[test]
    fn every_state_is_reachable_and_every_live_one_removable() {
        for s in SandboxState::ALL.into_iter().filter(|s| *s != Pending) {
            assert!(!s.sources().is_empty(), "{s} is never entered");
        }
        for s in SandboxState::LIVE {
            assert!(s.may_move_to(Stopping), "{s} cannot be removed");
        }
        assert!(Stopping.may_move_to(Deleted));
    }

    #[test]
    fn deleted_is_final_and_names_round_trip() {
        for s in SandboxState::ALL {
            assert!(!Deleted.may_move_to(s), "deleted → {s}");
            assert_eq!(s.as_str().parse::<SandboxState>(), Ok(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        assert_eq!(SandboxState::LIVE.len() + 1, SandboxState::ALL.len());
        assert!(SandboxState::LIVE.iter().all(|s| s.is_live()));
    }

    #[test]
    fn a_paused_sandbox_cannot_start_again_from_scratch() {
        assert!(!Paused.may_move_to(Starting));
        assert!(!Running.may_move_to(Pending));
        assert!(!Failed.may_move_to(Running));
        assert!(Paused.may_move_to(Running) && Running.may_move_to(Paused));
    }
}
