//! Result files shared by every command: CSV tables and JSON run records, written
//! atomically (temporary file in the same directory, then rename), so an interrupted run
//! never leaves a partial results file behind.
//!
//! Every command that produces numbers writes a [`RunRecord`] beside them: the resolved
//! configuration, the seed, the xbar version, the thread count, the fingerprints of the
//! input files and the timings, so that a figure can be regenerated exactly.
//!
//! An output directory is held by one run at a time ([`OutputDir`]: an OS file lock that
//! a crashed run cannot leave stuck), and results already in it are never deleted: the
//! commands that write results check what is there first (see `docs/RESULTS.md`).

use anyhow::{Context, Result, bail};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

pub use crate::atomic::write_atomic;

/// The xbar version compiled into this binary.
pub const XBAR_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Create (if needed) an output directory and check that it is writable, before any work starts.
pub fn prepare_output_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "cannot create the output directory {} (choose another with --out)",
            dir.display()
        )
    })?;
    let probe = dir.join(format!(".xbar-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").with_context(|| {
        format!(
            "the output directory {} is not writable (choose another with --out)",
            dir.display()
        )
    })?;
    std::fs::remove_file(&probe).ok();
    Ok(())
}

/// The per-job results table of a sweep (one row per point x repeat).
pub const RESULTS_CSV: &str = "results.csv";
/// The per-point summary of a sweep (mean, std, 95 % CI, n).
pub const SUMMARY_CSV: &str = "summary.csv";
/// Every number of a study.
pub const REPORT_JSON: &str = "report.json";
/// The run record written beside every command's results.
pub const RUN_JSON: &str = "run.json";

/// Name of the lock file inside an output directory.
pub const LOCK_FILE: &str = ".xbar.lock";

/// An output directory held by this process: created if needed, checked writable and
/// locked with an exclusive OS advisory lock on [`LOCK_FILE`], so that a second run into
/// the same directory fails at once instead of overwriting this one's results. The OS
/// releases the lock when the process ends, however it ends (no stale lock after a crash).
#[derive(Debug)]
pub struct OutputDir {
    path: PathBuf,
    created: bool,
    _lock: File,
}

impl OutputDir {
    /// Create (if needed), check and lock `dir`.
    pub fn acquire(dir: &Path) -> Result<OutputDir> {
        let created = !dir.exists();
        prepare_output_dir(dir)?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("cannot create the lock file {}", lock_path.display()))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => bail!(
                "another xbar run is writing into {} (it holds {}); wait until it has finished, \
                 or give this run another --out",
                dir.display(),
                lock_path.display()
            ),
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", lock_path.display()));
            }
        }
        Ok(OutputDir {
            path: dir.to_path_buf(),
            created,
            _lock: lock,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Give the directory up after a run that saved no result: the files this run wrote
    /// (`written`, relative to the directory) and the lock file are removed, and the
    /// directory too if this run created it and it is now empty. Nothing else is touched.
    pub fn abandon(self, written: &[&str]) {
        for name in written.iter().chain([&LOCK_FILE]) {
            let _ = std::fs::remove_file(self.path.join(name));
        }
        if self.created {
            let _ = std::fs::remove_dir(&self.path);
        }
    }
}

/// Whether `dir` already holds the finished results of this very run (`finished` names the
/// file a finished run writes last besides `run.json`; its record's configuration and input
/// fingerprints equal `config` and `inputs`). Finished results of anything else are an
/// error: they are never overwritten.
pub fn holds_this_run(
    dir: &Path,
    finished: &str,
    config: &serde_json::Value,
    inputs: &BTreeMap<String, String>,
) -> Result<bool> {
    let markers = [RESULTS_CSV, REPORT_JSON, finished];
    let Some(marker) = markers.iter().find(|m| dir.join(m).exists()) else {
        return Ok(false);
    };
    let record: serde_json::Value = std::fs::read_to_string(dir.join(RUN_JSON))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .with_context(|| {
            format!(
                "{} holds results ({marker}) but no readable {RUN_JSON}: give this run another --out",
                dir.display()
            )
        })?;
    // Compare as read back from text: an f32 field is written as its shortest decimal,
    // which reads back as a different f64 than the widened value in memory.
    let config: serde_json::Value = serde_json::from_str(&serde_json::to_string(config)?)?;
    let same_config = record.get("config") == Some(&config);
    let same_inputs = record
        .get("inputs")
        .and_then(|i| serde_json::from_value::<BTreeMap<String, String>>(i.clone()).ok())
        == Some(inputs.clone());
    if *marker == finished && same_config && same_inputs {
        return Ok(true);
    }
    let what = if same_config {
        "an input file has changed since"
    } else {
        "another configuration, seed or command"
    };
    bail!(
        "{} holds the finished results of another run ({what}); they are kept: give this \
         run another --out",
        dir.display()
    )
}

/// SHA-256 of a file's contents (the value `sha256sum FILE` prints), or of a directory's:
/// SHA-256 over every file below it in sorted order of relative path, each as
/// `path NUL length NUL contents`.
pub fn sha256_of_path(path: &Path) -> Result<String> {
    let mut hasher = Sha256::new();
    if path.is_dir() {
        let mut files = Vec::new();
        list_files(path, path, &mut files)?;
        files.sort();
        for rel in files {
            let bytes = std::fs::read(path.join(&rel))
                .with_context(|| format!("cannot read {}", path.join(&rel).display()))?;
            hasher.update(rel.as_bytes());
            hasher.update([0]);
            hasher.update(bytes.len().to_string().as_bytes());
            hasher.update([0]);
            hasher.update(&bytes);
        }
    } else {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        hasher.update(&bytes);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Relative paths (with `/`) of every file below `dir`.
fn list_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for entry in entries {
        let path = entry
            .with_context(|| format!("cannot list {}", dir.display()))?
            .path();
        if path.is_dir() {
            list_files(root, &path, out)?;
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

/// Text with a leading UTF-8 byte-order mark removed (spreadsheet programs write one).
pub fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// A CSV table built in memory and written atomically.
#[derive(Clone, Debug)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these column names.
    pub fn new<S: AsRef<str>>(header: &[S]) -> Self {
        Self {
            header: header.iter().map(|h| h.as_ref().to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Append a row of already-formatted cells.
    pub fn push_row(&mut self, row: Vec<String>) -> Result<()> {
        if row.len() != self.header.len() {
            bail!(
                "a results row has {} cells but the table has {} columns",
                row.len(),
                self.header.len()
            );
        }
        self.rows.push(row);
        Ok(())
    }

    /// Append a row of numbers, printed with full round-trip precision.
    pub fn push_numbers(&mut self, row: &[f64]) -> Result<()> {
        self.push_row(row.iter().map(|v| format_float(*v)).collect())
    }

    /// Number of data rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the table has no data rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Serialise as CSV text.
    pub fn to_csv(&self) -> Result<Vec<u8>> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(&self.header)?;
        for row in &self.rows {
            w.write_record(row)?;
        }
        w.into_inner().context("finishing CSV output")
    }

    /// Write the table to `path` atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.to_csv()?)
    }
}

/// A float printed so that parsing it back gives the same value (Rust's shortest
/// round-trip form), in scientific notation below 1e-4 and from 1e16 in magnitude so that
/// no number is printed as hundreds of digits.
pub fn format_float(v: f64) -> String {
    let magnitude = v.abs();
    if v != 0.0 && v.is_finite() && !(1e-4..1e16).contains(&magnitude) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// Serialise `value` as pretty JSON and write it atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_vec_pretty(value).context("serialising JSON")?;
    text.push(b'\n');
    write_atomic(path, &text)
}

/// Wall-clock timings of named phases, in seconds.
#[derive(Debug, Default)]
pub struct Timer {
    started: Option<Instant>,
    phases: BTreeMap<String, f64>,
}

impl Timer {
    /// A timer that starts counting the total now.
    pub fn start() -> Self {
        Self {
            started: Some(Instant::now()),
            phases: BTreeMap::new(),
        }
    }

    /// Run `f` and record its duration under `name` (durations of equal names add up).
    pub fn time<T>(&mut self, name: &str, f: impl FnOnce() -> T) -> T {
        let t0 = Instant::now();
        let out = f();
        *self.phases.entry(name.to_string()).or_default() += t0.elapsed().as_secs_f64();
        out
    }

    /// Recorded phases plus `total`, seconds.
    pub fn seconds(&self) -> BTreeMap<String, f64> {
        let mut all = self.phases.clone();
        if let Some(t0) = self.started {
            all.insert("total".to_string(), t0.elapsed().as_secs_f64());
        }
        all
    }
}

/// What was run, so that it can be run again: written as `run.json` beside the results.
#[derive(Debug, Serialize)]
pub struct RunRecord {
    /// The command line subcommand (e.g. `characterize`).
    pub command: String,
    /// Fully resolved configuration (every default filled in).
    pub config: serde_json::Value,
    /// Master seed of every random stream.
    pub seed: u64,
    /// xbar version.
    pub xbar_version: String,
    /// Number of worker threads used.
    pub threads: usize,
    /// Start time, UTC, ISO 8601.
    pub started_utc: String,
    /// Wall-clock seconds per phase, and `total`.
    pub timings_s: BTreeMap<String, f64>,
    /// Files written by the run, relative to the output directory.
    pub outputs: Vec<String>,
    /// SHA-256 of every input file or directory the run read, by path.
    pub inputs: BTreeMap<String, String>,
}

impl RunRecord {
    /// A record for `command` with this configuration and seed, stamped now.
    pub fn new(command: &str, config: serde_json::Value, seed: u64) -> Self {
        Self {
            command: command.to_string(),
            config,
            seed,
            xbar_version: XBAR_VERSION.to_string(),
            threads: rayon::current_num_threads(),
            started_utc: utc_now_iso8601(),
            timings_s: BTreeMap::new(),
            outputs: Vec::new(),
            inputs: BTreeMap::new(),
        }
    }
}

/// Present UTC time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now_iso8601() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    iso8601_from_unix(secs)
}

/// Civil date from days since 1970-01-01 (H. Hinnant's `civil_from_days` algorithm).
fn iso8601_from_unix(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_time_formats_as_iso8601() {
        assert_eq!(iso8601_from_unix(0), "1970-01-01T00:00:00Z");
        // 2000-02-29 12:34:56 UTC, a leap day.
        assert_eq!(iso8601_from_unix(951_827_696), "2000-02-29T12:34:56Z");
    }

    #[test]
    fn tables_round_trip_floats_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = Table::new(&["a", "b"]);
        t.push_numbers(&[0.1 + 0.2, 1e-300]).unwrap();
        let path = dir.path().join("t.csv");
        t.write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let cells: Vec<f64> = text
            .lines()
            .nth(1)
            .unwrap()
            .split(',')
            .map(|c| c.parse().unwrap())
            .collect();
        assert_eq!(cells, vec![0.1 + 0.2, 1e-300]);
        assert!(
            t.push_numbers(&[1.0]).is_err(),
            "a short row must be refused"
        );
    }

    #[test]
    fn large_and_small_floats_print_in_scientific_notation_and_round_trip() {
        for v in [2e294, 1.5e-9, 0.0010000000474974513, 123.25, 0.0, -7e20] {
            let text = format_float(v);
            assert!(text.len() < 30, "{text}");
            assert_eq!(text.parse::<f64>().unwrap(), v);
        }
        assert_eq!(format_float(2e294), "2e294");
        assert_eq!(format_float(0.5), "0.5");
    }

    #[test]
    fn a_locked_output_directory_is_refused_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let held = OutputDir::acquire(&out).unwrap();
        let err = format!("{:#}", OutputDir::acquire(&out).unwrap_err());
        assert!(err.contains("another xbar run"), "{err}");
        held.abandon(&[]);
        assert!(
            !out.exists(),
            "an unused directory this run created is removed"
        );
        std::fs::create_dir(&out).unwrap();
        OutputDir::acquire(&out).unwrap().abandon(&[]);
        assert!(out.exists(), "a directory this run did not create is kept");
    }

    #[test]
    fn file_and_directory_hashes_follow_their_contents() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.txt");
        std::fs::write(&file, b"abc").unwrap();
        // FIPS 180-2 test vector for "abc".
        assert_eq!(
            sha256_of_path(&file).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let before = sha256_of_path(dir.path()).unwrap();
        std::fs::write(dir.path().join("b.txt"), b"").unwrap();
        assert_ne!(sha256_of_path(dir.path()).unwrap(), before);
    }

    #[test]
    fn an_unwritable_directory_is_reported_before_work_starts() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        std::fs::write(&file, b"x").unwrap();
        let err = prepare_output_dir(&file.join("sub")).unwrap_err();
        assert!(format!("{err:#}").contains("--out"), "{err:#}");
    }
}
