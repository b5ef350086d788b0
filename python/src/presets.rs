//! Device presets for Python: the built-in names, and one preset (built-in or a user's
//! file) with every parameter's value, unit and source, after the caller's overrides —
//! validated by building the device, exactly as `xbar devices show` and experiments do.

use pyo3::prelude::*;
use pyo3::types::PyDict;
use xbar::device::preset;

use crate::convert::{dict_to_table, toml_to_py};
use crate::value_error;

/// Names of the built-in device presets.
#[pyfunction]
pub fn presets() -> Vec<&'static str> {
    preset::builtin_names()
}

/// One preset as a dict: name, model, family, description, origin and
/// `params = {name: {"value", "unit", "source"}}`, with `overrides` applied (an overridden
/// parameter's source says so and keeps the preset's).
#[pyfunction]
#[pyo3(signature = (name_or_path, overrides))]
pub fn preset_table<'py>(
    py: Python<'py>,
    name_or_path: &str,
    overrides: &Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyDict>> {
    let overrides = dict_to_table(overrides, "")?;
    let preset = preset::read(name_or_path).map_err(value_error)?;
    preset.build(&overrides).map_err(value_error)?;
    let resolved = preset.resolved_params(&overrides).map_err(value_error)?;
    let params = PyDict::new(py);
    for entry in &preset.params {
        let value = &resolved[&entry.name];
        let source = if overrides.contains_key(&entry.name) {
            format!(
                "set by the caller (preset value {}: {})",
                entry.value, entry.source
            )
        } else {
            entry.source.clone()
        };
        let param = PyDict::new(py);
        param.set_item("value", toml_to_py(py, value)?)?;
        param.set_item("unit", &entry.unit)?;
        param.set_item("source", source)?;
        params.set_item(&entry.name, param)?;
    }
    let table = PyDict::new(py);
    table.set_item("name", &preset.name)?;
    table.set_item("model", &preset.model)?;
    table.set_item("family", preset::family_label(&preset.model))?;
    table.set_item("description", &preset.description)?;
    table.set_item("origin", &preset.origin)?;
    table.set_item("params", params)?;
    Ok(table)
}
