//! The files an experiment reads besides its experiment file — device preset files, data
//! directories, imported weights — found in its configuration, resolved against the
//! experiment file's directory, and fingerprinted by content.
//!
//! Any string value of a configuration that names an existing file or directory is an
//! input (built-in preset names excepted). Its SHA-256 goes into the run record and into
//! the plan's fingerprint, so that a run never resumes onto results made from other
//! inputs: editing `g_max_s` in a preset file, or replacing a weights file, makes the
//! directory's results stale, and the driver refuses them naming the file that changed.

use crate::device::preset;
use crate::output::results::sha256_of_path;
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::Path;
use toml::Value;

/// Input path -> SHA-256 of its contents.
pub type Fingerprints = BTreeMap<String, String>;

/// Rewrite every relative string value of `tree` that names an existing file or directory
/// when taken relative to `base_dir` (the experiment file's directory) into that path, so
/// that a file's paths mean the same whatever the working directory. Values that name
/// nothing there are left as they are.
pub fn resolve_relative_paths(tree: &mut Value, base_dir: &Path) {
    visit_strings_mut(tree, &mut |s| {
        let path = Path::new(s.as_str());
        if s.is_empty() || path.is_absolute() || is_builtin_name(s) {
            return;
        }
        let joined = base_dir.join(path);
        if joined.exists() {
            *s = joined.to_string_lossy().into_owned();
        }
    });
}

/// SHA-256 of every existing file or directory named by a string value of `trees`.
pub fn fingerprint_inputs<'a>(trees: impl IntoIterator<Item = &'a Value>) -> Result<Fingerprints> {
    let mut names = Vec::new();
    for tree in trees {
        visit_strings(tree, &mut |s| {
            if !s.is_empty() && !is_builtin_name(s) && Path::new(s).exists() {
                names.push(s.to_string());
            }
        });
    }
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let hash = sha256_of_path(Path::new(&name))?;
            Ok((name, hash))
        })
        .collect()
}

/// The first input whose contents (or presence) differ between two fingerprint sets, as a
/// sentence naming the file, or `None` when both name the same contents.
pub fn changed_input(before: &Fingerprints, now: &Fingerprints) -> Option<String> {
    for (path, hash) in before {
        match now.get(path) {
            Some(h) if h == hash => {}
            Some(h) => {
                return Some(format!(
                    "the input file {path} has changed since (SHA-256 {} then, {} now)",
                    short(hash),
                    short(h)
                ));
            }
            None => {
                return Some(format!(
                    "the input {path} is no longer read or no longer exists"
                ));
            }
        }
    }
    now.keys()
        .find(|p| !before.contains_key(*p))
        .map(|p| format!("the input {p} was not read by the earlier run"))
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

/// Names that select something built in, never a file: device presets and the embedded
/// data sets.
fn is_builtin_name(s: &str) -> bool {
    preset::builtin_names().contains(&s) || crate::data::EMBEDDED.contains(&s)
}

fn visit_strings(tree: &Value, f: &mut dyn FnMut(&str)) {
    match tree {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter().for_each(|v| visit_strings(v, f)),
        Value::Table(t) => t.values().for_each(|v| visit_strings(v, f)),
        _ => {}
    }
}

fn visit_strings_mut(tree: &mut Value, f: &mut dyn FnMut(&mut String)) {
    match tree {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter_mut().for_each(|v| visit_strings_mut(v, f)),
        Value::Table(t) => t.iter_mut().for_each(|(_, v)| visit_strings_mut(v, f)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_resolve_against_the_file_directory_and_contents_are_fingerprinted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("mine.toml"), "g = 1").unwrap();
        let mut tree: Value =
            toml::from_str("[h]\ndevice = \"mine.toml\"\nother = \"ideal\"\nx = \"nothing\"\n")
                .unwrap();
        resolve_relative_paths(&mut tree, dir.path());
        let device = tree["h"]["device"].as_str().unwrap().to_string();
        assert_eq!(Path::new(&device), dir.path().join("mine.toml"));
        assert_eq!(tree["h"]["other"].as_str(), Some("ideal"));
        assert_eq!(tree["h"]["x"].as_str(), Some("nothing"));
        let before = fingerprint_inputs([&tree]).unwrap();
        assert_eq!(before.len(), 1);
        std::fs::write(dir.path().join("mine.toml"), "g = 2").unwrap();
        let now = fingerprint_inputs([&tree]).unwrap();
        let msg = changed_input(&before, &now).unwrap();
        assert!(
            msg.contains("mine.toml") && msg.contains("changed"),
            "{msg}"
        );
        assert_eq!(changed_input(&now, &now), None);
    }
}
