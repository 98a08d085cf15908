//! README's tables of `podgate server` options, generated from the flags' own declarations (the
//! one place each option is declared); a test keeps README.md equal to them.

/// The markdown table of the server's options: the Kubernetes driver's (`kube*`) or the rest.
pub(super) fn table(server: &clap::Command, kube: bool) -> String {
    let mut out = String::from("| flag | variable | default | meaning |\n|---|---|---|---|\n");
    let args =
        server.get_arguments().filter(|a| a.get_long().is_some() && !matches!(a.get_id().as_str(), "help" | "version"));
    for a in args.filter(|a| a.get_id().as_str().starts_with("kube") == kube) {
        // A switch: a bare flag is true, `=false` turns off what a variable or the file set.
        let switch = a.get_num_args().is_some_and(|r| r.min_values() == 0);
        let help = a.get_long_help().or(a.get_help()).map(|h| h.to_string()).unwrap_or_default();
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        let (meaning, default) = match help.rsplit_once(" [default: ") {
            Some((m, d)) => (m.to_string(), d.trim_end_matches(']').to_string()),
            None if switch => (help.clone(), "off".into()),
            None => (help.clone(), "none".into()),
        };
        let env = a.get_env().map(|e| format!("`{}`", e.to_string_lossy())).unwrap_or_default();
        let flag = match switch {
            true => format!("`--{}[=false]`", a.get_long().unwrap_or_default()),
            false => format!("`--{}`", a.get_long().unwrap_or_default()),
        };
        out.push_str(&format!(
            "| {flag} | {env} | {} | {} |\n",
            default.replace('|', "\\|"),
            meaning.replace('|', "\\|")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// README.md's option tables are the generated ones (`PODGATE_BLESS=1` rewrites them).
    #[test]
    fn the_readme_option_tables_are_generated_from_the_flags() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
        let readme = std::fs::read_to_string(&path).unwrap();
        let cli = crate::Cli::command();
        let server = cli.find_subcommand("server").unwrap();
        let mut want = readme.clone();
        for (name, kube) in [("server-options", false), ("kube-options", true)] {
            let (begin, end) = (format!("<!-- {name}: generated -->\n"), format!("<!-- /{name} -->"));
            let start = want.find(&begin).unwrap_or_else(|| panic!("README.md lacks {begin:?}")) + begin.len();
            let stop = start + want[start..].find(&end).unwrap_or_else(|| panic!("README.md lacks {end:?}"));
            want.replace_range(start..stop, &super::table(server, kube));
        }
        if std::env::var_os("PODGATE_BLESS").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        assert!(
            readme == want,
            "README.md's option tables are stale: run `PODGATE_BLESS=1 cargo test -p podgate --bin podgate readme`"
        );
    }
}
