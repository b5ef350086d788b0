//! `xbar.Tile`: a weight matrix on crossbar tiles of one device preset, for Python. It is
//! the Rust `TiledMatrix` (matrices larger than `max_rows x max_cols` are split over tiles
//! with digital accumulation) with the tile configuration given as keyword arguments — the
//! keys of an experiment's `[hardware.tile]` table — and NumPy arrays in and out. Reads,
//! updates and programming release the GIL and run on the tile's own thread pool when
//! `threads` is given (results never depend on it).

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};
use xbar::crossbar::update::{PulsedUpdateConfig, PulsedUpdateReport};
use xbar::crossbar::{Direction, ProgramReport, ProgrammingMethod, TileConfig, TiledMatrix};
use xbar::device::{AnyDevice, Polarity, preset};

use crate::arrays::{self, Batch};
use crate::convert::{dict_to_table, json_to_py, kwargs_table};
use crate::value_error;

/// The device of a tile: a preset name or path, or a `Preset` object (its
/// `name_or_path` and `overrides`), built with the overrides.
fn build_device(device: &Bound<'_, PyAny>) -> PyResult<(AnyDevice, String)> {
    if let Ok(name) = device.cast::<PyString>() {
        let name: String = name.extract()?;
        let name = name.as_str();
        let built = preset::load(name, &toml::Table::new()).map_err(value_error)?;
        return Ok((built, name.to_string()));
    }
    let name: String = device.getattr("name_or_path")?.extract()?;
    let overrides = device.getattr("overrides")?;
    let overrides = dict_to_table(overrides.cast::<PyDict>()?, "overrides")?;
    let built = preset::load(&name, &overrides).map_err(value_error)?;
    Ok((built, name))
}

/// Keyword arguments as a `TileConfig` (unknown keys and bad values name the field).
fn parse_tile_config(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<TileConfig> {
    let table = kwargs_table(kwargs)?;
    let config: TileConfig = toml::Value::Table(table)
        .try_into()
        .map_err(|e| value_error(anyhow::anyhow!("tile configuration: {e}")))?;
    config.validate().map_err(value_error)?;
    Ok(config)
}

/// A report as a Python dict, through its serde form.
fn report_dict<'py>(py: Python<'py>, value: impl serde::Serialize) -> PyResult<Bound<'py, PyAny>> {
    let json = serde_json::to_value(value).map_err(|e| value_error(e.into()))?;
    json_to_py(py, &json)
}

/// A programming report as a dict.
fn program_dict<'py>(py: Python<'py>, report: &ProgramReport) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("devices", report.devices)?;
    dict.set_item("converged", report.converged)?;
    dict.set_item("pulses", report.write.pulses)?;
    dict.set_item("energy_j", report.write.energy_j)?;
    dict.set_item("time_s", report.write.time_s)?;
    dict.set_item("max_pulses_per_device", report.max_pulses_per_device)?;
    dict.set_item("rms_error_s", report.rms_error_s)?;
    dict.set_item("max_abs_error_s", report.max_abs_error_s)?;
    Ok(dict)
}

/// A pulsed update's report as a dict.
fn update_dict<'py>(py: Python<'py>, report: &PulsedUpdateReport) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("pulses", report.write.pulses)?;
    dict.set_item("energy_j", report.write.energy_j)?;
    dict.set_item("time_s", report.write.time_s)?;
    dict.set_item("outer_products", report.outer_products)?;
    dict.set_item("slots", report.slots)?;
    Ok(dict)
}

/// A weight matrix on crossbar tiles. See `python/xbar/_xbar.pyi` for the documentation
/// Python users read.
#[pyclass(module = "xbar._xbar")]
pub struct Tile {
    matrix: TiledMatrix<AnyDevice>,
    /// The configuration the tiles were fabricated with.
    config: TileConfig,
    device: AnyDevice,
    device_name: String,
    seed: u64,
    /// The weights `program()` writes (row-major n_out x n_in).
    target: Vec<f64>,
    programmed: bool,
    /// Pulsed-update settings.
    update_config: PulsedUpdateConfig,
    /// Updates applied so far (each selects its own random streams).
    updates: u64,
    /// The tile's own worker pool, when `threads` was given.
    pool: Option<rayon::ThreadPool>,
}

impl Tile {
    /// Run `f` on the tile's pool (or the global one) with the GIL released.
    fn detached<T: Send>(
        &mut self,
        py: Python<'_>,
        f: impl FnOnce(&mut TiledMatrix<AnyDevice>) -> anyhow::Result<T> + Send,
    ) -> PyResult<T> {
        let (matrix, pool) = (&mut self.matrix, &self.pool);
        py.detach(|| match pool {
            Some(pool) => pool.install(|| f(matrix)),
            None => f(matrix),
        })
        .map_err(value_error)
    }

    /// Move the tiles to read time `t` (seconds after programming) unless they are there.
    fn at_time(&mut self, py: Python<'_>, t: Option<f64>) -> PyResult<()> {
        self.at_time_checked()?;
        let Some(t) = t else { return Ok(()) };
        if self.matrix.tiles()[0].read_time_s() != Some(t) {
            self.detached(py, |m| m.set_read_time(t))?;
        }
        Ok(())
    }

    /// One read in `direction` of `x` (a vector or a batch) at time `t`.
    fn read_in<'py>(
        &mut self,
        py: Python<'py>,
        direction: Direction,
        x: &Bound<'py, PyAny>,
        t: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (n_in, n_out) = (self.matrix.n_in(), self.matrix.n_out());
        let (name, width, out_width) = match direction {
            Direction::Forward => ("x", n_in, n_out),
            Direction::Transposed => ("d", n_out, n_in),
        };
        let batch: Batch = arrays::batch(x, name, width)?;
        self.at_time(py, t)?;
        let rows = batch.rows;
        let mut y = vec![0f32; rows * out_width];
        let data = &batch.data;
        self.detached(py, |m| m.read_batch(direction, data, rows, &mut y))?;
        arrays::output(py, y, &batch, out_width)
    }
}

#[pymethods]
impl Tile {
    #[new]
    #[pyo3(signature = (weights, device = None, seed = 0, threads = None, update = None, **tile_config))]
    fn new(
        weights: &Bound<'_, PyAny>,
        device: Option<&Bound<'_, PyAny>>,
        seed: u64,
        threads: Option<usize>,
        update: Option<&Bound<'_, PyDict>>,
        tile_config: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let (target, n_out, n_in) = arrays::matrix(weights, "weights")?;
        if n_out == 0 || n_in == 0 {
            return Err(value_error(anyhow::anyhow!(
                "weights has shape ({n_out}, {n_in}): a tile needs at least one input and one output"
            )));
        }
        let (device, device_name) = match device {
            Some(d) => build_device(d)?,
            None => build_device(&PyString::new(weights.py(), "pcm_gst").into_any())?,
        };
        let config = parse_tile_config(tile_config)?;
        let update_config: PulsedUpdateConfig = toml::Value::Table(kwargs_table(update)?)
            .try_into()
            .map_err(|e| value_error(anyhow::anyhow!("update: {e}")))?;
        update_config
            .validate()
            .map_err(|e| value_error(e.context("update")))?;
        xbar::memory::ensure_fits(
            xbar::crossbar::tiled::deployed_bytes((n_in * n_out) as f64, &config),
            &format!("a {n_out} x {n_in} weight matrix on {device_name} tiles"),
            "use a smaller weight matrix",
        )
        .map_err(value_error)?;
        let pool = threads
            .map(xbar::threads::pool)
            .transpose()
            .map_err(value_error)?;
        let matrix = TiledMatrix::new(device.clone(), n_in, n_out, config.clone(), seed)
            .map_err(value_error)?;
        Ok(Self {
            matrix,
            config,
            device,
            device_name,
            seed,
            target,
            programmed: false,
            update_config,
            updates: 0,
            pool,
        })
    }

    /// Program the weights (those given at construction, or `weights`).
    #[pyo3(signature = (weights = None, write_verify = None))]
    fn program<'py>(
        &mut self,
        py: Python<'py>,
        weights: Option<&Bound<'py, PyAny>>,
        write_verify: Option<bool>,
    ) -> PyResult<Bound<'py, PyDict>> {
        if let Some(w) = weights {
            let (values, n_out, n_in) = arrays::matrix(w, "weights")?;
            if (n_out, n_in) != (self.matrix.n_out(), self.matrix.n_in()) {
                return Err(value_error(anyhow::anyhow!(
                    "weights has shape ({n_out}, {n_in}) but the tile holds a ({}, {}) matrix",
                    self.matrix.n_out(),
                    self.matrix.n_in()
                )));
            }
            self.target = values;
        }
        if let Some(verify) = write_verify {
            let method = if verify {
                ProgrammingMethod::WriteVerify
            } else {
                ProgrammingMethod::OpenLoop
            };
            if method != self.config.programming.method {
                if self.programmed {
                    return Err(value_error(anyhow::anyhow!(
                        "write_verify = {verify}: the programming method is fixed once the tile \
                         is programmed; create a new Tile with programming = {{\"method\": ...}}"
                    )));
                }
                self.config.programming.method = method;
                self.matrix = TiledMatrix::new(
                    self.device.clone(),
                    self.matrix.n_in(),
                    self.matrix.n_out(),
                    self.config.clone(),
                    self.seed,
                )
                .map_err(value_error)?;
            }
        }
        let target = std::mem::take(&mut self.target);
        let report = self.detached(py, |m| m.program(&target));
        self.target = target;
        let report = report?;
        self.programmed = true;
        program_dict(py, &report)
    }

    /// `W x` for a vector (n_in,) or a batch (batch, n_in), read at time `t`.
    #[pyo3(signature = (x, t = None))]
    fn read<'py>(
        &mut self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        t: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.read_in(py, Direction::Forward, x, t)
    }

    /// `Wᵀ d` for a vector (n_out,) or a batch (batch, n_out), read at time `t`.
    #[pyo3(signature = (d, t = None))]
    fn read_transposed<'py>(
        &mut self,
        py: Python<'py>,
        d: &Bound<'py, PyAny>,
        t: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.read_in(py, Direction::Transposed, d, t)
    }

    /// Pulsed update `W <- W - learning_rate * sum_b d_b x_bᵀ`.
    fn update<'py>(
        &mut self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        d: &Bound<'py, PyAny>,
        learning_rate: f64,
    ) -> PyResult<Bound<'py, PyDict>> {
        let x = arrays::batch(x, "x", self.matrix.n_in())?;
        let d = arrays::batch(d, "d", self.matrix.n_out())?;
        if x.rows != d.rows {
            return Err(value_error(anyhow::anyhow!(
                "x holds {} vectors and d holds {}: give one d per x",
                x.rows,
                d.rows
            )));
        }
        if !learning_rate.is_finite() || learning_rate < 0.0 {
            return Err(value_error(anyhow::anyhow!(
                "learning_rate = {learning_rate}: give a finite value >= 0"
            )));
        }
        self.at_time(py, None)?;
        let (config, index, rows) = (self.update_config, self.updates, x.rows);
        let (xs, ds) = (&x.data, &d.data);
        let report = self.detached(py, |m| {
            m.apply_outer_product(ds, xs, rows, -(learning_rate as f32), &config, index)
        })?;
        self.updates += 1;
        update_dict(py, &report)
    }

    /// The effective weights read back without noise, (n_out, n_in) float64.
    fn weights<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.at_time_checked()?;
        let w = self.matrix.effective_weights().map_err(value_error)?;
        arrays::matrix_out(py, w, self.matrix.n_out(), self.matrix.n_in())
    }

    /// Noise-free conductances (G+, G-) of bit-slice `plane`, each (n_out, n_in), siemens.
    #[pyo3(signature = (plane = 0))]
    fn conductances<'py>(&self, py: Python<'py>, plane: usize) -> PyResult<Bound<'py, PyTuple>> {
        self.at_time_checked()?;
        let (n_out, n_in) = (self.matrix.n_out(), self.matrix.n_in());
        let g_plus = self
            .matrix
            .conductances(plane, Polarity::Set)
            .map_err(value_error)?;
        let g_minus = self
            .matrix
            .conductances(plane, Polarity::Reset)
            .map_err(value_error)?;
        PyTuple::new(
            py,
            [
                arrays::matrix_out(py, g_plus, n_out, n_in)?,
                arrays::matrix_out(py, g_minus, n_out, n_in)?,
            ],
        )
    }

    /// The cumulative energy and latency ledger of every tile, summed.
    fn ledger<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let total = self.matrix.total_energy();
        let dict = report_dict(py, total)?;
        let d = dict.cast::<PyDict>()?;
        d.set_item("read_j", total.read_j())?;
        d.set_item("total_j", total.total_j())?;
        d.set_item("pj_per_mac", total.pj_per_mac())?;
        Ok(dict)
    }

    /// (n_out, n_in).
    #[getter]
    fn shape(&self) -> (usize, usize) {
        (self.matrix.n_out(), self.matrix.n_in())
    }

    /// (row blocks, column blocks) of the tile grid.
    #[getter]
    fn grid(&self) -> (usize, usize) {
        self.matrix.grid()
    }

    /// Seconds after programming the tiles are read at (None before programming).
    #[getter]
    fn read_time(&self) -> Option<f64> {
        self.programmed
            .then(|| self.matrix.tiles()[0].read_time_s())
            .flatten()
    }

    /// The device preset's name or path.
    #[getter]
    fn device(&self) -> &str {
        &self.device_name
    }

    /// The tile configuration as a dict (every key, defaults included).
    #[getter]
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        report_dict(py, &self.config)
    }

    /// Move the tiles to `t` seconds after programming (drift, read noise at that time).
    fn set_read_time(&mut self, py: Python<'_>, t: f64) -> PyResult<()> {
        self.at_time(py, Some(t))
    }

    fn __repr__(&self) -> String {
        let (rows, cols) = self.matrix.grid();
        format!(
            "Tile({} x {} on {}, {} tile(s) of at most {} x {}, seed {}{})",
            self.matrix.n_out(),
            self.matrix.n_in(),
            self.device_name,
            rows * cols,
            self.config.max_rows,
            self.config.max_cols,
            self.seed,
            if self.programmed {
                ""
            } else {
                ", not programmed"
            }
        )
    }
}

impl Tile {
    /// Refuse read-backs before programming.
    fn at_time_checked(&self) -> PyResult<()> {
        if self.programmed {
            Ok(())
        } else {
            Err(value_error(anyhow::anyhow!(
                "the tile has not been programmed yet: call program() first"
            )))
        }
    }
}
