//! Random identifiers and secrets.

use rand::Rng as _;

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// `n` random characters of lowercase base32 (5 bits each), from the OS-seeded CSPRNG.
pub fn random_base32(n: usize) -> String {
    let mut rng = rand::rng();
    (0..n).map(|_| ALPHABET[rng.random_range(0..32)] as char).collect()
}

/// A sandbox id: `sb-` and 20 characters (100 bits).
pub fn sandbox_id() -> String {
    format!("sb-{}", random_base32(20))
}

/// A default sandbox name when the caller gives none.
pub fn sandbox_name() -> String {
    format!("sandbox-{}", random_base32(6))
}

/// A user id.
pub fn user_id() -> String {
    format!("usr-{}", random_base32(16))
}

/// An API token id (not secret).
pub fn token_id() -> String {
    format!("tok-{}", random_base32(16))
}

/// An API token secret: `pgt_` and 40 characters (200 bits).
pub fn token_secret() -> String {
    format!("pgt_{}", random_base32(40))
}

/// A per-sandbox agent secret (200 bits).
pub fn agent_secret() -> String {
    random_base32(40)
}

/// A new volume id: `vol-` and 20 base32 characters.
pub fn volume_id() -> String {
    format!("vol-{}", random_base32(20))
}

/// A new snapshot id: `snap-` and 20 base32 characters.
pub fn snapshot_id() -> String {
    format!("snap-{}", random_base32(20))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_and_well_formed() {
        let a = sandbox_id();
        assert_eq!(a.len(), 23);
        assert_ne!(a, sandbox_id());
        assert!(podgate_types::validate::sandbox_name(&sandbox_name()).is_ok());
        assert!(token_secret().starts_with("pgt_"));
    }
}
