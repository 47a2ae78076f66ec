//! The import graph between the top-level modules of `src/` has no cycle, nor the one between
//! the modules inside `src/provision/` (the kinds' files and the pieces they share; `mod.rs`
//! declares and wires them, like `lib.rs` for the crate, and is no node).
//!
//! A top-level module is a file or folder directly under `src/` (`lib.rs` and `main.rs` aside).
//! Module `a` imports `b` when code of `a` outside `#[cfg(test)]` names `crate::b…` (also inside
//! `use crate::{…}` groups) or reaches `b` through enough `super::`. Comments and string
//! literals do not count. On failure the test prints every cycle's modules and the edges
//! between them with the files that make them, so the fix can start at once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Edges `from → to`, each with the files (relative to `src/`) that make it.
type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

#[test]
fn top_level_modules_of_src_import_each_other_without_a_cycle() {
    // The wiring imports the queue and the settings.
    assert_no_cycle(&[], ("app", ["queue", "config"]));
}

/// Inside `provision`, the kinds' files and the pieces they share name each other without a
/// cycle (the shared pieces sit below the kinds; `mod.rs` wires them and is no node).
#[test]
fn the_modules_inside_provision_import_each_other_without_a_cycle() {
    // The registry names the kinds.
    assert_no_cycle(&["provision"], ("kind", ["user", "group"]));
}

/// Asserts that the modules inside `within` (`[]`: the top-level modules) import each other
/// without a cycle, after a guard against a parser that sees nothing: `from` must import both
/// modules of `to`.
fn assert_no_cycle(within: &[&str], (from, to): (&str, [&str; 2])) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = import_graph_within(&src, within);
    assert!(
        graph
            .get(from)
            .is_some_and(|edges| to.iter().all(|m| edges.contains_key(*m))),
        "the import parser found no {from} → {to:?} edges; it is broken: {graph:?}"
    );
    let report = cycle_report(&graph);
    let place = match within {
        [] => "top-level modules".to_string(),
        _ => format!("modules inside {}", within.join("::")),
    };
    assert!(
        report.is_empty(),
        "{place} import each other in a circle; move the shared piece down or the caller up:\n\
         {report}"
    );
}

/// Every cycle's modules and the edges between them with the files that make them; empty
/// without a cycle.
fn cycle_report(graph: &Graph) -> String {
    let mut report = String::new();
    for modules in &cycles(graph) {
        report.push_str(&format!("cycle between {modules:?}:\n"));
        for from in modules {
            for (to, files) in &graph[from] {
                if modules.contains(to) {
                    report.push_str(&format!("  {from} → {to}  ({files:?})\n"));
                }
            }
        }
    }
    report
}

#[test]
fn the_parser_skips_test_code_comments_and_strings_and_reads_use_groups() {
    let code = r#"
        use crate::{alpha::{One, Two}, beta, self};
        // crate::commented
        const S: &str = "crate::quoted { '";
        const C: char = '{';
        fn f<'a>(x: &'a str) -> &'a str { crate::gamma::g(x); super::delta::d(); x }
        #[cfg(test)]
        mod tests {
            use crate::tested;
            fn t() { let _ = "}"; crate::tested2::x(); }
        }
        #[cfg(test)]
        use crate::test_only_use::{A, B};
        fn after() { crate::epsilon::e(); }
    "#;
    let (names, test_mods) = referenced_modules(code, 1);
    assert_eq!(
        names,
        strings(&["alpha", "beta", "delta", "epsilon", "gamma"])
    );
    assert!(test_mods.is_empty());
    // Inside a module: its children, named through `crate::<module>::` or enough `super::`.
    let child =
        "use super::{keys, Provisioner};\nuse crate::provision::topic;\nuse crate::ox::x;\n\
                 fn f() { super::super::queue::q(); }";
    let (names, _) = referenced_modules_within(child, 2, &["provision"]);
    assert_eq!(names, strings(&["Provisioner", "keys", "topic"]));
    let (_, test_mods) = referenced_modules("#[cfg(test)]\npub(crate) mod sink;\n", 1);
    assert_eq!(test_mods, vec!["sink".to_string()]);
}

/// The graph of the modules directly inside the module `within` (a path below `src/`, empty
/// for the crate): for each, the others it names. The parent's own file (`lib.rs`, `main.rs`,
/// `mod.rs`) is no node: it declares and wires its children.
fn import_graph_within(src: &Path, within: &[&str]) -> Graph {
    let mut graph = Graph::new();
    let mut files = Vec::new();
    let dir = within.iter().fold(src.to_path_buf(), |d, m| d.join(m));
    rust_files(&dir, &mut files);
    files.sort();
    let mut skipped: Vec<PathBuf> = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&dir).expect("walked below the folder");
        if skipped.iter().any(|s| file == s || file.starts_with(s)) {
            continue;
        }
        let parts: Vec<String> = rel
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let top = parts[0].trim_end_matches(".rs").to_string();
        let parent_file = ["lib", "main", "mod"].contains(&top.as_str());
        if parts.len() == 1 && parent_file {
            continue;
        }
        let depth = module_depth(&parts) + within.len();
        let text = std::fs::read_to_string(file).expect("read a source file");
        let (names, test_mods) = referenced_modules_within(&text, depth, within);
        // `#[cfg(test)] mod x;` pulls in x.rs or x/ next to this module: test code too.
        let module_dir = match parts.last().map(String::as_str) {
            Some("mod.rs") => file.parent().expect("a file has a folder").to_path_buf(),
            _ => file.with_extension(""),
        };
        for name in test_mods {
            skipped.push(module_dir.join(format!("{name}.rs")));
            skipped.push(module_dir.join(&name));
        }
        let edges = graph.entry(top.clone()).or_default();
        for name in names.into_iter().filter(|n| *n != top) {
            edges
                .entry(name)
                .or_default()
                .insert(rel.display().to_string());
        }
    }
    graph
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read a source folder") {
        let path = entry.expect("read a folder entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// How many `super::` lead from this file to the crate root.
fn module_depth(parts: &[String]) -> usize {
    match parts.last().map(String::as_str) {
        Some("mod.rs") => parts.len() - 1,
        _ => parts.len(),
    }
}

/// The top-level modules `code` names outside `#[cfg(test)]`, and the modules it declares
/// under `#[cfg(test)]` with `mod x;`.
fn referenced_modules(code: &str, depth: usize) -> (BTreeSet<String>, Vec<String>) {
    referenced_modules_within(code, depth, &[])
}

/// Like [`referenced_modules`], for the children of the module `within`: the names after
/// `crate::<within>::` or after as many `super::` as lead to `within` (`depth` lead to the
/// crate root).
fn referenced_modules_within(
    code: &str,
    depth: usize,
    within: &[&str],
) -> (BTreeSet<String>, Vec<String>) {
    let prefix: String = std::iter::once("crate::".to_string())
        .chain(within.iter().map(|m| format!("{m}::")))
        .collect();
    let supers_to_parent = depth - within.len();
    let code = without_test_items(&blank_comments_and_literals(code));
    let mut test_mods = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find(TEST_DECL_MARK) {
        let name = rest[at + TEST_DECL_MARK.len()..]
            .split(|c: char| !is_ident(c))
            .next()
            .unwrap_or_default();
        test_mods.push(name.to_string());
        rest = &rest[at + TEST_DECL_MARK.len()..];
    }
    let chars: Vec<char> = code.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        if (i == 0 || !is_ident(chars[i - 1])) && starts_with(&chars, i, &prefix) {
            i += prefix.len();
            collect_path_heads(&chars, &mut i, &mut names);
        } else if (i == 0 || !is_ident(chars[i - 1])) && starts_with(&chars, i, "super::") {
            let mut supers = 0;
            while starts_with(&chars, i, "super::") {
                supers += 1;
                i += "super::".len();
            }
            if supers == supers_to_parent {
                collect_path_heads(&chars, &mut i, &mut names);
            }
        } else {
            i += 1;
        }
    }
    names.retain(|n| n != "self" && n != "super" && !n.is_empty());
    (names, test_mods)
}

/// What `without_test_items` leaves of a `#[cfg(test)] mod x;` declaration.
const TEST_DECL_MARK: &str = "\u{1}mod ";

/// Reads the first segment after `crate::` (or of each element of a `{…}` group).
fn collect_path_heads(chars: &[char], i: &mut usize, names: &mut BTreeSet<String>) {
    if chars.get(*i) != Some(&'{') {
        names.insert(ident_at(chars, *i));
        return;
    }
    let mut depth = 0;
    let mut element_start = true;
    while *i < chars.len() {
        match chars[*i] {
            '{' => {
                depth += 1;
                element_start = depth == 1;
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return;
                }
            }
            ',' if depth == 1 => element_start = true,
            c if element_start && is_ident(c) => {
                let name = ident_at(chars, *i);
                *i += name.chars().count() - 1;
                names.insert(name);
                element_start = false;
            }
            _ => {}
        }
        *i += 1;
    }
}

fn ident_at(chars: &[char], i: usize) -> String {
    chars[i..].iter().take_while(|c| is_ident(**c)).collect()
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn starts_with(chars: &[char], i: usize, word: &str) -> bool {
    let word: Vec<char> = word.chars().collect();
    chars.get(i..i + word.len()) == Some(&word[..])
}

/// Removes each item that follows `#[cfg(test)]` (up to its `;` or its matched `{…}`); a
/// `mod x;` declaration is kept as a marker so its file can be skipped.
fn without_test_items(code: &str) -> String {
    const ATTR: &str = "#[cfg(test)]";
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find(ATTR) {
        out.push_str(&rest[..at]);
        let item = &rest[at + ATTR.len()..];
        let semi = item.find(';');
        let brace = item.find('{');
        let end = match (semi, brace) {
            (Some(s), b) if b.is_none_or(|b| s < b) => {
                let decl = item[..s].trim();
                if let Some(name) = decl.rsplit_once("mod ").map(|(_, n)| n.trim()) {
                    out.push_str(&format!("{TEST_DECL_MARK}{name};"));
                }
                s + 1
            }
            (_, Some(b)) => matching_brace(item, b) + 1,
            _ => item.len(),
        };
        rest = &item[end.min(item.len())..];
    }
    out.push_str(rest);
    out
}

fn matching_brace(text: &str, open: usize) -> usize {
    let mut depth = 0;
    for (i, c) in text[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return open + i;
                }
            }
            _ => {}
        }
    }
    text.len()
}

/// The code with comments and the insides of string and char literals replaced by spaces, so
/// that only real paths and braces remain.
fn blank_comments_and_literals(code: &str) -> String {
    let chars: Vec<char> = code.chars().collect();
    let mut out = String::with_capacity(code.len());
    let mut i = 0;
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if starts_with(&chars, i, "/*") {
                    depth += 1;
                    i += 2;
                } else if starts_with(&chars, i, "*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && raw_start(&chars, i) {
            let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
            let close: String = std::iter::once('"')
                .chain("#".repeat(hashes).chars())
                .collect();
            i += 2 + hashes;
            while i < chars.len() && !starts_with(&chars, i, &close) {
                blank(&mut out, chars[i]);
                i += 1;
            }
            i += close.chars().count();
            out.push_str("\"\"");
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                if let Some(&c) = chars.get(i) {
                    blank(&mut out, c);
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && (next == Some('\\') || chars.get(i + 2) == Some(&'\'')) {
            i += 2;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
            out.push_str("' '");
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Whether the `r` at `i` opens a raw string (`r"`, `r#"`), not an identifier ending in r.
fn raw_start(chars: &[char], i: usize) -> bool {
    let before = if i == 0 { None } else { Some(chars[i - 1]) };
    let prefix_ok = match before {
        Some('b') => i < 2 || !is_ident(chars[i - 2]),
        Some(c) => !is_ident(c),
        None => true,
    };
    let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
    prefix_ok && chars.get(i + 1 + hashes) == Some(&'"')
}

/// The strongly connected components with more than one module (Tarjan), each sorted.
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    struct Walk<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        found: Vec<Vec<String>>,
    }
    impl<'g> Walk<'g> {
        fn visit(&mut self, v: &'g str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            for w in self.graph.get(v).into_iter().flat_map(|e| e.keys()) {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.stack.contains(&w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    component.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.found
}

fn strings(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}
