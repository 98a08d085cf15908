//! Signal names as clients send them (`TERM`, `SIGTERM`, `15`).

use nix::sys::signal::Signal;

/// Parses a signal name (with or without `SIG`) or number.
pub fn parse(name: &str) -> Result<Signal, String> {
    if let Ok(n) = name.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| format!("unknown signal {n}"));
    }
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    full.parse::<Signal>().map_err(|_| format!("unknown signal {name:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!(parse("TERM"), Ok(Signal::SIGTERM));
        assert_eq!(parse("sigint"), Ok(Signal::SIGINT));
        assert_eq!(parse("9"), Ok(Signal::SIGKILL));
        assert!(parse("NOPE").is_err());
        assert!(parse("0").is_err());
        assert!(parse("999").is_err());
    }
}
