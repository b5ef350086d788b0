//! The layering rules of `docs/ARCHITECTURE.md`, checked on the source text of `src/`
//! (code outside `#[cfg(test)]` modules; comments ignored):
//!
//! 1. the library layers — `device`, `crossbar`, `synapses`, `nn`, `learning`, `bayes` —
//!    never refer to `output` (result files, figures), `experiment`, `studies` or
//!    `device::preset` (loading presets by name): they take built devices and data sets;
//! 2. the top-level modules import each other without a cycle;
//! 3. no `super::super`: a path that climbs two levels names the module instead.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules that must stay free of application code.
const LIBRARY: [&str; 6] = ["device", "crossbar", "synapses", "nn", "learning", "bayes"];
/// What the library layers must not refer to.
const FORBIDDEN: [&str; 4] = [
    "crate::output",
    "crate::experiment",
    "crate::studies",
    "preset::",
];

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The library's source files with the top-level module each belongs to, and their code:
/// everything before the first `#[cfg(test)]`, without comment lines.
fn sources() -> Vec<(String, PathBuf, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files
        .into_iter()
        .filter(|p| !p.starts_with(src.join("cli")) && !p.ends_with("main.rs"))
        .map(|path| {
            let rel = path.strip_prefix(&src).unwrap();
            let first = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy();
            let top = first.trim_end_matches(".rs").to_string();
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            let code: Vec<&str> = code
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect();
            (top, path, code.join("\n"))
        })
        .collect()
}

/// The top-level modules named by `crate::NAME` in `code`.
fn referenced_modules(code: &str) -> BTreeSet<String> {
    code.match_indices("crate::")
        .map(|(i, m)| {
            code[i + m.len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

#[test]
fn library_layers_hold_no_application_code() {
    let mut violations = Vec::new();
    for (top, path, code) in sources() {
        if !LIBRARY.contains(&top.as_str()) || path.ends_with("device/preset.rs") {
            continue;
        }
        for forbidden in FORBIDDEN {
            if code.contains(forbidden) {
                violations.push(format!("{} refers to {forbidden}", path.display()));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn top_level_modules_import_each_other_without_a_cycle() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (top, _, code) in sources() {
        let targets = referenced_modules(&code);
        let entry = edges.entry(top.clone()).or_default();
        entry.extend(targets.into_iter().filter(|t| *t != top));
    }
    // Depth-first search for a back edge; report the cycle's path.
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(pos) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[pos..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        let cycle = visit(node, &edges, &mut Vec::new(), &mut done);
        assert!(
            cycle.is_none(),
            "import cycle: {}",
            cycle.unwrap().join(" -> ")
        );
    }
    assert!(
        edges.len() >= 8,
        "expected the top-level modules, found {edges:?}"
    );
}

#[test]
fn no_path_climbs_two_levels() {
    let offenders: Vec<String> = sources()
        .into_iter()
        .filter(|(_, _, code)| code.contains("super::super"))
        .map(|(_, path, _)| path.display().to_string())
        .collect();
    assert!(
        offenders.is_empty(),
        "super::super in: {}",
        offenders.join(", ")
    );
}

/// The checker itself finds what it looks for.
#[test]
fn the_checks_see_module_references() {
    let code = "use crate::output::plot;\nlet x = crate::rng::stream(1, &[]);";
    let found = referenced_modules(code);
    assert_eq!(
        found,
        BTreeSet::from(["output".to_string(), "rng".to_string()])
    );
}
