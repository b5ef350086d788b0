//! NumPy arrays in and out: float32 or float64, C or Fortran order, checked for shape and
//! finiteness with messages that name the argument and the fix. Inputs are copied into
//! row-major buffers the Rust code owns, so the GIL can be released while they are read.

use numpy::ndarray::{Array1, Array2};
use numpy::{IntoPyArray, PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

/// A batch of vectors read from Python: row-major `rows x width`, and whether the caller
/// gave one vector (a 1-D array) rather than a batch.
pub struct Batch {
    pub data: Vec<f32>,
    pub rows: usize,
    pub single: bool,
}

/// The elements of a float32/float64 array in row-major (logical) order, any memory layout.
fn elements<T: Copy + 'static>(
    array: &Bound<'_, PyUntypedArray>,
    name: &str,
    from_f32: fn(f32) -> T,
    from_f64: fn(f64) -> T,
) -> PyResult<Vec<T>> {
    if let Ok(a) = array.cast::<PyArrayDyn<f32>>() {
        let view = a
            .try_readonly()
            .map_err(|e| PyValueError::new_err(format!("{name}: {e}")))?;
        // `as_slice` also accepts Fortran-contiguous arrays (memory order), so only a
        // C-contiguous array is copied as a slice; any other is walked in logical order.
        return Ok(match (array.is_c_contiguous(), view.as_slice()) {
            (true, Ok(slice)) => slice.iter().map(|&v| from_f32(v)).collect(),
            _ => view.as_array().iter().map(|&v| from_f32(v)).collect(),
        });
    }
    if let Ok(a) = array.cast::<PyArrayDyn<f64>>() {
        let view = a
            .try_readonly()
            .map_err(|e| PyValueError::new_err(format!("{name}: {e}")))?;
        return Ok(match (array.is_c_contiguous(), view.as_slice()) {
            (true, Ok(slice)) => slice.iter().map(|&v| from_f64(v)).collect(),
            _ => view.as_array().iter().map(|&v| from_f64(v)).collect(),
        });
    }
    Err(PyTypeError::new_err(format!(
        "{name} has dtype {}: give float32 or float64 values (e.g. {name}.astype(numpy.float32))",
        array.dtype()
    )))
}

/// `value` as a NumPy array, or a `TypeError` naming the argument.
fn as_array<'a, 'py>(
    value: &'a Bound<'py, PyAny>,
    name: &str,
) -> PyResult<&'a Bound<'py, PyUntypedArray>> {
    value.cast::<PyUntypedArray>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{name} must be a NumPy array (got {}); wrap it with numpy.asarray",
            value
                .get_type()
                .name()
                .map_or_else(|_| "?".into(), |n| n.to_string())
        ))
    })
}

/// Reject NaN and infinities, naming the argument and the first bad index. The common
/// all-finite case is one branch-free pass (it vectorises); only a failure looks for the
/// index.
fn check_finite<T: Copy + Into<f64>>(values: &[T], name: &str) -> PyResult<()> {
    let finite = |v: T| v.into().is_finite();
    if values.iter().fold(true, |ok, &v| ok & finite(v)) {
        return Ok(());
    }
    let (k, v) = values
        .iter()
        .enumerate()
        .find(|(_, v)| !finite(**v))
        .map(|(k, &v)| (k, v.into()))
        .unwrap_or((0, f64::NAN));
    Err(PyValueError::new_err(format!(
        "{name} holds a non-finite value ({v} at flat index {k}): every value must be finite"
    )))
}

/// A vector (`width` values) or a batch (`rows x width`) of float32 inputs.
pub fn batch(value: &Bound<'_, PyAny>, name: &str, width: usize) -> PyResult<Batch> {
    let array = as_array(value, name)?;
    let shape = array.shape().to_vec();
    let (rows, single) = match shape.as_slice() {
        [n] if *n == width => (1, true),
        [rows, n] if *n == width => (*rows, false),
        _ => {
            return Err(PyValueError::new_err(format!(
                "{name} has shape {shape:?}: expected ({width},) or (batch, {width})"
            )));
        }
    };
    let data = elements(array, name, |v| v, |v| v as f32)?;
    check_finite(&data, name)?;
    Ok(Batch { data, rows, single })
}

/// A 2-D float64 matrix: its values row-major and its shape (rows, columns).
pub fn matrix(value: &Bound<'_, PyAny>, name: &str) -> PyResult<(Vec<f64>, usize, usize)> {
    let array = as_array(value, name)?;
    let shape = array.shape().to_vec();
    let [rows, cols] = shape.as_slice() else {
        return Err(PyValueError::new_err(format!(
            "{name} has shape {shape:?}: expected a 2-D (outputs, inputs) matrix"
        )));
    };
    let data = elements(array, name, f64::from, |v| v)?;
    check_finite(&data, name)?;
    Ok((data, *rows, *cols))
}

/// Outputs of a read as the caller's shape: 1-D for one vector, else `rows x width`.
pub fn output<'py>(
    py: Python<'py>,
    data: Vec<f32>,
    like: &Batch,
    width: usize,
) -> PyResult<Bound<'py, PyAny>> {
    if like.single {
        return Ok(Array1::from_vec(data).into_pyarray(py).into_any());
    }
    let array = Array2::from_shape_vec((like.rows, width), data)
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(array.into_pyarray(py).into_any())
}

/// A row-major `rows x cols` float64 matrix as a NumPy array.
pub fn matrix_out(
    py: Python<'_>,
    data: Vec<f64>,
    rows: usize,
    cols: usize,
) -> PyResult<Bound<'_, PyAny>> {
    let array = Array2::from_shape_vec((rows, cols), data)
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(array.into_pyarray(py).into_any())
}
