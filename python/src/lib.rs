//! `xbar._xbar`: the native part of the Python package. It exposes the Rust library's
//! crossbar tiles (`Tile`, over `xbar::crossbar::TiledMatrix`), device presets and the
//! experiment driver to Python; `python/xbar/` holds the Python side (the `Preset` mapping,
//! `run`/`load_results`, the PyTorch adapter). Every Rust error reaches Python as a
//! `ValueError` with the message the `xbar` command prints; a wrong array type or dtype is a
//! `TypeError`. Reads, updates, programming and runs release the GIL.

mod arrays;
mod convert;
mod experiment;
mod presets;
mod tile;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// A Rust error as Python sees it: `ValueError` with the full chain of context, as the
/// command line prints it after `error:`.
pub(crate) fn value_error(e: anyhow::Error) -> PyErr {
    PyValueError::new_err(format!("{e:#}"))
}

/// The native module.
#[pymodule]
fn _xbar(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", xbar::output::results::XBAR_VERSION)?;
    m.add_function(wrap_pyfunction!(presets::presets, m)?)?;
    m.add_function(wrap_pyfunction!(presets::preset_table, m)?)?;
    m.add_function(wrap_pyfunction!(experiment::run_experiment, m)?)?;
    m.add_class::<tile::Tile>()?;
    Ok(())
}
