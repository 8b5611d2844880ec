//! The layering rules of lib.rs's header, read off the source so a change that breaks one
//! fails here rather than in a later review: no command names another command, no layer
//! names one above it, and no file in src/ is over 600 lines.

use std::path::{Path, PathBuf};

const MAX_LINES: usize = 600;

/// Each layer below the commands, and the modules above it that it may never name.
const LAYERS: &[(&str, &[&str])] = &[
    ("src/browse", &["cli", "commands", "automation"]),
    ("src/automation", &["cli", "commands"]),
    ("src/cleanup", &["cli", "commands", "automation"]),
    ("src/survey", &["cli", "commands", "automation", "cleanup"]),
    (
        "src/policy",
        &["cli", "commands", "automation", "cleanup", "survey"],
    ),
    (
        "src/write_gate.rs",
        &[
            "cli",
            "commands",
            "automation",
            "cleanup",
            "survey",
            "policy",
        ],
    ),
    (
        "src/home",
        &[
            "cli",
            "commands",
            "automation",
            "cleanup",
            "survey",
            "policy",
        ],
    ),
    (
        "src/ops",
        &[
            "cli",
            "commands",
            "automation",
            "cleanup",
            "survey",
            "policy",
        ],
    ),
    (
        "src/store",
        &[
            "cli",
            "commands",
            "automation",
            "cleanup",
            "survey",
            "policy",
        ],
    ),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if root.is_file() {
        found.push(root.to_path_buf());
        return found;
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap_or_else(|e| panic!("reading {}: {e}", root.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            found.extend(rust_files(&path));
        } else if path.extension().is_some_and(|x| x == "rs") {
            found.push(path);
        }
    }
    found
}

fn relative(path: &Path) -> String {
    path.strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The source without its `//` comments, which may name a module without importing it.
fn code_of(source: &str) -> String {
    source
        .lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The first segment of every path that `prefix` starts in `code`: `a` for `prefix a::b`,
/// and `a`, `b` for `prefix {a, b::c}`. A prefix glued to a longer name does not count.
fn names_after(code: &str, prefix: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find(prefix) {
        let start = from + at;
        from = start + prefix.len();
        if code[..start].chars().next_back().is_some_and(is_ident) {
            continue;
        }
        let rest = code[from..].trim_start();
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item = String::new();
            let mut items = Vec::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 1 => items.push(std::mem::take(&mut item)),
                    _ => {}
                }
                if depth == 0 {
                    break;
                }
                if c != ',' || depth > 1 {
                    item.push(c);
                }
            }
            items.push(item);
            for item in items {
                let name: String = item.trim().chars().take_while(|&c| is_ident(c)).collect();
                if !name.is_empty() {
                    names.push(name);
                }
            }
        } else {
            let name: String = rest.chars().take_while(|&c| is_ident(c)).collect();
            if !name.is_empty() {
                names.push(name);
            }
        }
    }
    names
}

/// The sibling commands that one file of command `own` names. A file directly in
/// `src/commands/` reaches a sibling as `super::x`; one in `src/commands/<own>/` as
/// `super::super::x`; either as `commands::x`.
fn siblings_named(code: &str, own: &str, nested: bool, commands: &[String]) -> Vec<String> {
    let sibling_prefix = if nested { "super::super::" } else { "super::" };
    let mut named: Vec<String> = names_after(code, "commands::")
        .into_iter()
        .chain(names_after(code, sibling_prefix))
        .filter(|n| n != own && commands.contains(n))
        .collect();
    named.sort();
    named.dedup();
    named
}

fn command_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("src/commands is readable")
        .map(|e| e.expect("a directory entry").path())
        .filter_map(|p| {
            let stem = p.file_stem()?.to_string_lossy().to_string();
            (p.is_dir() || p.extension().is_some_and(|x| x == "rs")).then_some(stem)
        })
        .filter(|stem| stem != "mod")
        .collect()
}

#[test]
fn no_command_names_another_command() {
    let dir = src().join("commands");
    let commands = command_names(&dir);
    assert!(
        commands.len() > 5 && commands.iter().any(|c| c == "cleanup"),
        "the commands were not found: {commands:?}"
    );
    let mut broken = Vec::new();
    for file in rust_files(&dir) {
        let inside = file.strip_prefix(&dir).expect("under src/commands");
        let mut parts = inside.iter().map(|p| p.to_string_lossy().to_string());
        let first = parts.next().expect("a file name");
        let nested = parts.next().is_some();
        let own = first.trim_end_matches(".rs").to_string();
        if own == "mod" {
            continue;
        }
        let code = code_of(&std::fs::read_to_string(&file).expect("readable source"));
        for other in siblings_named(&code, &own, nested, &commands) {
            broken.push(format!("{} names the command {other}", relative(&file)));
        }
    }
    assert!(
        broken.is_empty(),
        "a command may use the layers below it and src/commands/mod.rs, never another command: {broken:#?}"
    );
}

#[test]
fn no_layer_names_a_layer_above_it() {
    let mut broken = Vec::new();
    for (layer, above) in LAYERS {
        let root = src().parent().expect("the crate").join(layer);
        let files = rust_files(&root);
        assert!(!files.is_empty(), "{layer} has no source");
        for file in files {
            let code = code_of(&std::fs::read_to_string(&file).expect("readable source"));
            for name in names_after(&code, "crate::") {
                if above.contains(&name.as_str()) {
                    broken.push(format!("{} names crate::{name}", relative(&file)));
                }
            }
        }
    }
    assert!(broken.is_empty(), "nothing calls upward: {broken:#?}");
}

#[test]
fn no_source_file_is_over_600_lines() {
    let mut too_long = Vec::new();
    for file in rust_files(&src()) {
        let name = relative(&file);
        let lines = std::fs::read_to_string(&file)
            .expect("readable source")
            .lines()
            .count();
        if lines > MAX_LINES {
            too_long.push(format!("{name}: {lines} lines"));
        }
    }
    assert!(
        too_long.is_empty(),
        "split these into files of one concern each, at most {MAX_LINES} lines: {too_long:#?}"
    );
}

/// The checks above pass only if they can see a violation; this shows each way of writing
/// one is seen, and that what is allowed is not mistaken for one.
#[test]
fn the_checks_see_every_way_of_naming_a_module() {
    let commands: Vec<String> = ["archive", "cleanup", "inspect"].map(String::from).to_vec();
    let seen = |code: &str, nested: bool| siblings_named(code, "cleanup", nested, &commands);
    assert_eq!(seen("use super::archive::judge;", false), ["archive"]);
    assert_eq!(
        seen("use super::{Context, inspect, archive::x};", false),
        ["archive", "inspect"]
    );
    assert_eq!(
        seen(
            "use super::{\n    Context,\n    inspect::{self, gather},\n};",
            false
        ),
        ["inspect"]
    );
    assert_eq!(
        seen("let h = crate::commands::archive::run(c);", false),
        ["archive"]
    );
    assert_eq!(
        seen("use super::super::inspect::InspectArgs;", true),
        ["inspect"]
    );
    assert!(seen("use super::{Context, confirm, relative_to};", false).is_empty());
    assert!(
        seen(
            "use super::cleanup_helpers; super::session_in_catalog(x)",
            false
        )
        .is_empty()
    );
    assert!(seen("use super::settings::Flags;", true).is_empty());
    assert!(seen(&code_of("// see super::archive for why"), false).is_empty());
    assert!(seen("let s = my_super::archive;", false).is_empty());

    assert_eq!(
        names_after("use crate::{commands, home::CodexHome};", "crate::"),
        ["commands", "home"]
    );
    assert_eq!(
        names_after("crate::survey::gather(h)", "crate::"),
        ["survey"]
    );
}
