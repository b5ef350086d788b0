//! The driver of study kinds ([`StudyKind`]): experiments whose driver carries its own
//! internal sweep and draws its own figures.
//!
//! File format: the `[experiment]` section (name, kind, seed) and one section named after
//! the kind holding the driver's configuration (every field has a default; unknown keys
//! are errors). The experiment seed is the driver's seed; `--set KIND.KEY=VALUE` changes
//! one setting. Output, written once the study has finished: `results.csv` (one row per
//! internal point), `summary.csv` (mean, std, 95 % CI and n per group of rows, as for
//! sweeps), `report.json` (every number of the study), the figures (PNG + SVG) and
//! `run.json` (resolved configuration, seed, version, timings, input fingerprints).

use super::config::{ExperimentSection, Overrides, to_value, typed};
use super::inputs;
use super::kinds::{Action, StudyKind};
use super::table::summarize;
use super::tree;
use crate::output::results::{self, OutputDir, RunRecord, Timer};
use crate::output::results::{REPORT_JSON, RESULTS_CSV, RUN_JSON, SUMMARY_CSV};
use anyhow::{Context, Result, bail};
use std::path::Path;
use toml::Value;

/// The driver of study kind `K` (see [`super::registry::Driver`]): complete the
/// configuration, apply `--set`, and (for [`Action::Run`]) run the study and write its
/// results, report, figures and run record.
pub fn drive_study<K: StudyKind>(
    mut table: toml::Table,
    file_dir: Option<&Path>,
    overrides: &Overrides,
    action: &Action,
) -> Result<()> {
    let kind = K::NAME;
    let mut section: ExperimentSection = typed(
        table
            .remove("experiment")
            .context("missing the [experiment] section")?,
        "experiment",
    )?;
    if let Some(seed) = overrides.seed {
        section.seed = seed;
    }
    if let Some(other) = table.keys().find(|k| **k != kind) {
        bail!("[{other}]: a {kind} study has only the [experiment] and [{kind}] sections");
    }
    let mut body = table
        .remove(kind)
        .unwrap_or_else(|| Value::Table(toml::Table::new()));
    if let Some(dir) = file_dir {
        inputs::resolve_relative_paths(&mut body, dir);
    }
    let mut config = K::config(body, &format!("[{kind}]"))?;
    let mut tree_value = to_value(&config)?;
    for (path, value) in &overrides.sets {
        let Some(inner) = path.strip_prefix(&format!("{kind}.")) else {
            bail!(
                "--set {path}: a {kind} study's settings are under '{kind}.' (e.g. {kind}.KEY=VALUE)"
            );
        };
        tree::set(&mut tree_value, inner, value.clone())
            .with_context(|| format!("--set {path}"))?;
        config = K::config(tree_value.clone(), &format!("--set {path}"))?;
    }
    K::set_seed(&mut config, section.seed);
    let Action::Run(opts) = action else {
        return Ok(());
    };
    let out = opts.out.as_path();
    let config_json = serde_json::json!({ "experiment": section, kind: &config });
    let inputs = inputs::fingerprint_inputs([&to_value(&config)?])?;
    let dir = OutputDir::acquire(out)?;
    if results::holds_this_run(out, RESULTS_CSV, &config_json, &inputs)? {
        println!(
            "{} already holds this study's finished results (same configuration, seed and \
             inputs): nothing to do",
            out.display()
        );
        return Ok(());
    }
    let mut timer = Timer::start();
    let report = timer
        .time("study", || K::run(&config))
        .with_context(|| format!("{kind} study '{}'", section.name));
    let (report, rows) = match report.and_then(|r| Ok((K::results(&r)?, r))) {
        Ok((rows, report)) => (report, rows),
        Err(e) => {
            dir.abandon(&[]);
            return Err(e);
        }
    };
    let summary = summarize(&rows.table, &rows.group, &rows.metrics)
        .context("summarising the study's results")?;
    timer.time("figures", || K::figures(&report, out))?;
    rows.table.to_table()?.write(&out.join(RESULTS_CSV))?;
    summary.to_table()?.write(&out.join(SUMMARY_CSV))?;
    results::write_json(&out.join(REPORT_JSON), &report)?;
    let mut record = RunRecord::new("run", config_json, section.seed);
    record.inputs = inputs;
    record.timings_s = timer.seconds();
    record.outputs = output_files(out)?;
    results::write_json(&out.join(RUN_JSON), &record)
}

/// The files of the output directory, sorted, plus `run.json`.
fn output_files(out: &Path) -> Result<Vec<String>> {
    let mut files: Vec<String> = std::fs::read_dir(out)
        .with_context(|| format!("listing {}", out.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.'))
        .collect();
    files.push(RUN_JSON.to_string());
    files.sort();
    files.dedup();
    Ok(files)
}
