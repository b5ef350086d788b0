//! The files an experiment reads besides its experiment file — device preset files, data
//! directories, imported weights — found in its configuration, resolved against the
//! experiment file's directory, and fingerprinted by content.
//!
//! A string value of a configuration that names an existing file or directory is an input
//! when it can be a path: it contains a path separator or a dot, or it is the value of a
//! key that takes a path ([`PATH_KEYS`]: a data directory, a device preset file, a weights
//! file). Built-in preset and data-set names are never inputs, and neither are bare words
//! under other keys (`rule.kind = "sgd"` stays "sgd" even beside a directory `sgd/`). Its SHA-256 goes into the run record and into
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

/// Keys whose values are paths even as bare words (`data.source = "cifar-10-batches-bin"`).
pub const PATH_KEYS: [&str; 3] = ["source", "device", "weights"];

/// Whether the string value `s` of key `key` may name a file or directory: not a built-in
/// name, and a path by its form or by its key.
fn may_be_path(key: &str, s: &str) -> bool {
    let shaped = s.contains('/') || s.contains(std::path::MAIN_SEPARATOR) || s.contains('.');
    !s.is_empty() && !is_builtin_name(s) && (shaped || PATH_KEYS.contains(&key))
}

/// Rewrite every relative string value of `tree` that names an existing file or directory
/// when taken relative to `base_dir` (the experiment file's directory) into that path, so
/// that a file's paths mean the same whatever the working directory. Values that name
/// nothing there are left as they are.
pub fn resolve_relative_paths(tree: &mut Value, base_dir: &Path) {
    visit_strings_mut(tree, "", &mut |key, s| {
        let path = Path::new(s.as_str());
        if !may_be_path(key, s) || path.is_absolute() {
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
        visit_strings(tree, "", &mut |key, s| {
            if may_be_path(key, s) && Path::new(s).exists() {
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

/// Call `f(key, value)` for every string of `tree`, `key` the name of the table entry that
/// holds it (or holds the array that holds it).
fn visit_strings(tree: &Value, key: &str, f: &mut dyn FnMut(&str, &str)) {
    match tree {
        Value::String(s) => f(key, s),
        Value::Array(items) => items.iter().for_each(|v| visit_strings(v, key, f)),
        Value::Table(t) => t.iter().for_each(|(k, v)| visit_strings(v, k, f)),
        _ => {}
    }
}

/// [`visit_strings`] with the strings mutable.
fn visit_strings_mut(tree: &mut Value, key: &str, f: &mut dyn FnMut(&str, &mut String)) {
    match tree {
        Value::String(s) => f(key, s),
        Value::Array(items) => items.iter_mut().for_each(|v| visit_strings_mut(v, key, f)),
        Value::Table(t) => t.iter_mut().for_each(|(k, v)| visit_strings_mut(v, k, f)),
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
        std::fs::create_dir(dir.path().join("sgd")).unwrap();
        std::fs::create_dir(dir.path().join("cifar")).unwrap();
        let mut tree: Value = toml::from_str(
            "[h]\ndevice = \"mine.toml\"\nother = \"ideal\"\nx = \"nothing\"\n\
             kind = \"sgd\"\n[data]\nsource = \"cifar\"\n",
        )
        .unwrap();
        resolve_relative_paths(&mut tree, dir.path());
        // A bare word is a path only under a key that takes one.
        assert_eq!(tree["h"]["kind"].as_str(), Some("sgd"));
        let source = tree["data"]["source"].as_str().unwrap().to_string();
        assert_eq!(Path::new(&source), dir.path().join("cifar"));
        let device = tree["h"]["device"].as_str().unwrap().to_string();
        assert_eq!(Path::new(&device), dir.path().join("mine.toml"));
        assert_eq!(tree["h"]["other"].as_str(), Some("ideal"));
        assert_eq!(tree["h"]["x"].as_str(), Some("nothing"));
        let before = fingerprint_inputs([&tree]).unwrap();
        assert_eq!(before.len(), 2, "{before:?}");
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
