//! Experiment files: parsing, defaults, `--set` overrides and validation, producing the
//! [`Plan`] that the driver runs.
//!
//! An experiment file has an `[experiment]` section (name, kind, seed, repeats), the
//! sections of its kind (e.g. `[data]`, `[network]`, `[train]`, `[hardware]`), optional
//! `[[sweep]]` axes and optional `[[plot]]` figures. Unknown keys, values of the wrong
//! type and out-of-range values are errors that name the key.

use super::inputs::{self, Fingerprints};
use super::kinds::{Action, Kind, SweepKind};
use super::run::Plan;
use super::sweep::Axis;
use super::table::{EPOCH, PlotSpec, epoch_metric};
use super::tree;
pub use super::tree::{to_value, typed};
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

/// Read and parse an experiment file (a UTF-8 byte-order mark is ignored); errors name the
/// file.
pub fn read_table(path: &Path) -> Result<toml::Table> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the experiment file {}", path.display()))?;
    toml::from_str(crate::output::results::strip_bom(&text))
        .with_context(|| format!("experiment file {}: malformed TOML", path.display()))
}

/// The `experiment.kind` of a parsed experiment file (`inference` when not given).
pub fn kind_name(table: &toml::Table) -> Result<String> {
    match table.get("experiment").and_then(|e| e.get("kind")) {
        None => Ok(default_kind()),
        Some(Value::String(k)) => Ok(k.clone()),
        Some(other) => bail!("experiment.kind must be a string, got {other}"),
    }
}

/// Build the plan of a sweep kind `K` from its parsed experiment file, whose relative
/// paths are taken relative to `file_dir` (when given; otherwise relative to the working
/// directory).
pub fn plan_from_table<K: SweepKind>(
    mut table: toml::Table,
    overrides: &Overrides,
    file_dir: Option<&Path>,
) -> Result<Plan> {
    let experiment = table
        .remove("experiment")
        .context("missing the [experiment] section (name, kind, seed, repeats)")?;
    let mut axes: Vec<Axis> = take_array(&mut table, "sweep")?;
    for (i, axis) in axes.iter().enumerate() {
        axis.validate(i)?;
    }
    check_distinct_sweep_paths(&axes)?;
    let swept: Vec<String> = axes.iter().flat_map(Axis::all_paths).collect();
    if let Some((path, _)) = overrides.sets.iter().find(|(p, _)| swept.contains(p)) {
        bail!(
            "--set {path}: this path is swept by a [[sweep]] axis of the file, whose values would override it"
        );
    }
    let plots: Vec<PlotSpec> = take_array(&mut table, "plot")?;
    let mut section: ExperimentSection = typed(experiment, "experiment")?;
    let mut body = Value::Table(table);
    if let Some(dir) = file_dir {
        inputs::resolve_relative_paths(&mut body, dir);
        for axis in &mut axes {
            axis.values
                .iter_mut()
                .for_each(|v| inputs::resolve_relative_paths(v, dir));
        }
    }
    let mut base = complete::<K>(body)?;
    let mut whole = Value::Table(toml::Table::from_iter([(
        "experiment".to_string(),
        to_value(&section)?,
    )]));
    let mut seed = overrides.seed;
    for (path, value) in &overrides.sets {
        if path == "experiment.seed" {
            seed = Some(seed_value(value)?);
        } else if path.starts_with("experiment.") {
            tree::set(&mut whole, path, value.clone()).with_context(|| format!("--set {path}"))?;
        } else if DRIVER_SECTIONS
            .iter()
            .any(|s| path.split('.').next() == Some(s))
        {
            bail!("--set {path}: sweeps and plots are set in the experiment file, not with --set");
        } else {
            base = set_and_complete::<K>(base, path, value)
                .with_context(|| format!("--set {path}"))?;
        }
    }
    section = typed(whole["experiment"].clone(), "experiment")?;
    if let Some(seed) = overrides.seed.or(seed) {
        section.seed = seed;
    }
    if section.repeats == 0 {
        bail!("experiment.repeats must be at least 1");
    }
    let metrics = K::metrics(&K::config(base.clone(), "the experiment's sections")?);
    let mut plan = Plan {
        name: section.name.clone(),
        base,
        axes,
        seed: section.seed,
        repeats: section.repeats,
        metrics,
        plots,
        inputs: Fingerprints::new(),
    };
    let configs = plan
        .points()
        .iter()
        .map(|p| p.apply(&plan.base))
        .collect::<Result<Vec<_>>>()?;
    for (point, c) in plan.points().iter().zip(&configs) {
        let metrics = K::metrics(&K::config(c.clone(), "the experiment's sections")?);
        if metrics != plan.metrics {
            bail!(
                "{} has other metrics than the base configuration ({} instead of {}): a swept \
                 value changes what a job measures (e.g. rule.epochs and the per-epoch \
                 metrics); sweep it in separate experiment files",
                super::run::point_context(&plan, point),
                metrics.join(", "),
                plan.metrics.join(", ")
            );
        }
    }
    check_plots(&plan)?;
    plan.inputs = inputs::fingerprint_inputs(&configs)?;
    Ok(plan)
}

/// The driver of a sweep kind `K` (see [`super::registry::Driver`]): build the plan, then
/// validate every point ([`Action::Check`]) or run it.
pub fn drive_sweep<K: SweepKind>(
    table: toml::Table,
    file_dir: Option<&Path>,
    overrides: &Overrides,
    action: &Action,
) -> Result<()> {
    let plan = plan_from_table::<K>(table, overrides, file_dir)?;
    let kind = K::default();
    match action {
        Action::Check => {
            for point in plan.points() {
                let c = point.apply(&plan.base)?;
                kind.validate(&c)
                    .with_context(|| super::run::point_context(&plan, &point))?;
            }
            Ok(())
        }
        Action::Run(opts) => {
            super::run::execute(&plan, &kind, opts)?;
            for spec in &plan.plots {
                let png = crate::output::plot::figure_path(&opts.out.join(&spec.name), "png");
                if png.exists() {
                    println!("plot: {}", png.display());
                }
            }
            Ok(())
        }
    }
}

/// The kind's sections completed with every default, as a tree.
fn complete<K: Kind>(body: Value) -> Result<Value> {
    to_value(&K::config(body, "the experiment's sections")?)
}

/// Apply one `--set` to the completed configuration and complete it again. Setting a
/// string key of a tagged table to another variant (e.g. `...adc.range.mode=calibrated`)
/// drops the keys of the old variant, so that the new one gets its defaults.
fn set_and_complete<K: Kind>(base: Value, path: &str, value: &Value) -> Result<Value> {
    let mut changed = base.clone();
    tree::set(&mut changed, path, value.clone())?;
    let error = match complete::<K>(changed) {
        Ok(done) => return Ok(done),
        Err(e) => e,
    };
    let switches_variant = value.is_str() && tree::get(&base, path).is_some_and(Value::is_str);
    if switches_variant {
        let mut switched = base;
        tree::set_section_to_leaf(&mut switched, path, value.clone())?;
        if let Ok(done) = complete::<K>(switched) {
            return Ok(done);
        }
    }
    Err(error)
}

/// The master seed from `--set experiment.seed=S` (any whole number from 0 to 2^64 - 1;
/// TOML integers stop at 2^63 - 1, so larger ones arrive as text).
fn seed_value(value: &Value) -> Result<u64> {
    let parsed = match value {
        Value::Integer(i) => u64::try_from(*i).ok(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    parsed.with_context(|| {
        format!(
            "--set experiment.seed={value}: the seed must be a whole number from 0 to {}",
            u64::MAX
        )
    })
}

/// A configuration path may be swept by one axis only: two axes on one path would label
/// every point with both values while simulating only the last one.
fn check_distinct_sweep_paths(axes: &[Axis]) -> Result<()> {
    let mut seen: Vec<(String, usize)> = Vec::new();
    for (i, axis) in axes.iter().enumerate() {
        for path in axis.all_paths() {
            if let Some((_, first)) = seen.iter().find(|(p, _)| *p == path) {
                if *first == i {
                    bail!(
                        "[[sweep]] entry {}: the path '{path}' is listed twice in `paths`",
                        i + 1
                    );
                }
                bail!(
                    "[[sweep]] entries {} and {} both sweep '{path}': a path can be swept by one \
                     axis only (merge their values into one entry, or use `paths` to change \
                     several paths together)",
                    first + 1,
                    i + 1
                );
            }
            seen.push((path, i));
        }
    }
    Ok(())
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

fn check_plots(plan: &Plan) -> Result<()> {
    let paths = plan.axis_paths();
    for spec in &plan.plots {
        let what = format!("[[plot]] '{}'", spec.name);
        check_file_stem(&spec.name).with_context(|| format!("{what}: name"))?;
        let over_epochs = spec.x == EPOCH && !paths.iter().any(|p| p == EPOCH);
        if over_epochs && !plan.metrics.contains(&epoch_metric(&spec.y, 1)) {
            bail!(
                "{what}: x = '{EPOCH}' draws the per-epoch metrics of y, but this experiment has \
                 no metric '{}'; its metrics are: {}",
                epoch_metric(&spec.y, 1),
                plan.metrics.join(", ")
            );
        }
        let x = (!over_epochs).then_some(&spec.x);
        for (role, col) in [
            ("x", x),
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
        check_x_values(plan, spec).with_context(|| what.clone())?;
    }
    Ok(())
}

/// The x axis needs numbers (booleans count as 0/1), positive ones on a log axis.
fn check_x_values(plan: &Plan, spec: &PlotSpec) -> Result<()> {
    for point in plan.points() {
        for (path, value) in point.assignments.iter().filter(|(p, _)| *p == spec.x) {
            match tree::value_number(value) {
                None => bail!(
                    "x = '{path}' takes the value {value}, not a number: draw it as `series` \
                     or `panel` instead, with a numeric sweep path on x"
                ),
                Some(x) if spec.log_x && x <= 0.0 => bail!(
                    "x = '{path}' takes the value {x} on a logarithmic axis (log_x = true): \
                     use positive values or log_x = false"
                ),
                Some(_) => {}
            }
        }
    }
    Ok(())
}

/// A plot name is a file name inside the output directory: no path separator, not hidden,
/// not empty.
fn check_file_stem(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.starts_with('.')
        || name.contains(['/', '\\', ':'])
        || name.chars().any(char::is_control);
    if bad {
        bail!(
            "'{name}' is not a plain file name: plots are written inside the output directory, \
             so use letters, digits, '-', '_' and '.' without path separators (e.g. accuracy_vs_time)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plot_names_with_path_separators_are_refused() {
        for bad in ["../../escaped", "a/b", "", ".hidden", "c:\\x"] {
            assert!(check_file_stem(bad).is_err(), "{bad}");
        }
        check_file_stem("accuracy_vs_time.v2").unwrap();
    }

    #[test]
    fn large_seeds_are_accepted_as_text() {
        assert_eq!(
            seed_value(&Value::String("18446744073709551615".into())).unwrap(),
            u64::MAX
        );
        assert!(seed_value(&Value::Integer(-1)).is_err());
    }
}
