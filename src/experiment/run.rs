//! Running a sweep: every (point, repeat) job in parallel with a progress bar, results
//! rewritten atomically after each finished job so that an interrupted run can be
//! resumed, shards for several machines, and the merge of shards.
//!
//! Output directory layout: `results.csv` (one row per point x repeat, sorted),
//! `summary.csv` (mean, std, 95 % CI and n per point), `run.json` (the plan — resolved
//! configuration, sweep, seed, repeats —, version, threads, timings) and the plots.

use super::inputs::{self, Fingerprints};
use super::sweep::{Axis, Point, Shard};
use super::table::{PlotSpec, ResultsTable, figures, summarize};
use super::tree::value_label;
use crate::output::results::{self, OutputDir, RunRecord, Table, Timer, format_float};
use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use toml::Value;

pub use crate::output::results::{REPORT_JSON, RESULTS_CSV, RUN_JSON, SUMMARY_CSV};

/// Everything that determines an experiment's numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Experiment name.
    pub name: String,
    /// Base configuration with every default filled in (before the sweep is applied).
    pub base: Value,
    /// The sweep axes.
    pub axes: Vec<Axis>,
    /// Master seed.
    pub seed: u64,
    /// Repeats per point (different seeds).
    pub repeats: u32,
    /// Metrics each job returns, in order.
    pub metrics: Vec<String>,
    /// Figures to draw from the results.
    pub plots: Vec<PlotSpec>,
    /// SHA-256 of every input file the points read (preset files, data, weights), by path.
    #[serde(default)]
    pub inputs: Fingerprints,
}

impl Plan {
    /// The grid points of the sweep.
    pub fn points(&self) -> Vec<Point> {
        super::sweep::grid(&self.axes)
    }

    /// The sweep paths, in axis order (the result columns that identify a point).
    pub fn axis_paths(&self) -> Vec<String> {
        self.axes.iter().flat_map(Axis::all_paths).collect()
    }

    /// A fingerprint of everything that determines the numbers (not the plots):
    /// FNV-1a 64 of the canonical JSON of base, axes, seed, repeats, metrics and the
    /// contents of the input files.
    pub fn fingerprint(&self) -> Result<String> {
        let canonical = serde_json::to_string(&(
            &self.base,
            &self.axes,
            self.seed,
            self.repeats,
            &self.metrics,
            &self.inputs,
        ))?;
        let hash = canonical.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        Ok(format!("{hash:016x}"))
    }
}

/// Identifies one job: a repeat at a point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobId {
    /// Point index in the grid.
    pub point: usize,
    /// Repeat index, from 0.
    pub repeat: u32,
    /// The experiment's master seed (derive streams from it with [`crate::rng::stream`]).
    pub seed: u64,
}

/// What an experiment kind does with one point's configuration.
pub trait JobKind: Sync {
    /// Check a point's configuration before anything runs (errors name the key).
    fn validate(&self, point_config: &Value) -> Result<()>;
    /// Work shared by several jobs (e.g. training the network that every hardware point
    /// deploys), done once before the parallel job loop so that jobs never wait on each
    /// other. Receives every job about to run with its point's configuration; shows a
    /// progress bar when `progress` is set.
    fn prepare(&self, _jobs: &[(&Value, JobId)], _progress: bool) -> Result<()> {
        Ok(())
    }
    /// Files the kind writes into the output directory `dir` once the jobs have run (e.g.
    /// the networks `prepare` trained), given the same jobs; returns their paths relative
    /// to `dir`, recorded in `run.json`. A file already there was written by an earlier
    /// invocation of the same run (same fingerprint) and must be left alone.
    fn export(&self, _jobs: &[(&Value, JobId)], _dir: &Path) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
    /// Run one job and return one value per metric of the plan, in order.
    fn run(&self, point_config: &Value, job: JobId) -> Result<Vec<f64>>;
    /// Metrics that may legitimately be infinite (e.g. an error of weights that device
    /// conductances overflowed); every other metric must be finite, and NaN never is.
    fn unbounded_metrics(&self) -> &'static [&'static str] {
        &[]
    }
}

/// How to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Output directory.
    pub out: PathBuf,
    /// Only this shard of the points.
    pub shard: Option<Shard>,
    /// Show a progress bar.
    pub progress: bool,
}

/// One finished job.
#[derive(Clone, Debug, PartialEq)]
struct Row {
    point: usize,
    repeat: u32,
    metrics: Vec<f64>,
}

/// The record written as `run.json`.
#[derive(Debug, Serialize, Deserialize)]
struct RunFile {
    plan: Plan,
    fingerprint: String,
    /// The shard the last run into this directory was asked to do.
    shard: Option<Shard>,
    /// Whether `results.csv` holds every job of the plan.
    complete: bool,
    /// Jobs in `results.csv`.
    jobs_done: usize,
    /// Jobs of the whole plan (every point times every repeat).
    jobs_total: usize,
    /// Why the summary or the figures could not be written, if they could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    figures_error: Option<String>,
    #[serde(flatten)]
    meta: serde_json::Value,
}

/// What a running experiment has saved so far, for the message printed on an interrupt.
static SAVED: Mutex<Option<Saved>> = Mutex::new(None);

#[derive(Clone, Debug)]
struct Saved {
    out: PathBuf,
    done: usize,
    total: usize,
}

fn note_saved(out: &Path, done: usize, total: usize) {
    if let Ok(mut saved) = SAVED.lock() {
        *saved = Some(Saved {
            out: out.to_path_buf(),
            done,
            total,
        });
    }
}

/// The default output directory of an experiment file: `results/<file stem>` (relative to
/// the working directory).
pub fn default_out(file: &Path) -> PathBuf {
    let stem = file
        .file_stem()
        .map_or_else(|| "experiment".into(), |s| s.to_string_lossy().into_owned());
    PathBuf::from("results").join(stem)
}

/// The message for an interrupted run: how many jobs are saved where, and how to resume.
/// `None` when no experiment is running.
pub fn interrupt_message() -> Option<String> {
    let saved = SAVED.lock().ok()?.clone()?;
    Some(format!(
        "interrupted: {} of {} jobs are saved in {}; run the same command again to resume",
        saved.done,
        saved.total,
        saved.out.display()
    ))
}

/// Run (or resume) the plan's jobs and write results, summary, plots and run record.
///
/// The output directory is locked for the run. Results already in it are kept: if they
/// come from the same plan (same configuration, seed, repeats and input contents) the run
/// resumes, doing only the missing jobs of its shard; otherwise it refuses, naming what
/// differs.
pub fn execute(plan: &Plan, kind: &dyn JobKind, opts: &RunOptions) -> Result<()> {
    let mut timer = Timer::start();
    let points = plan.points();
    let configs: Vec<Value> = points
        .iter()
        .map(|p| {
            let c = p.apply(&plan.base)?;
            kind.validate(&c).with_context(|| point_context(plan, p))?;
            Ok(c)
        })
        .collect::<Result<_>>()?;
    let fingerprint = plan.fingerprint()?;
    let dir = OutputDir::acquire(&opts.out)?;
    let previous = previous_rows(&opts.out, &fingerprint, plan)?;
    let owned: Vec<usize> = points
        .iter()
        .map(|p| p.index)
        .filter(|&i| opts.shard.is_none_or(|s| s.owns(i)))
        .collect();
    let todo: Vec<JobId> = owned
        .iter()
        .flat_map(|&point| (0..plan.repeats).map(move |repeat| (point, repeat)))
        .filter(|&(point, repeat)| {
            !previous
                .iter()
                .any(|r| r.point == point && r.repeat == repeat)
        })
        .map(|(point, repeat)| JobId {
            point,
            repeat,
            seed: plan.seed,
        })
        .collect();
    let total = points.len() * plan.repeats as usize;
    announce(plan, opts, owned.len(), todo.len(), previous.len());
    let mut record = RunFile {
        plan: plan.clone(),
        fingerprint,
        shard: opts.shard,
        complete: previous.len() == total,
        jobs_done: previous.len(),
        jobs_total: total,
        figures_error: None,
        meta: run_meta(plan, &timer, Vec::new())?,
    };
    results::write_json(&opts.out.join(RUN_JSON), &record)?;
    note_saved(&opts.out, previous.len(), total);
    let pending: Vec<(&Value, JobId)> = todo.iter().map(|&j| (&configs[j.point], j)).collect();
    let prepared = timer.time("prepare", || kind.prepare(&pending, opts.progress));
    if let Err(e) = prepared {
        if previous.is_empty() && !opts.out.join(RESULTS_CSV).exists() {
            dir.abandon(&[RUN_JSON]);
        }
        return Err(e);
    }
    let had_results = !previous.is_empty();
    let rows = match run_jobs(
        plan, kind, opts, &points, &configs, &todo, previous, &mut timer,
    ) {
        Ok(rows) => rows,
        Err(e) => {
            if !had_results && !opts.out.join(RESULTS_CSV).exists() {
                dir.abandon(&[RUN_JSON]);
            }
            return Err(e);
        }
    };
    let exported = timer
        .time("export", || kind.export(&pending, &opts.out))
        .with_context(|| {
            format!(
                "every job's result is saved in {}, but writing the kind's files (e.g. trained \
                 weights) failed; fix the cause and run the same command again",
                opts.out.join(RESULTS_CSV).display()
            )
        })?;
    record.jobs_done = rows.len();
    record.complete = rows.len() == total;
    record.meta = run_meta(plan, &timer, vec![RESULTS_CSV.into(), RUN_JSON.into()])?;
    results::write_json(&opts.out.join(RUN_JSON), &record)?;
    if rows.is_empty() {
        eprintln!("no job has a result yet: no summary or plot written");
        return Ok(());
    }
    let finished = timer.time("summary and plots", || finish(&opts.out, plan));
    let outputs = match finished {
        Ok(outputs) => outputs.into_iter().chain(exported).collect(),
        Err(e) => {
            record.figures_error = Some(format!("{e:#}"));
            record.meta = run_meta(plan, &timer, vec![RESULTS_CSV.into(), RUN_JSON.into()])?;
            results::write_json(&opts.out.join(RUN_JSON), &record)?;
            return Err(e.context(format!(
                "every job's result is saved in {}, but the summary or plots failed; fix the \
                 cause and run the same command again to redraw them",
                opts.out.join(RESULTS_CSV).display()
            )));
        }
    };
    record.meta = run_meta(plan, &timer, outputs)?;
    results::write_json(&opts.out.join(RUN_JSON), &record)
}

/// Say what this run will do: resume, shard share, empty shard.
fn announce(plan: &Plan, opts: &RunOptions, owned_points: usize, todo: usize, previous: usize) {
    if let (Some(shard), 0) = (opts.shard, owned_points) {
        eprintln!(
            "shard {}/{} owns none of the {} points of '{}': nothing to run",
            shard.index,
            shard.count,
            plan.points().len(),
            plan.name
        );
        return;
    }
    if previous > 0 {
        let mine = owned_points * plan.repeats as usize;
        eprintln!(
            "resuming: {} of {} jobs already done in {} ({} results kept in the directory)",
            mine - todo,
            mine,
            opts.out.display(),
            previous
        );
    }
}

/// Run the jobs in parallel, saving every finished one at once; returns every row of the
/// directory (earlier ones included).
#[allow(clippy::too_many_arguments)]
fn run_jobs(
    plan: &Plan,
    kind: &dyn JobKind,
    opts: &RunOptions,
    points: &[Point],
    configs: &[Value],
    todo: &[JobId],
    previous: Vec<Row>,
    timer: &mut Timer,
) -> Result<Vec<Row>> {
    let total = points.len() * plan.repeats as usize;
    let bar = progress_bar(opts.progress, todo.len(), "jobs");
    let rows = Mutex::new(previous);
    let outcome = timer.time("jobs", || {
        todo.par_iter().try_for_each(|&job| -> Result<()> {
            let context = || {
                format!(
                    "{} (repeat {}, seed {})",
                    point_context(plan, &points[job.point]),
                    job.repeat,
                    job.seed
                )
            };
            let metrics = kind.run(&configs[job.point], job).with_context(context)?;
            check_metrics(plan, kind, &metrics).with_context(context)?;
            let mut rows = rows
                .lock()
                .map_err(|_| anyhow::anyhow!("a worker thread panicked"))?;
            rows.push(Row {
                point: job.point,
                repeat: job.repeat,
                metrics,
            });
            write_results(&opts.out, plan, points, &rows)?;
            note_saved(&opts.out, rows.len(), total);
            bar.inc(1);
            Ok(())
        })
    });
    bar.finish_and_clear();
    let rows = rows
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a worker thread panicked"))?;
    if let Err(e) = outcome {
        let saved = rows.len();
        return Err(e.context(format!(
            "{saved} of {total} jobs are saved in {}; fix the cause and run the same command \
             again to resume",
            opts.out.display()
        )));
    }
    write_results(&opts.out, plan, points, &rows)?;
    Ok(rows)
}

/// Names a point in messages: the experiment, the point index and its swept values.
pub fn point_context(plan: &Plan, p: &Point) -> String {
    if p.assignments.is_empty() {
        return format!("experiment '{}'", plan.name);
    }
    let parts: Vec<String> = p
        .assignments
        .iter()
        .map(|(k, v)| format!("{k} = {}", value_label(v)))
        .collect();
    format!(
        "experiment '{}', point {} ({})",
        plan.name,
        p.index,
        parts.join(", ")
    )
}

/// A collapsed network is a result, not an error: its accuracy is a finite number and an
/// error metric the kind declares unbounded may be infinite (recorded as `inf`). Any other
/// non-finite value, and NaN always, is a defect of the simulation, reported with the
/// point and seed.
fn check_metrics(plan: &Plan, kind: &dyn JobKind, metrics: &[f64]) -> Result<()> {
    if metrics.len() != plan.metrics.len() {
        bail!(
            "a job returned {} metrics, the plan has {}",
            metrics.len(),
            plan.metrics.len()
        );
    }
    let allowed = |name: &str, v: f64| {
        v.is_finite() || (v.is_infinite() && kind.unbounded_metrics().contains(&name))
    };
    if let Some((name, v)) = plan
        .metrics
        .iter()
        .zip(metrics)
        .find(|(name, v)| !allowed(name, **v))
    {
        bail!(
            "metric '{name}' came out as {v}: the simulation produced a non-finite number \
             (a defect: please report it with this experiment file and seed)"
        );
    }
    Ok(())
}

/// A progress bar over `len` steps named `unit` (hidden unless `show`).
pub fn progress_bar(show: bool, len: usize, unit: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    let template =
        format!("{{msg}} {{bar:40}} {{pos}}/{{len}} {unit}  {{elapsed}} elapsed, ETA {{eta}}");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}

/// Rows already in the output directory from an earlier run of the same plan; an error
/// naming the difference if the directory holds results of anything else.
fn previous_rows(out: &Path, fingerprint: &str, plan: &Plan) -> Result<Vec<Row>> {
    let run_json = out.join(RUN_JSON);
    let results_csv = out.join(RESULTS_CSV);
    if out.join(REPORT_JSON).exists() {
        bail!(
            "{} holds the results of a study ({REPORT_JSON}); give this run another --out",
            out.display()
        );
    }
    if !results_csv.exists() {
        return Ok(Vec::new());
    }
    let previous = read_run_file(&run_json).with_context(|| {
        format!(
            "{} holds results but no readable {RUN_JSON}; give this run another --out",
            out.display()
        )
    })?;
    if previous.fingerprint != fingerprint {
        bail!(
            "{} holds results made from other inputs: {}. They are kept; give this run \
             another --out (or move those results away first)",
            out.display(),
            plan_difference(&previous.plan, plan)
        );
    }
    read_rows(&results_csv, plan)
}

/// What differs between the plan of earlier results and this one, in words.
fn plan_difference(before: &Plan, now: &Plan) -> String {
    if before.name != now.name {
        return format!("experiment '{}' there, '{}' now", before.name, now.name);
    }
    if before.seed != now.seed {
        return format!("seed {} there, {} now", before.seed, now.seed);
    }
    if before.repeats != now.repeats {
        return format!("{} repeats there, {} now", before.repeats, now.repeats);
    }
    if before.axes != now.axes {
        return "the [[sweep]] axes differ".to_string();
    }
    if before.metrics != now.metrics {
        return "the metrics differ (results of another xbar version or kind)".to_string();
    }
    match first_difference(&before.base, &now.base, "") {
        Some(path) => format!(
            "the configuration differs at '{path}' ({} there, {} now)",
            show(crate::experiment::tree::get(&before.base, &path)),
            show(crate::experiment::tree::get(&now.base, &path))
        ),
        None => inputs::changed_input(&before.inputs, &now.inputs).unwrap_or_else(|| {
            "the same settings, but recorded by another xbar version (its fingerprint differs)"
                .to_string()
        }),
    }
}

fn show(v: Option<&Value>) -> String {
    v.map_or_else(|| "not set".to_string(), ToString::to_string)
}

/// The dotted path of the first leaf where two configuration trees differ.
fn first_difference(a: &Value, b: &Value, prefix: &str) -> Option<String> {
    match (a, b) {
        (Value::Table(ta), Value::Table(tb)) => {
            let mut keys: Vec<&String> = ta.keys().chain(tb.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match (ta.get(k), tb.get(k)) {
                    (Some(x), Some(y)) => first_difference(x, y, &path),
                    _ => Some(path),
                }
            })
        }
        _ if a == b => None,
        _ => Some(prefix.to_string()),
    }
}

fn read_run_file(path: &Path) -> Result<RunFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not an xbar run record", path.display()))
}

fn read_rows(path: &Path, plan: &Plan) -> Result<Vec<Row>> {
    let table = ResultsTable::read(path)?;
    let point = table.column("point")?;
    let repeat = table.column("repeat")?;
    let metric_cols: Vec<usize> = plan
        .metrics
        .iter()
        .map(|m| table.column(m))
        .collect::<Result<_>>()?;
    (0..table.rows.len())
        .map(|r| {
            Ok(Row {
                point: table.rows[r][point]
                    .parse()
                    .context("bad point index in results.csv")?,
                repeat: table.rows[r][repeat]
                    .parse()
                    .context("bad repeat index in results.csv")?,
                metrics: metric_cols
                    .iter()
                    .map(|&c| table.number(r, c))
                    .collect::<Result<_>>()?,
            })
        })
        .collect()
}

/// Write `results.csv`: rows sorted by (point, repeat) so the file does not depend on the
/// order in which threads finished.
fn write_results(out: &Path, plan: &Plan, points: &[Point], rows: &[Row]) -> Result<()> {
    let paths = plan.axis_paths();
    let mut header = vec!["point".to_string(), "repeat".to_string()];
    header.extend(paths.iter().cloned());
    header.extend(plan.metrics.iter().cloned());
    let mut sorted: Vec<&Row> = rows.iter().collect();
    sorted.sort_by_key(|r| (r.point, r.repeat));
    let mut table = Table::new(&header);
    for r in sorted {
        let mut cells = vec![r.point.to_string(), r.repeat.to_string()];
        cells.extend(
            points[r.point]
                .assignments
                .iter()
                .map(|(_, v)| value_label(v)),
        );
        cells.extend(r.metrics.iter().map(|&m| format_float(m)));
        table.push_row(cells)?;
    }
    table.write(&out.join(RESULTS_CSV))
}

/// Write `summary.csv` and the plots from `results.csv`; returns the files written.
fn finish(out: &Path, plan: &Plan) -> Result<Vec<String>> {
    let table = ResultsTable::read(&out.join(RESULTS_CSV))?;
    let mut group = vec!["point".to_string()];
    group.extend(plan.axis_paths());
    summarize(&table, &group, &plan.metrics)?
        .to_table()?
        .write(&out.join(SUMMARY_CSV))?;
    let mut outputs = vec![
        RESULTS_CSV.to_string(),
        SUMMARY_CSV.to_string(),
        RUN_JSON.to_string(),
    ];
    for spec in &plan.plots {
        let figs = figures(&table, spec).with_context(|| format!("plot '{}'", spec.name))?;
        let columns = figs.len().min(3);
        crate::output::plot::save_panels(&figs, columns, &out.join(&spec.name))
            .with_context(|| format!("plot '{}'", spec.name))?;
        outputs.extend([format!("{}.png", spec.name), format!("{}.svg", spec.name)]);
    }
    print_summary(&table, plan)?;
    Ok(outputs)
}

/// Print one line per point with the mean ± std of the first metric.
fn print_summary(table: &ResultsTable, plan: &Plan) -> Result<()> {
    let Some(metric) = plan.metrics.first() else {
        return Ok(());
    };
    let mut group = vec!["point".to_string()];
    group.extend(plan.axis_paths());
    let s = summarize(table, &group, std::slice::from_ref(metric))?;
    for row in &s.rows {
        let label: Vec<String> = group
            .iter()
            .zip(row)
            .skip(1)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mean: f64 = row[group.len()].parse().unwrap_or(f64::NAN);
        let spread = match row[group.len() + 1].parse::<f64>() {
            Ok(std) => format!(" ± {}", fmt4(std)),
            Err(_) => String::new(),
        };
        let value = format!(
            "{metric} = {}{spread}  (n = {})",
            fmt4(mean),
            row[row.len() - 1]
        );
        if label.is_empty() {
            println!("{value}");
        } else {
            println!("{:<60} {value}", label.join(" "));
        }
    }
    Ok(())
}

fn fmt4(v: f64) -> String {
    format!("{v:.4}")
}

/// The run-record fields beside the plan (version, threads, timings, outputs); the
/// configuration, seed and input fingerprints are in the plan itself.
fn run_meta(plan: &Plan, timer: &Timer, outputs: Vec<String>) -> Result<serde_json::Value> {
    let mut record = RunRecord::new("run", serde_json::Value::Null, plan.seed);
    record.timings_s = timer.seconds();
    record.outputs = outputs;
    let mut v = serde_json::to_value(record)?;
    if let Some(obj) = v.as_object_mut() {
        for key in ["config", "seed", "inputs"] {
            obj.remove(key);
        }
    }
    Ok(v)
}

/// Join the results of shard directories into `out` (summary, plots and run record
/// included). All shards must come from the same plan. Results already in `out` are kept:
/// they join the union if they come from the same plan, and the merge is refused if not.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<()> {
    let Some(first) = dirs.first() else {
        bail!("xbar merge needs at least one results directory")
    };
    let base = read_run_file(&first.join(RUN_JSON))?;
    let _dir = OutputDir::acquire(out)?;
    let mut rows = previous_rows(out, &base.fingerprint, &base.plan)
        .context("the --out directory of the merge")?;
    for dir in dirs {
        let record = read_run_file(&dir.join(RUN_JSON))?;
        if record.fingerprint != base.fingerprint {
            bail!(
                "{} comes from other inputs than {} ({}): only shards of one run can be merged",
                dir.display(),
                first.display(),
                plan_difference(&base.plan, &record.plan)
            );
        }
        for row in read_rows(&dir.join(RESULTS_CSV), &base.plan)? {
            match rows
                .iter()
                .find(|r| r.point == row.point && r.repeat == row.repeat)
            {
                Some(existing) if existing.metrics != row.metrics => bail!(
                    "point {} repeat {} has different results in two directories ({}): they are not shards of one run",
                    row.point,
                    row.repeat,
                    dir.display()
                ),
                Some(_) => {}
                None => rows.push(row),
            }
        }
    }
    let plan = &base.plan;
    let points = plan.points();
    if let Some(r) = rows.iter().find(|r| r.point >= points.len()) {
        bail!(
            "results.csv names point {} but the plan has {} points",
            r.point,
            points.len()
        );
    }
    let timer = Timer::start();
    write_results(out, plan, &points, &rows)?;
    let total = points.len() * plan.repeats as usize;
    if rows.len() < total {
        eprintln!(
            "warning: the merged results hold {} of {} jobs; some shards are missing or unfinished",
            rows.len(),
            total
        );
    }
    let mut record = RunFile {
        plan: plan.clone(),
        fingerprint: base.fingerprint,
        shard: None,
        complete: rows.len() == total,
        jobs_done: rows.len(),
        jobs_total: total,
        figures_error: None,
        meta: run_meta(plan, &timer, vec![RESULTS_CSV.into(), RUN_JSON.into()])?,
    };
    results::write_json(&out.join(RUN_JSON), &record)?;
    if rows.is_empty() {
        eprintln!("the shards hold no result yet: no summary or plot written");
        return Ok(());
    }
    record.meta = run_meta(plan, &timer, finish(out, plan)?)?;
    results::write_json(&out.join(RUN_JSON), &record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::stats::ErrorBars;
    use rand::RngExt;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A job kind whose metric is a seeded random draw around the swept value `x.v`.
    struct Noisy {
        calls: AtomicUsize,
        fail_at: Option<usize>,
    }

    impl JobKind for Noisy {
        fn validate(&self, c: &Value) -> Result<()> {
            match c
                .get("x")
                .and_then(|x| x.get("v"))
                .and_then(Value::as_float)
            {
                Some(v) if v >= 0.0 => Ok(()),
                _ => bail!("x.v must be a non-negative number"),
            }
        }
        fn run(&self, c: &Value, job: JobId) -> Result<Vec<f64>> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if self.fail_at == Some(n) {
                bail!("simulated failure");
            }
            let v = c["x"]["v"].as_float().unwrap_or(0.0);
            let mut rng = crate::rng::stream(job.seed, &[job.point as u64, u64::from(job.repeat)]);
            Ok(vec![v + rng.random::<f64>(), v * 2.0])
        }
    }

    fn plan() -> Plan {
        let base: Value = toml::from_str("[x]\nv = 0.0\n").unwrap();
        Plan {
            name: "test".into(),
            base,
            axes: vec![Axis {
                path: Some("x.v".into()),
                paths: None,
                values: (0..5).map(|v| Value::Float(v as f64)).collect(),
            }],
            seed: 7,
            repeats: 3,
            metrics: vec!["m".into(), "twice".into()],
            plots: vec![PlotSpec {
                error: ErrorBars::Ci95,
                ..PlotSpec::new("x.v", "m")
            }],
            inputs: Fingerprints::new(),
        }
    }

    fn kind() -> Noisy {
        Noisy {
            calls: AtomicUsize::new(0),
            fail_at: None,
        }
    }

    fn opts(out: &Path) -> RunOptions {
        RunOptions {
            out: out.to_path_buf(),
            shard: None,
            progress: false,
        }
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn a_sweep_writes_results_summary_plot_and_record() {
        let dir = tempfile::tempdir().unwrap();
        execute(&plan(), &kind(), &opts(dir.path())).unwrap();
        let results = read(&dir.path().join(RESULTS_CSV));
        assert_eq!(results.lines().count(), 1 + 15);
        assert!(results.starts_with("point,repeat,x.v,m,twice\n"));
        assert_eq!(read(&dir.path().join(SUMMARY_CSV)).lines().count(), 1 + 5);
        assert!(dir.path().join("plot.png").exists() && dir.path().join("plot.svg").exists());
        let record: serde_json::Value =
            serde_json::from_str(&read(&dir.path().join(RUN_JSON))).unwrap();
        assert_eq!(record["plan"]["seed"], 7);
        assert_eq!(record["complete"], true);
        assert!(record["xbar_version"].is_string() && record["timings_s"]["total"].is_number());
    }

    #[test]
    fn results_are_identical_with_one_and_two_threads() {
        let run_with = |threads: usize| {
            let dir = tempfile::tempdir().unwrap();
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| execute(&plan(), &kind(), &opts(dir.path())))
                .unwrap();
            read(&dir.path().join(RESULTS_CSV))
        };
        assert_eq!(run_with(1), run_with(2));
    }

    #[test]
    fn an_interrupted_run_resumes_without_redoing_finished_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let reference = tempfile::tempdir().unwrap();
        execute(&plan(), &kind(), &opts(reference.path())).unwrap();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let failing = Noisy {
            calls: AtomicUsize::new(0),
            fail_at: Some(6),
        };
        let err = pool
            .install(|| execute(&plan(), &failing, &opts(dir.path())))
            .unwrap_err();
        assert!(format!("{err:#}").contains("simulated failure"));
        let partial = read(&dir.path().join(RESULTS_CSV));
        assert_eq!(
            partial.lines().count(),
            1 + 6,
            "the six finished jobs are on disk"
        );
        let resumed = kind();
        execute(&plan(), &resumed, &opts(dir.path())).unwrap();
        assert_eq!(resumed.calls.load(Ordering::SeqCst), 15 - 6);
        assert_eq!(
            read(&dir.path().join(RESULTS_CSV)),
            read(&reference.path().join(RESULTS_CSV))
        );
    }

    #[test]
    fn a_different_configuration_does_not_resume_into_old_results() {
        let dir = tempfile::tempdir().unwrap();
        execute(&plan(), &kind(), &opts(dir.path())).unwrap();
        let mut other = plan();
        other.seed = 8;
        let err = execute(&other, &kind(), &opts(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("other inputs") && err.contains("seed 7 there, 8 now"),
            "{err}"
        );
    }

    #[test]
    fn shards_merged_equal_one_full_run() {
        let full = tempfile::tempdir().unwrap();
        execute(&plan(), &kind(), &opts(full.path())).unwrap();
        let shards: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        for (i, d) in shards.iter().enumerate() {
            let o = RunOptions {
                shard: Some(Shard { index: i, count: 3 }),
                ..opts(d.path())
            };
            execute(&plan(), &kind(), &o).unwrap();
        }
        let merged = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> = shards.iter().map(|d| d.path().to_path_buf()).collect();
        merge(&dirs, merged.path()).unwrap();
        for f in [RESULTS_CSV, SUMMARY_CSV] {
            assert_eq!(
                read(&merged.path().join(f)),
                read(&full.path().join(f)),
                "{f}"
            );
        }
    }

    /// A kind whose second metric is NaN at one point.
    struct NanAt(usize);

    impl JobKind for NanAt {
        fn validate(&self, _: &Value) -> Result<()> {
            Ok(())
        }
        fn run(&self, _: &Value, job: JobId) -> Result<Vec<f64>> {
            let bad = if job.point == self.0 { f64::NAN } else { 1.0 };
            Ok(vec![0.5, bad])
        }
    }

    #[test]
    fn a_nan_metric_is_a_defect_named_with_its_point_and_seed() {
        let dir = tempfile::tempdir().unwrap();
        let err = format!(
            "{:#}",
            execute(&plan(), &NanAt(2), &opts(dir.path())).unwrap_err()
        );
        assert!(
            err.contains("point 2 (x.v = 2)") && err.contains("seed 7") && err.contains("'twice'"),
            "{err}"
        );
    }

    #[test]
    fn an_invalid_point_fails_before_any_output() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let mut bad = plan();
        bad.axes[0].values.push(Value::Float(-1.0));
        let err = format!("{:#}", execute(&bad, &kind(), &opts(&out)).unwrap_err());
        assert!(
            err.contains("x.v = -1") && err.contains("non-negative"),
            "{err}"
        );
        assert!(!out.exists());
    }
}
