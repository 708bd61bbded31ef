//! The house rules that a linter would hold, read from `src/` as text:
//! top-level modules form no cycle and every `crate::` reference points down
//! the layer map at the top of `lib.rs`; no source file is over 400 lines
//! and no function over 60 (tests aside).
//!
//! `WSGATE_LAYERS_SRC=/path/to/src` points the checks at another tree (how
//! the note on the architecture issue shows them failing on the old one).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Longest source file, in lines, outside test modules.
const MAX_FILE_LINES: usize = 400;

/// Longest function, in lines, outside test modules.
const MAX_FN_LINES: usize = 60;

#[test]
fn top_level_modules_form_no_cycle() {
    let graph = Graph::read(&src());
    let cycles = graph.cycles();
    assert!(
        cycles.is_empty(),
        "cycles among top-level modules:\n{}",
        cycles.join("\n")
    );
}

#[test]
fn every_reference_points_down_the_layer_map() {
    let src = src();
    let graph = Graph::read(&src);
    let order = layer_map(&src);
    let unmapped: Vec<_> = graph
        .modules
        .iter()
        .filter(|m| !order.contains(m))
        .collect();
    assert!(unmapped.is_empty(), "not in lib.rs's map: {unmapped:?}");
    let rank = |m: &str| order.iter().position(|o| o == m).unwrap_or(usize::MAX);
    let upward: Vec<String> = graph
        .edges()
        .filter(|(from, to)| rank(from) >= rank(to))
        .map(|(from, to)| format!("{from} -> {to} ({})", graph.witness(from, to)))
        .collect();
    assert!(
        upward.is_empty(),
        "edges pointing up:\n{}",
        upward.join("\n")
    );
}

#[test]
fn files_and_functions_stay_short() {
    let mut long = Vec::new();
    for file in rust_files(&src()) {
        if is_test_file(&file) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let lines = outside_tests(&text);
        if lines.len() > MAX_FILE_LINES {
            long.push(format!("{}: {} lines", file.display(), lines.len()));
        }
        for (name, start, len) in functions(&lines) {
            if len > MAX_FN_LINES {
                long.push(format!(
                    "{}:{start}: fn {name}, {len} lines",
                    file.display()
                ));
            }
        }
    }
    assert!(long.is_empty(), "too long:\n{}", long.join("\n"));
}

#[test]
fn the_checks_see_a_cycle_and_an_upward_edge() {
    let mut graph = Graph::default();
    for m in ["a", "b", "c"] {
        graph.modules.insert(m.into());
    }
    graph.add("a", "b", "src/a.rs");
    graph.add("b", "c", "src/b.rs");
    assert!(graph.cycles().is_empty());
    graph.add("c", "a", "src/c/mod.rs");
    let cycles = graph.cycles();
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    assert!(cycles[0].contains("c -> a (src/c/mod.rs)"), "{}", cycles[0]);
    let lines: Vec<String> = ["fn f() {", "    if x {", "    }", "}"]
        .map(String::from)
        .to_vec();
    assert_eq!(functions(&lines), vec![("f".to_string(), 1, 4)]);
}

/// The tree under test.
fn src() -> PathBuf {
    match std::env::var_os("WSGATE_LAYERS_SRC") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
    }
}

/// The top-level modules and which refers to which, with the first file
/// that does so for each edge.
#[derive(Default)]
struct Graph {
    modules: BTreeSet<String>,
    refs: BTreeMap<(String, String), String>,
}

impl Graph {
    fn read(src: &Path) -> Graph {
        let mut graph = Graph::default();
        for file in rust_files(src) {
            let rel = file.strip_prefix(src).unwrap();
            let Some(module) = top_module(rel) else {
                continue;
            };
            graph.modules.insert(module.clone());
            let text = std::fs::read_to_string(&file).unwrap();
            for target in referenced(&text, rel) {
                if target != module {
                    graph.add(&module, &target, &rel.display().to_string());
                }
            }
        }
        let modules = graph.modules.clone();
        graph.refs.retain(|(_, to), _| modules.contains(to));
        graph
    }

    fn add(&mut self, from: &str, to: &str, file: &str) {
        let key = (from.to_string(), to.to_string());
        self.refs.entry(key).or_insert_with(|| file.to_string());
    }

    fn edges(&self) -> impl Iterator<Item = (&str, &str)> {
        self.refs.keys().map(|(a, b)| (a.as_str(), b.as_str()))
    }

    fn witness(&self, from: &str, to: &str) -> &str {
        &self.refs[&(from.to_string(), to.to_string())]
    }

    fn reaches(&self, from: &str, to: &str) -> bool {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from];
        while let Some(m) = stack.pop() {
            for (a, b) in self.edges() {
                if a == m && seen.insert(b) {
                    if b == to {
                        return true;
                    }
                    stack.push(b);
                }
            }
        }
        false
    }

    /// Each group of modules that reach one another, with its edges.
    fn cycles(&self) -> Vec<String> {
        let mut grouped: BTreeSet<&String> = BTreeSet::new();
        let mut out = Vec::new();
        for m in &self.modules {
            if grouped.contains(m) || !self.reaches(m, m) {
                continue;
            }
            let group: BTreeSet<&String> = self
                .modules
                .iter()
                .filter(|o| *o == m || (self.reaches(m, o) && self.reaches(o, m)))
                .collect();
            let edges: Vec<String> = self
                .edges()
                .filter(|(a, b)| group.iter().any(|g| g == a) && group.iter().any(|g| g == b))
                .map(|(a, b)| format!("{a} -> {b} ({})", self.witness(a, b)))
                .collect();
            let names: Vec<&str> = group.iter().map(|g| g.as_str()).collect();
            out.push(format!("{}: {}", names.join(" "), edges.join(", ")));
            grouped.extend(group);
        }
        out
    }
}

/// The top-level module a file belongs to (`None` for the crate root).
fn top_module(rel: &Path) -> Option<String> {
    let first = rel.components().next()?.as_os_str().to_str()?;
    match first {
        "lib.rs" | "main.rs" => None,
        file => Some(file.trim_end_matches(".rs").to_string()),
    }
}

/// The top-level modules a file names, through `crate::` or enough
/// `super::` to reach the crate root.
fn referenced(text: &str, rel: &Path) -> BTreeSet<String> {
    let depth = module_depth(rel);
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let before = text[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        out.insert(ident(&text[i + "crate::".len()..]));
    }
    let climb = "super::".repeat(depth);
    for (i, _) in text.match_indices(&climb) {
        let rest = &text[i + climb.len()..];
        if !rest.starts_with("super::") && !text[..i].ends_with("super::") {
            out.insert(ident(rest));
        }
    }
    out.retain(|m| !m.is_empty());
    out
}

/// How many `super::` reach the crate root from a file's module.
fn module_depth(rel: &Path) -> usize {
    let parts = rel.components().count();
    let is_mod_file = rel.file_name().is_some_and(|f| f == "mod.rs");
    if is_mod_file {
        parts - 1
    } else {
        parts
    }
}

/// The identifier at the start of `text`.
fn ident(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The module order of the map in `lib.rs`'s docs: the first word of each
/// line of its first `text` block.
fn layer_map(src: &Path) -> Vec<String> {
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let block: Vec<&str> = lib
        .lines()
        .skip_while(|l| !l.starts_with("//! ```text"))
        .skip(1)
        .take_while(|l| !l.starts_with("//! ```"))
        .collect();
    block
        .iter()
        .filter_map(|l| l.trim_start_matches("//!").split_whitespace().next())
        .filter(|w| w.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .map(str::to_string)
        .collect()
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Unit-test files: `tests.rs`, `test_support.rs`.
fn is_test_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    matches!(name, "tests.rs" | "test_support.rs")
}

/// The file's lines up to an inline `#[cfg(test)] mod tests { … }`.
fn outside_tests(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let end = lines
        .windows(2)
        .position(|w| w[0] == "#[cfg(test)]" && w[1].starts_with("mod tests {"))
        .unwrap_or(lines.len());
    lines[..end].iter().map(|l| l.to_string()).collect()
}

/// Every `fn` with a body: its name, first line (1-based) and length.
fn functions(lines: &[String]) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        let Some(name) = fn_name(line) else { continue };
        let mut depth = 0i32;
        let mut opened = false;
        for (offset, body) in lines[start..].iter().enumerate() {
            let code = code_of(body);
            if !opened && code.contains(';') && !code.contains('{') {
                break;
            }
            for c in code.chars() {
                match c {
                    '{' => (depth, opened) = (depth + 1, true),
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            if opened && depth <= 0 {
                out.push((name, start + 1, offset + 1));
                break;
            }
        }
    }
    out
}

/// The function a line declares, if it starts one.
fn fn_name(line: &str) -> Option<String> {
    let mut words = line.split_whitespace().peekable();
    while let Some(word) = words.next() {
        match word {
            "fn" => return words.next().map(ident).filter(|n| !n.is_empty()),
            "pub" | "async" | "const" | "unsafe" | "extern" => {}
            w if w.starts_with("pub(") => {}
            _ => return None,
        }
    }
    None
}

/// A line without its comment and without string or char literals.
fn code_of(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => break,
            '"' => {
                while let Some(s) = chars.next() {
                    match s {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '\'' => {
                let literal: String = chars.clone().take(3).collect();
                if literal.starts_with('\\') || literal.chars().nth(1) == Some('\'') {
                    for s in chars.by_ref() {
                        if s == '\'' {
                            break;
                        }
                    }
                }
            }
            c => out.push(c),
        }
    }
    out
}
