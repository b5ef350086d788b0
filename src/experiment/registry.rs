//! The registry entry of an experiment kind and the dispatch of an experiment file.
//!
//! The kind traits ([`super::kinds`]) have associated types and constants, so they are not
//! object-safe; [`Entry::sweep`] and [`Entry::study`] instead capture the monomorphised
//! driver of a kind as a plain function pointer. The registry is therefore one `const`
//! slice (`crate::studies::KINDS`), adding a kind is one line there, and dispatch,
//! `xbar run --help` and the unknown-kind error all read that slice.

use super::config::{self, Overrides};
use super::kinds::{Action, StudyKind, SweepKind};
use anyhow::{Context, Result, bail};
use std::path::Path;

/// The driver of a kind: the parsed file, the directory its relative paths are taken from
/// (`None`: the working directory), the command-line overrides and the action.
pub type Driver = fn(toml::Table, Option<&Path>, &Overrides, &Action) -> Result<()>;

/// One entry of the registry.
pub struct Entry {
    /// The `experiment.kind` value.
    pub name: &'static str,
    /// One line: what the kind does.
    pub description: &'static str,
    /// Whether the kind is a study (no `[[sweep]]` grid, no shards).
    pub study: bool,
    /// Parses the file into the kind's configuration and checks or runs it.
    pub driver: Driver,
}

impl Entry {
    /// The entry of a sweep kind.
    pub const fn sweep<K: SweepKind>() -> Entry {
        Entry {
            name: K::NAME,
            description: K::DESCRIPTION,
            study: false,
            driver: config::drive_sweep::<K>,
        }
    }

    /// The entry of a study kind.
    pub const fn study<K: StudyKind>() -> Entry {
        Entry {
            name: K::NAME,
            description: K::DESCRIPTION,
            study: true,
            driver: super::study::drive_study::<K>,
        }
    }
}

/// The kind called `name` in the registry `kinds`, or an error listing the kinds there are.
pub fn find<'a>(kinds: &'a [Entry], name: &str) -> Result<&'a Entry> {
    match kinds.iter().find(|k| k.name == name) {
        Some(kind) => Ok(kind),
        None => bail!(
            "experiment.kind = '{name}' is not a kind xbar knows; the kinds are:\n{}",
            help_lines(kinds)
        ),
    }
}

/// One line per kind of the registry `kinds`, `  name: description`.
pub fn help_lines(kinds: &[Entry]) -> String {
    kinds
        .iter()
        .map(|k| format!("  {}: {}", k.name, k.description))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Read the experiment file at `path` once, look its kind up in `kinds` and check or run
/// it; relative paths in the file are taken relative to its directory. Errors name the file.
pub fn dispatch(
    kinds: &[Entry],
    path: &Path,
    overrides: &Overrides,
    action: &Action,
) -> Result<()> {
    let table = config::read_table(path)?;
    let in_file = || format!("experiment file {}", path.display());
    let kind =
        find(kinds, &config::kind_name(&table).with_context(in_file)?).with_context(in_file)?;
    if let (true, Action::Run(opts)) = (kind.study, action)
        && opts.shard.is_some()
    {
        bail!("--shard: this experiment is a single study, it has no sweep points to share");
    }
    let dir = path.parent().unwrap_or(Path::new(""));
    (kind.driver)(table, Some(dir), overrides, action).with_context(in_file)
}
