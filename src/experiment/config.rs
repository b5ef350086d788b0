//! Experiment files: parsing, defaults, `--set` overrides and validation, producing the
//! [`Plan`] that the driver runs.
//!
//! An experiment file has an `[experiment]` section (name, kind, seed, repeats), the
//! sections of its kind (e.g. `[data]`, `[network]`, `[train]`, `[hardware]`), optional
//! `[[sweep]]` axes and optional `[[plot]]` figures. Unknown keys, values of the wrong
//! type and out-of-range values are errors that name the key.

use super::kinds::{self, ExperimentKind};
use super::run::Plan;
use super::sweep::Axis;
use super::table::PlotSpec;
use super::tree;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::path::Path;
use toml::Value;

/// The `[experiment]` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentSection {
    /// Short name, used in titles and messages.
    pub name: String,
    /// One-line description of what the experiment shows.
    #[serde(default)]
    pub description: String,
    /// What the experiment does (e.g. `inference`); see `xbar run --help` for the list.
    #[serde(default = "default_kind")]
    pub kind: String,
    /// Master seed of every random stream.
    #[serde(default)]
    pub seed: u64,
    /// Repeats of each sweep point, each with its own random streams.
    #[serde(default = "default_repeats")]
    pub repeats: u32,
}

fn default_kind() -> String {
    "inference".to_string()
}

fn default_repeats() -> u32 {
    1
}

/// Sections handled by the driver itself rather than by the experiment kind.
const DRIVER_SECTIONS: [&str; 3] = ["experiment", "sweep", "plot"];

/// Overrides given on the command line.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--set PATH=VALUE` assignments, in order.
    pub sets: Vec<(String, Value)>,
    /// `--seed S`.
    pub seed: Option<u64>,
}

/// The `experiment.kind` of an experiment file (`inference` when not given).
pub fn file_kind(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the experiment file {}", path.display()))?;
    let table: toml::Table = toml::from_str(&text)
        .with_context(|| format!("experiment file {}: malformed TOML", path.display()))?;
    match table.get("experiment").and_then(|e| e.get("kind")) {
        None => Ok(default_kind()),
        Some(Value::String(k)) => Ok(k.clone()),
        Some(other) => bail!(
            "experiment file {}: experiment.kind must be a string, got {other}",
            path.display()
        ),
    }
}

/// Read an experiment file and build its plan and kind.
pub fn load(path: &Path, overrides: &Overrides) -> Result<(Plan, Box<dyn ExperimentKind>)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the experiment file {}", path.display()))?;
    parse(&text, overrides).with_context(|| format!("experiment file {}", path.display()))
}

/// Build a plan from the text of an experiment file.
pub fn parse(text: &str, overrides: &Overrides) -> Result<(Plan, Box<dyn ExperimentKind>)> {
    let mut table: toml::Table = toml::from_str(text).context("malformed TOML")?;
    let experiment = table
        .remove("experiment")
        .context("missing the [experiment] section (name, kind, seed, repeats)")?;
    let axes: Vec<Axis> = take_array(&mut table, "sweep")?;
    let swept: Vec<String> = axes.iter().flat_map(Axis::all_paths).collect();
    if let Some((path, _)) = overrides.sets.iter().find(|(p, _)| swept.contains(p)) {
        bail!(
            "--set {path}: this path is swept by a [[sweep]] axis of the file, whose values would override it"
        );
    }
    let plots: Vec<PlotSpec> = take_array(&mut table, "plot")?;
    let mut section: ExperimentSection = typed(experiment, "experiment")?;
    let kind = kinds::by_name(&section.kind)?;
    let mut base = kind.complete(Value::Table(table))?;
    let mut whole = Value::Table(toml::Table::from_iter([(
        "experiment".to_string(),
        to_value(&section)?,
    )]));
    for (path, value) in &overrides.sets {
        if path.starts_with("experiment.") {
            tree::set(&mut whole, path, value.clone()).with_context(|| format!("--set {path}"))?;
        } else if DRIVER_SECTIONS
            .iter()
            .any(|s| path.split('.').next() == Some(s))
        {
            bail!("--set {path}: sweeps and plots are set in the experiment file, not with --set");
        } else {
            tree::set(&mut base, path, value.clone()).with_context(|| format!("--set {path}"))?;
            base = kind
                .complete(base)
                .with_context(|| format!("--set {path}"))?;
        }
    }
    section = typed(whole["experiment"].clone(), "experiment")?;
    if let Some(seed) = overrides.seed {
        section.seed = seed;
    }
    if section.repeats == 0 {
        bail!("experiment.repeats must be at least 1");
    }
    for (i, axis) in axes.iter().enumerate() {
        axis.validate(i)?;
    }
    let plan = Plan {
        name: section.name.clone(),
        base,
        axes,
        seed: section.seed,
        repeats: section.repeats,
        metrics: kind.metrics(),
        plots,
    };
    check_plots(&plan)?;
    Ok((plan, kind))
}

fn take_array<T: serde::de::DeserializeOwned>(
    table: &mut toml::Table,
    key: &str,
) -> Result<Vec<T>> {
    match table.remove(key) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| typed(item, &format!("[[{key}]] entry {}", i + 1)))
            .collect(),
        Some(_) => bail!("'{key}' must be an array of tables, written [[{key}]]"),
    }
}

/// Deserialise a TOML value into a typed section; errors name the section.
pub fn typed<T: serde::de::DeserializeOwned>(value: Value, what: &str) -> Result<T> {
    value
        .try_into()
        .map_err(|e: toml::de::Error| anyhow::anyhow!("in {what}: {}", e.message()))
}

/// Serialise a typed section back into a TOML value.
pub fn to_value<T: Serialize>(section: &T) -> Result<Value> {
    Value::try_from(section).context("serialising the configuration")
}

fn check_plots(plan: &Plan) -> Result<()> {
    let paths = plan.axis_paths();
    for spec in &plan.plots {
        let what = format!("[[plot]] '{}'", spec.name);
        for (role, col) in [
            ("x", Some(&spec.x)),
            ("series", spec.series.as_ref()),
            ("panel", spec.panel.as_ref()),
        ] {
            if let Some(col) = col
                && !paths.contains(col)
            {
                bail!(
                    "{what}: {role} = '{col}' is not a sweep path; the sweep paths are: {}",
                    paths.join(", ")
                );
            }
        }
        if !plan.metrics.contains(&spec.y) {
            bail!(
                "{what}: y = '{}' is not a metric of this experiment; the metrics are: {}",
                spec.y,
                plan.metrics.join(", ")
            );
        }
    }
    Ok(())
}
