//! Property tests (proptest) of the request validators and the protocol decoders: any input
//! gets an answer (accepted or a message), never a panic; what is accepted follows the rules.

use std::collections::BTreeMap;

use podgate_types::MemorySize;
use podgate_types::process::{ClientMessage, ServerMessage};
use podgate_types::terminal::Control;
use podgate_types::validate;
use proptest::prelude::*;

/// JSON values shaped like protocol messages: a `type` from the protocol's (or not), and
/// fields of any JSON type.
fn message_json() -> impl Strategy<Value = String> {
    let kinds = prop::sample::select(vec![
        "start",
        "stdin_end",
        "signal",
        "resize",
        "exit",
        "started",
        "dropped",
        "error",
        "",
        "START",
    ]);
    let scalar = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, serde_json::Value::Number)),
        ".{0,20}".prop_map(serde_json::Value::from),
    ];
    let value = scalar.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[a-z_]{1,10}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    });
    let fields = prop::sample::select(vec!["process", "signal", "cols", "rows", "argv", "code", "exit", "message"]);
    (kinds, prop::collection::vec((fields, value), 0..4)).prop_map(|(kind, fields)| {
        let mut m = serde_json::Map::new();
        m.insert("type".into(), kind.into());
        for (k, v) in fields {
            m.insert(k.into(), v);
        }
        serde_json::Value::Object(m).to_string()
    })
}

proptest! {
    #[test]
    fn names_are_checked_without_panicking(s in "\\PC{0,80}") {
        let ok = validate::sandbox_name(&s).is_ok();
        let rule = !s.is_empty() && s.len() <= 63
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-') && !s.ends_with('-');
        prop_assert_eq!(ok, rule);
        prop_assert_eq!(validate::user_name(&s).is_ok(), rule);
    }

    #[test]
    fn env_labels_and_argv_are_checked_without_panicking(
        pairs in prop::collection::btree_map("\\PC{0,12}", "\\PC{0,12}", 0..6),
        argv in prop::collection::vec("\\PC{0,12}", 0..6),
    ) {
        let env: BTreeMap<String, String> = pairs;
        if validate::env(&env).is_ok() {
            for (k, v) in &env {
                prop_assert!(!k.is_empty() && !k.contains('=') && !k.contains('\0') && !v.contains('\0'), "{k:?}={v:?}");
            }
        }
        let _ = validate::labels(&env);
        if validate::argv("argv", &argv).is_ok() {
            prop_assert!(!argv.is_empty() && argv.iter().all(|a| !a.contains('\0')));
        }
    }

    #[test]
    fn memory_sizes_parse_or_refuse(s in prop_oneof!["\\PC{0,24}", " ?[0-9]{1,21} ?(?i)(b|k|kb|m|mb|g|gb|ki|kib|mi|mib|gi|gib|t|x)? ?"]) {
        let parsed = s.parse::<MemorySize>();
        if let Ok(m) = parsed {
            // The bytes alone, and the JSON form, read back as the same size.
            prop_assert_eq!(m.0.to_string().parse::<MemorySize>(), Ok(m));
            let json = serde_json::to_string(&m).unwrap();
            prop_assert_eq!(serde_json::from_str::<MemorySize>(&json).unwrap(), m);
            // The number given is a whole count of the unit's bytes.
            let digits: String = s.trim().chars().take_while(char::is_ascii_digit).collect();
            let n: u64 = digits.parse().unwrap();
            prop_assert!(n == 0 || m.0 % n == 0, "{s:?} -> {m:?}");
            prop_assert!(m.0 >= n, "{s:?} -> {m:?}");
        }
        // Units do not depend on case.
        prop_assert_eq!(s.to_ascii_uppercase().parse::<MemorySize>().ok(), parsed.ok());
    }

    #[test]
    fn memory_sizes_round_trip(n in 0u64..(1 << 30), unit in prop::sample::select(vec![("", 1u64), ("Ki", 1 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30)])) {
        let parsed = format!("{n}{}", unit.0).parse::<MemorySize>();
        prop_assert_eq!(parsed.map(|m| m.0), Ok(n * unit.1));
    }

    #[test]
    fn protocol_decoders_refuse_or_accept_any_text(s in "\\PC{0,200}") {
        // Whatever decodes encodes back to the same message.
        if let Ok(m) = serde_json::from_str::<ClientMessage>(&s) {
            prop_assert_eq!(serde_json::from_str::<ClientMessage>(&serde_json::to_string(&m).unwrap()).unwrap(), m);
        }
        if let Ok(m) = serde_json::from_str::<ServerMessage>(&s) {
            prop_assert_eq!(serde_json::from_str::<ServerMessage>(&serde_json::to_string(&m).unwrap()).unwrap(), m);
        }
        if let Ok(m) = serde_json::from_str::<Control>(&s) {
            prop_assert_eq!(serde_json::from_str::<Control>(&serde_json::to_string(&m).unwrap()).unwrap(), m);
        }
    }

    #[test]
    fn protocol_decoders_take_message_shaped_json(s in message_json()) {
        if let Ok(m) = serde_json::from_str::<ClientMessage>(&s) {
            // What decodes encodes back to the same message.
            let again = serde_json::to_string(&m).unwrap();
            prop_assert_eq!(format!("{:?}", serde_json::from_str::<ClientMessage>(&again).unwrap()), format!("{m:?}"));
        }
        if let Ok(m) = serde_json::from_str::<ServerMessage>(&s) {
            prop_assert_eq!(serde_json::from_str::<ServerMessage>(&serde_json::to_string(&m).unwrap()).unwrap(), m);
        }
        if let Ok(m) = serde_json::from_str::<Control>(&s) {
            prop_assert_eq!(serde_json::from_str::<Control>(&serde_json::to_string(&m).unwrap()).unwrap(), m);
        }
    }
}
