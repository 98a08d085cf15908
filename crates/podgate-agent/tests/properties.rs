//! Property tests (proptest) of what the agent parses from outside: signal names, the sandbox's
//! own /etc/passwd (the sandbox user can write it), the kernel's socket tables, and paths.

use podgate_agent::launch::{account, login_shell};
use podgate_agent::paths::Dirs;
use podgate_agent::ports::parse_table;
use podgate_agent::signals;
use proptest::prelude::*;

/// Lines shaped like /etc/passwd entries, with hostile fields mixed in.
fn passwd() -> impl Strategy<Value = String> {
    let field = prop_oneof!["[a-z0-9]{0,8}", "\\PC{0,12}", "-?[0-9]{1,12}", Just(String::new())];
    prop::collection::vec(prop::collection::vec(field, 0..9), 0..8)
        .prop_map(|lines| lines.iter().map(|f| f.join(":")).collect::<Vec<_>>().join("\n"))
}

proptest! {
    #[test]
    fn signal_names_parse_or_refuse(s in "\\PC{0,16}") {
        let _ = signals::parse(&s);
    }

    #[test]
    fn numbered_signals_stay_in_range(n in any::<i64>()) {
        if let Ok(sig) = signals::parse(&n.to_string()) {
            prop_assert!((1..=64).contains(&(sig as i64)), "{n} -> {sig:?}");
        }
    }

    #[test]
    fn users_resolve_against_any_passwd(text in passwd(), user in prop_oneof!["[a-z]{1,8}", "[0-9]{1,11}(:[0-9]{1,11})?", "\\PC{0,12}"], uid in any::<u32>()) {
        if let Ok(a) = account(&text, &user) {
            // Numbers given are the numbers used; names come from the file.
            if let Ok(n) = user.parse::<u32>() {
                prop_assert_eq!(a.uid, n);
            }
        }
        let _ = login_shell(&text, uid);
    }

    #[test]
    fn socket_tables_parse_or_skip(text in "\\PC{0,400}", v6 in any::<bool>()) {
        let _ = parse_table(&text, v6);
    }

    #[test]
    fn paths_resolve_to_absolute_paths(p in "\\PC{0,40}") {
        let d = Dirs { home: "/home/u".into(), workdir: "/w".into() };
        prop_assert!(d.resolve(&p).is_absolute());
    }
}
