//! What an experiment kind is: the [`Kind`] trait (name, help line, typed configuration)
//! and the two ways a kind runs — [`SweepKind`], jobs over the `[[sweep]]` grid and
//! repeats, and [`StudyKind`], one driver with its own internal sweep and figures. The
//! registry of kinds is [`super::registry`].
//!
//! A kind's configuration is a serde type (`Kind::Config`: every field has a default,
//! unknown keys are rejected), so a file's sections are parsed into it once and a typo is
//! an error naming its key.

use super::run::{JobKind, RunOptions};
use super::table::ResultsTable;
use super::tree;
use anyhow::Result;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::Path;
use toml::Value;

/// What every experiment kind has.
pub trait Kind: 'static {
    /// The `experiment.kind` value.
    const NAME: &'static str;
    /// One line: what the kind does (for `xbar run --help` and the unknown-kind error).
    const DESCRIPTION: &'static str;
    /// The kind's configuration: every field has a default, unknown keys are errors.
    type Config: Serialize + DeserializeOwned + Default;

    /// The configuration from the kind's sections as written (`what` names them in
    /// errors). The default is plain serde; a kind overrides it to fill nested defaults
    /// that serde cannot express.
    fn config(sections: Value, what: &str) -> Result<Self::Config> {
        tree::typed(sections, what)
    }
}

/// A kind whose jobs run over the `[[sweep]]` grid and repeats. Its configuration is every
/// section of the file but `[experiment]`, `[[sweep]]` and `[[plot]]`.
pub trait SweepKind: Kind + JobKind + Default {
    /// The metrics each job returns for a point with configuration `config`, in order (the
    /// metric columns of `results.csv`); every point of a plan must have the same ones.
    fn metrics(config: &Self::Config) -> Vec<String>;
}

/// A kind run by one driver that sweeps internally and draws its own figures. Its
/// configuration is the one section named after the kind.
pub trait StudyKind: Kind {
    /// Every number of the study (written as `report.json`).
    type Report: Serialize;
    /// Set the driver's seed (the experiment seed) in the configuration.
    fn set_seed(config: &mut Self::Config, seed: u64);
    /// Run the study.
    fn run(config: &Self::Config) -> Result<Self::Report>;
    /// The rows of `results.csv` and how `summary.csv` groups them.
    fn results(report: &Self::Report) -> Result<StudyResults>;
    /// Draw the figures into `dir`.
    fn figures(report: &Self::Report, dir: &Path) -> Result<()>;
}

/// A study's result table: one row per internal point (or repeat, or device) with the
/// columns a researcher plots; `summary.csv` gives the mean, std, 95 % CI and n of every
/// `metrics` column per distinct value of the `group` columns (as for a sweep's points).
#[derive(Clone, Debug, PartialEq)]
pub struct StudyResults {
    /// The rows (written as `results.csv`).
    pub table: ResultsTable,
    /// The columns that identify a group of rows in `summary.csv`.
    pub group: Vec<String>,
    /// The numeric columns summarised per group.
    pub metrics: Vec<String>,
}

/// What to do with an experiment file.
#[derive(Clone, Debug)]
pub enum Action {
    /// Parse and validate the configuration (every sweep point) without running.
    Check,
    /// Run it, writing into the options' output directory.
    Run(RunOptions),
}
