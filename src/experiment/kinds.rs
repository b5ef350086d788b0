//! What an experiment kind is: the [`ExperimentKind`] trait of sweep kinds, the driver of a
//! study, and [`Kind`], one entry of the registry (`crate::studies::KINDS`, the one list of
//! kinds that dispatch, `xbar run --help` and the unknown-kind error read).
//!
//! A sweep kind owns the configuration sections of its experiments (completing them with
//! defaults and rejecting unknown keys), names the metrics each job returns, and runs jobs
//! (see [`JobKind`]); the driver runs them over the `[[sweep]]` grid. A study is one driver
//! with its own internal sweep, report and figures.

use super::config::{ExperimentSection, Overrides};
use super::run::JobKind;
use anyhow::{Result, bail};
use std::path::Path;
use toml::Value;

/// A sweep kind.
pub trait ExperimentKind: JobKind {
    /// The metrics each job returns, in order (the columns of `results.csv`).
    fn metrics(&self) -> Vec<String>;
    /// Parse the kind's sections (everything but `[experiment]`, `[[sweep]]` and
    /// `[[plot]]`), fill in every default and return them as a tree; unknown sections or
    /// keys and out-of-range values are errors naming the key.
    fn complete(&self, body: Value) -> Result<Value>;
}

/// A study's driver: called with the `[experiment]` section, the kind's own section, the
/// command-line overrides and the output directory (`None`: only check the configuration).
pub type StudyDriver = fn(&ExperimentSection, Value, &Overrides, Option<&Path>) -> Result<()>;

/// How a kind runs.
#[derive(Clone, Copy)]
pub enum Runner {
    /// Jobs over the `[[sweep]]` grid and repeats, by the experiment driver.
    Sweep(fn() -> Box<dyn ExperimentKind>),
    /// One study driver.
    Study(StudyDriver),
}

/// One entry of the registry.
pub struct Kind {
    /// The `experiment.kind` value.
    pub name: &'static str,
    /// One line: what the kind does.
    pub description: &'static str,
    /// How it runs.
    pub runner: Runner,
}

impl Kind {
    /// Whether the kind is a study (no `[[sweep]]` grid, no shards).
    pub fn is_study(&self) -> bool {
        matches!(self.runner, Runner::Study(_))
    }
}

/// The kind called `name` in the registry `kinds`, or an error listing the kinds there are.
pub fn find(kinds: &'static [Kind], name: &str) -> Result<&'static Kind> {
    match kinds.iter().find(|k| k.name == name) {
        Some(kind) => Ok(kind),
        None => bail!(
            "experiment.kind = '{name}' is not a kind xbar knows; the kinds are:\n{}",
            help_lines(kinds)
        ),
    }
}

/// One line per kind of the registry `kinds`, `  name: description`.
pub fn help_lines(kinds: &[Kind]) -> String {
    kinds
        .iter()
        .map(|k| format!("  {}: {}", k.name, k.description))
        .collect::<Vec<_>>()
        .join("\n")
}
