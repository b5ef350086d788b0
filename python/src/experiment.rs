//! `xbar.run` for Python: the experiment driver of `xbar run`, with `--set` assignments,
//! seed, output directory and thread count given as arguments. The Python side
//! (`xbar.run`) reads the files it wrote with `xbar.load_results`.

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use xbar::experiment::config::Overrides;
use xbar::experiment::kinds::Action;
use xbar::experiment::registry;
use xbar::experiment::run::{self, RunOptions};

use crate::convert::to_toml;
use crate::value_error;

/// Run (or resume) the experiment file `path` exactly as `xbar run` does and return the
/// output directory. `sets` maps dotted configuration paths to values (`--set`).
#[pyfunction]
#[pyo3(signature = (path, sets, out = None, threads = None, seed = None, progress = false))]
pub fn run_experiment(
    py: Python<'_>,
    path: PathBuf,
    sets: &Bound<'_, PyDict>,
    out: Option<PathBuf>,
    threads: Option<usize>,
    seed: Option<u64>,
    progress: bool,
) -> PyResult<String> {
    let mut overrides = Overrides {
        seed,
        ..Overrides::default()
    };
    for (key, value) in sets.iter() {
        let key: String = key.extract()?;
        let value = to_toml(&value, &key)?;
        overrides.sets.push((key, value));
    }
    let out = out.unwrap_or_else(|| run::default_out(&path));
    let action = Action::Run(RunOptions {
        out: out.clone(),
        shard: None,
        progress,
    });
    py.detach(|| {
        xbar::threads::with_threads(threads, || {
            registry::dispatch(xbar::studies::KINDS, &path, &overrides, &action)
        })
    })
    .map_err(value_error)?;
    Ok(out.display().to_string())
}
