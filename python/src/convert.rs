//! Conversions between Python values and the TOML / JSON values of xbar's configurations
//! and reports: keyword arguments become the tables an experiment file would hold, and
//! serialisable reports (energy ledgers, programming reports) become dictionaries.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

/// A Python value as a TOML value (`what` names it in errors): bool, int, float, str,
/// list/tuple and dict with string keys, nested.
pub fn to_toml(value: &Bound<'_, PyAny>, what: &str) -> PyResult<toml::Value> {
    if value.is_instance_of::<PyBool>() {
        return Ok(toml::Value::Boolean(value.extract()?));
    }
    if value.is_instance_of::<PyInt>() {
        let i: i64 = value.extract().map_err(|_| {
            PyTypeError::new_err(format!("{what}: integer out of the 64-bit range"))
        })?;
        return Ok(toml::Value::Integer(i));
    }
    if value.is_instance_of::<PyFloat>() {
        return Ok(toml::Value::Float(value.extract()?));
    }
    if value.is_instance_of::<PyString>() {
        return Ok(toml::Value::String(value.extract()?));
    }
    if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
        let items = value
            .try_iter()?
            .enumerate()
            .map(|(i, item)| to_toml(&item?, &format!("{what}[{i}]")))
            .collect::<PyResult<Vec<_>>>()?;
        return Ok(toml::Value::Array(items));
    }
    if let Ok(dict) = value.cast::<PyDict>() {
        return Ok(toml::Value::Table(dict_to_table(dict, what)?));
    }
    // NumPy scalars (np.float64, np.int32, np.bool_) convert through their Python value.
    if let Ok(item) = value.call_method0("item")
        && !item.is(value)
    {
        return to_toml(&item, what);
    }
    Err(PyTypeError::new_err(format!(
        "{what}: a {} cannot be a configuration value (use a bool, int, float, str, list or dict)",
        value.get_type().name()?
    )))
}

/// A dict with string keys as a TOML table (`what` names it in errors).
pub fn dict_to_table(dict: &Bound<'_, PyDict>, what: &str) -> PyResult<toml::Table> {
    let mut table = toml::Table::new();
    for (key, value) in dict.iter() {
        let key: String = key.extract().map_err(|_| {
            PyTypeError::new_err(format!("{what}: keys must be strings (got {key})"))
        })?;
        let path = if what.is_empty() {
            key.clone()
        } else {
            format!("{what}.{key}")
        };
        table.insert(key, to_toml(&value, &path)?);
    }
    Ok(table)
}

/// Optional keyword arguments as a TOML table (empty when there are none).
pub fn kwargs_table(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<toml::Table> {
    kwargs.map_or_else(|| Ok(toml::Table::new()), |d| dict_to_table(d, ""))
}

/// A TOML value as a Python object.
pub fn toml_to_py<'py>(py: Python<'py>, value: &toml::Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        toml::Value::String(s) => s.into_pyobject(py)?.into_any(),
        toml::Value::Integer(i) => i.into_pyobject(py)?.into_any(),
        toml::Value::Float(f) => f.into_pyobject(py)?.into_any(),
        toml::Value::Boolean(b) => PyBool::new(py, *b).to_owned().into_any(),
        toml::Value::Datetime(d) => d.to_string().into_pyobject(py)?.into_any(),
        toml::Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(toml_to_py(py, item)?)?;
            }
            list.into_any()
        }
        toml::Value::Table(table) => {
            let dict = PyDict::new(py);
            for (k, v) in table {
                dict.set_item(k, toml_to_py(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

/// A JSON value (a serialised report) as a Python object.
pub fn json_to_py<'py>(py: Python<'py>, value: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        serde_json::Value::Null => py.None().into_bound(py),
        serde_json::Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.into_pyobject(py)?.into_any(),
            (None, Some(f)) => f.into_pyobject(py)?.into_any(),
            (None, None) => n.to_string().into_pyobject(py)?.into_any(),
        },
        serde_json::Value::String(s) => s.into_pyobject(py)?.into_any(),
        serde_json::Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(json_to_py(py, item)?)?;
            }
            list.into_any()
        }
        serde_json::Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, json_to_py(py, v)?)?;
            }
            dict.into_any()
        }
    })
}
