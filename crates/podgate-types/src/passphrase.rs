//! The passphrase of an encrypted workspace, as a user sends it: a string on the wire that no
//! `Debug` output, log line or audit record ever shows.

use serde::{Deserialize, Serialize};

/// Shortest passphrase taken.
pub const MIN_PASSPHRASE: usize = 8;
/// Longest passphrase taken.
pub const MAX_PASSPHRASE: usize = 1024;

/// A passphrase; its text is reached only through [`Passphrase::expose`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, format = Password))]
pub struct Passphrase(String);

impl Passphrase {
    pub fn new(text: impl Into<String>) -> Passphrase {
        Passphrase(text.into())
    }

    /// The text, for deriving a key from it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Checks its length.
    pub fn validate(&self) -> Result<(), String> {
        let n = self.0.chars().count();
        if (MIN_PASSPHRASE..=MAX_PASSPHRASE).contains(&n) {
            Ok(())
        } else {
            Err(format!("a passphrase has {MIN_PASSPHRASE} to {MAX_PASSPHRASE} characters"))
        }
    }
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(***)")
    }
}

/// Body of `POST /v1/volumes/{id}/unlock`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UnlockRequest {
    pub passphrase: Passphrase,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed_and_checked() {
        let p = Passphrase::new("correct horse");
        assert_eq!(format!("{p:?}"), "Passphrase(***)");
        assert!(!format!("{:?}", UnlockRequest { passphrase: p.clone() }).contains("horse"));
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"correct horse\"");
        assert!(p.validate().is_ok());
        assert!(Passphrase::new("short").validate().is_err());
    }
}
