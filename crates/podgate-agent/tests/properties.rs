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
    fn signal_names_parse_or_refuse(s in prop_oneof!["\\PC{0,16}", "(?i)(sig)?(term|kill|int|hup|usr1|winch|bogus)"]) {
        let parsed = signals::parse(&s);
        // A parsed signal is named back the same way, by its name and by its number.
        if let Ok(sig) = parsed {
            prop_assert_eq!(signals::parse(sig.as_str()), Ok(sig));
            prop_assert_eq!(signals::parse(&(sig as i32).to_string()), Ok(sig));
        }
        // Names do not depend on case.
        prop_assert_eq!(signals::parse(&s.to_ascii_lowercase()).ok(), parsed.ok());
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
        for (addr, _, _) in parse_table(&text, v6) {
            prop_assert!(addr.parse::<std::net::IpAddr>().is_ok(), "{addr:?}");
        }
    }

    #[test]
    fn socket_tables_give_exactly_the_listening_sockets(rows in prop::collection::vec((any::<u32>(), any::<u16>(), any::<bool>(), any::<u64>()), 0..12)) {
        // A /proc/net/tcp table as the kernel prints it: state 0A is LISTEN, 01 ESTABLISHED.
        let mut text = String::from("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n");
        for (i, (addr, port, listening, inode)) in rows.iter().enumerate() {
            let st = if *listening { "0A" } else { "01" };
            text.push_str(&format!(
                "{i:4}: {addr:08X}:{port:04X} 00000000:0000 {st} 00000000:00000000 00:00000000 00000000  1000        0 {inode} 1 0000000000000000 100 0 0 10 0\n"
            ));
        }
        let want: Vec<(String, u16, u64)> = rows
            .iter()
            .filter(|r| r.2)
            .map(|(addr, port, _, inode)| (std::net::Ipv4Addr::from(addr.to_le_bytes()).to_string(), *port, *inode))
            .collect();
        prop_assert_eq!(parse_table(&text, false), want);
    }

    #[test]
    fn paths_resolve_to_absolute_paths(p in "\\PC{0,40}") {
        let d = Dirs { home: "/home/u".into(), workdir: "/w".into() };
        prop_assert!(d.resolve(&p).is_absolute());
    }
}
