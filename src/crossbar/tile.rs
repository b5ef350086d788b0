//! One crossbar tile: an N x M array of device pairs with its periphery.
//!
//! Input i drives array row i and output j is read at array column j, so a weight
//! matrix W (n_out x n_in, y = W x) is stored transposed: cell (i, j) holds `W[j][i]`.
//! The tile fabricates its devices (variability and faults), programs a weight matrix
//! (open loop or write-verify), caches the effective conductance matrix G(t) and the
//! read-noise variance matrix sigma^2(t) for the present inference time, and reads it
//! forward (rows driven, columns sensed) or transposed (columns driven, rows sensed)
//! through the DAC, the array, the noise, the ADC and the digital combination of bit
//! slices (see [`super::read`] for the fast read path).
//!
//! Random streams are derived from (seed, tile id, purpose, counters, line or vector
//! index) with [`crate::rng::stream`], so results are bit-identical for any thread count.

use anyhow::{Context, Result, bail, ensure};
use rand::RngExt;
use rayon::prelude::*;

use super::config::{
    AdcRange, ProgrammingMethod, TileConfig, VerifyCorrection, WeightEncoding, check_line_indices,
};
use super::energy::{EnergyBreakdown, EnergyLedger};
use super::ir_drop::{IrDropSolver, SolveMode, WireParams};
use super::kernels::{Bf16, to_bf16};
use super::mapping::{Mapping, PairTarget};
use super::periphery::AdcBank;
use crate::device::{Device, Polarity, StuckAt, WriteReport};
use crate::linalg::transpose;
use crate::rng::stream;

/// Stream purpose tags (second element of every stream path after the tile id).
pub(crate) mod tags {
    /// Device fabrication, per row.
    pub const FABRICATE: u64 = 1;
    /// Stuck-at faults added by the tile, per row.
    pub const FAULTS: u64 = 2;
    /// Dead rows and columns.
    pub const DEAD_LINES: u64 = 3;
    /// Programming, per programming operation and row.
    pub const PROGRAM: u64 = 4;
    /// MVM reads, per read operation and input vector.
    pub const READ: u64 = 5;
    /// Drift-compensation reference reads.
    pub const REFERENCE: u64 = 6;
    /// Sense-amplifier reads, per read operation and row.
    pub const SENSE: u64 = 7;
    /// Pulsed outer-product updates, per update and row (`super::update`).
    pub const UPDATE: u64 = 8;
}

/// Index of the positive and negative device of a pair.
const POS: usize = 0;
const NEG: usize = 1;

/// Which lines are driven.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Drive the rows (n_in inputs), sense the columns (n_out outputs): y = W x.
    Forward,
    /// Drive the columns (n_out inputs), sense the rows (n_in outputs): y = W^T x.
    Transposed,
}

/// Outcome of programming a weight matrix.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProgramReport {
    /// Pulses, energy and (serial) time of every device's programming, verify reads'
    /// energy included.
    pub write: WriteReport,
    /// Devices programmed.
    pub devices: usize,
    /// Devices whose last verify read was within tolerance (all of them for open loop).
    pub converged: usize,
    /// Largest number of pulses any one device needed.
    pub max_pulses_per_device: u32,
    /// Root-mean-square of (noise-free conductance at the verify time - target), siemens
    /// (analog encodings; binary pairs count their distance to the nominal LRS/HRS level).
    pub rms_error_s: f64,
    /// Largest |conductance - target| over the devices, siemens.
    pub max_abs_error_s: f64,
}

/// Conductance-dependent state of the array at one inference time.
#[derive(Debug)]
pub(crate) struct ReadCache {
    /// Inference time, seconds after programming.
    pub t_s: f64,
    /// Per plane, (G+ - G-) / g_unit, row-major n_in x n_out, dead lines zeroed.
    pub g: Vec<Vec<f32>>,
    /// Per plane, (sigma+^2 + sigma-^2) / g_unit^2 (empty when read noise is off).
    pub var: Vec<Vec<f32>>,
    /// `g` transposed (n_out x n_in row-major): forward reads use it so that the GEMM's
    /// left operand is row-major (dot-product kernels, fastest for single vectors).
    pub g_t: Vec<Vec<f32>>,
    /// `var` transposed (n_out x n_in row-major).
    pub var_t: Vec<Vec<f32>>,
    /// `var_t` in bfloat16: the sensed-major variances of small-batch forward reads
    /// (see [`super::kernels`]).
    pub var_t_bf16: Vec<Vec<Bf16>>,
    /// `var` in bfloat16: the sensed-major variances of small-batch transposed reads.
    pub var_bf16: Vec<Vec<Bf16>>,
    /// Per row, sum over columns and planes of G+ + G-, siemens (array read energy).
    pub row_g_sum_s: Vec<f64>,
    /// Per column, sum over rows and planes of G+ + G-, siemens.
    pub col_g_sum_s: Vec<f64>,
    /// Drift-compensation factor applied to the outputs (1 without compensation).
    pub drift_scale: f64,
    /// Per plane, IR-drop solvers of the G+ and G- arrays (resistive wires only).
    pub ir: Vec<[IrDropSolver; 2]>,
    /// Binary/ternary tiles: both devices of every pair as the sense amplifiers see them,
    /// row-major n_in x n_out (empty for analog encodings).
    pub sensed_pairs: Vec<SensedPair>,
}

/// Noise-free conductance and read-noise standard deviation of the G+ and G- devices of one
/// 2T2R pair at the cache's read time, siemens.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SensedPair {
    /// `[G+, G-]`.
    pub g_s: [f64; 2],
    /// `[sigma+, sigma-]`.
    pub sigma_s: [f64; 2],
}

impl ReadCache {
    /// Store the normalised conductance `g` and read-noise variance `var` (when read
    /// noise is on) of device pair (`row`, `col`) of `plane` in every copy of the cache,
    /// for a tile of `n_in` rows and `n_out` columns.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn store_pair(
        &mut self,
        plane: usize,
        row: usize,
        col: usize,
        n_in: usize,
        n_out: usize,
        g: f32,
        var: f32,
    ) {
        let (driven_major, sensed_major) = (row * n_out + col, col * n_in + row);
        self.g[plane][driven_major] = g;
        self.g_t[plane][sensed_major] = g;
        if let Some(v) = self.var.get_mut(plane) {
            v[driven_major] = var;
            self.var_t[plane][sensed_major] = var;
            self.var_bf16[plane][driven_major] = Bf16::from_f32(var);
            self.var_t_bf16[plane][sensed_major] = Bf16::from_f32(var);
        }
    }
}

/// A crossbar tile of devices of model `D`.
pub struct Tile<D: Device> {
    pub(crate) device: D,
    pub(crate) config: TileConfig,
    pub(crate) n_in: usize,
    pub(crate) n_out: usize,
    pub(crate) seed: u64,
    pub(crate) tile_id: u64,
    /// Cells, index ((row * n_out + col) * planes + plane) * 2 + sign.
    pub(crate) cells: Vec<D::State>,
    pub(crate) planes: usize,
    pub(crate) mapping: Option<Mapping>,
    pub(crate) dead_rows: Vec<bool>,
    pub(crate) dead_cols: Vec<bool>,
    pub(crate) g_min_s: f64,
    pub(crate) g_unit_s: f64,
    pub(crate) cache: Option<ReadCache>,
    /// Summed absolute output of the reference read right after programming.
    pub(crate) reference_readout: f64,
    /// Per plane, per column ADCs (forward reads).
    pub(crate) adc_forward: Vec<AdcBank>,
    /// Per plane, per row ADCs (transposed reads).
    pub(crate) adc_transposed: Vec<AdcBank>,
    pub(crate) ledger: EnergyLedger,
    pub(crate) read_counter: u64,
    pub(crate) program_counter: u64,
}

impl<D: Device> Tile<D> {
    /// Fabricate a tile of `n_in` rows (inputs) x `n_out` columns (outputs) of device
    /// pairs of model `device`: device-to-device variability, the preset's faults, the
    /// configured extra stuck-at faults and dead lines. `tile_id` separates the random
    /// streams of tiles sharing a `seed`.
    pub fn new(
        device: D,
        n_in: usize,
        n_out: usize,
        config: TileConfig,
        seed: u64,
        tile_id: u64,
    ) -> Result<Self> {
        config.validate().context("invalid tile configuration")?;
        ensure!(
            n_in > 0 && n_out > 0,
            "a tile needs at least one row and one column (got {n_in} x {n_out})"
        );
        ensure!(
            n_in <= config.max_rows && n_out <= config.max_cols,
            "a {n_in} x {n_out} array exceeds the tile size {} x {} (tile.max_rows x \
             tile.max_cols); split the matrix with TiledMatrix",
            config.max_rows,
            config.max_cols
        );
        check_line_indices("dead_rows", &config.faults.dead_rows, n_in)?;
        check_line_indices("dead_columns", &config.faults.dead_columns, n_out)?;
        let (g_min_s, g_max_s) = device.nominal_window();
        ensure!(
            g_min_s.is_finite() && g_max_s.is_finite() && g_max_s > g_min_s && g_min_s >= 0.0,
            "the device's nominal window [{g_min_s}, {g_max_s}] S must satisfy 0 <= g_min < g_max"
        );
        let planes = config.mapping.bit_slicing.map_or(1, |s| s.slices as usize);
        let cells = fabricate_cells(&device, &config, n_in, n_out, planes, seed, tile_id);
        let (dead_rows, dead_cols) = draw_dead_lines(&config, n_in, n_out, seed, tile_id);
        Ok(Self {
            device,
            config,
            n_in,
            n_out,
            seed,
            tile_id,
            cells,
            planes,
            mapping: None,
            dead_rows,
            dead_cols,
            g_min_s,
            g_unit_s: g_max_s - g_min_s,
            cache: None,
            reference_readout: 0.0,
            adc_forward: Vec::new(),
            adc_transposed: Vec::new(),
            ledger: EnergyLedger::default(),
            read_counter: 0,
            program_counter: 0,
        })
    }

    /// Number of inputs (array rows).
    pub fn n_in(&self) -> usize {
        self.n_in
    }

    /// Number of outputs (array columns).
    pub fn n_out(&self) -> usize {
        self.n_out
    }

    /// The tile's configuration.
    pub fn config(&self) -> &TileConfig {
        &self.config
    }

    /// The device model.
    pub fn device(&self) -> &D {
        &self.device
    }

    /// The energy ledger (last operation and cumulative totals).
    pub fn ledger(&self) -> &EnergyLedger {
        &self.ledger
    }

    /// Mutable access to the ledger (e.g. to reset it between experiment phases).
    pub fn ledger_mut(&mut self) -> &mut EnergyLedger {
        &mut self.ledger
    }

    /// Dead rows (true = open line).
    pub fn dead_rows(&self) -> &[bool] {
        &self.dead_rows
    }

    /// Dead columns (true = open line).
    pub fn dead_columns(&self) -> &[bool] {
        &self.dead_cols
    }

    /// The mapping of the programmed matrix (`None` before programming).
    pub fn mapping(&self) -> Option<&Mapping> {
        self.mapping.as_ref()
    }

    /// Present inference time, seconds after programming (`None` before programming).
    pub fn read_time_s(&self) -> Option<f64> {
        self.cache.as_ref().map(|c| c.t_s)
    }

    /// Drift-compensation factor applied at the present inference time.
    pub fn drift_scale(&self) -> Option<f64> {
        self.cache.as_ref().map(|c| c.drift_scale)
    }

    #[inline]
    pub(crate) fn cell_index(&self, row: usize, col: usize, plane: usize, sign: usize) -> usize {
        ((row * self.n_out + col) * self.planes + plane) * 2 + sign
    }

    /// Program `weights` (row-major n_out x n_in, y = W x) with the weight scale of the
    /// configuration (or the largest |w|), by the configured method. The tile then reads
    /// at t = `periphery.reference_read_time_s` until [`Tile::set_read_time`] is called.
    pub fn program(&mut self, weights: &[f64]) -> Result<ProgramReport> {
        let w_max = match self.config.mapping.weight_max {
            Some(w) => w,
            None => weights.iter().fold(0.0f64, |m, w| m.max(w.abs())),
        };
        let w_max = if w_max > 0.0 { w_max } else { 1.0 };
        self.program_with_scale(weights, w_max)
    }

    /// Program `weights` (row-major n_out x n_in) with an explicit weight scale `w_max`
    /// (the weight mapped to the full conductance window; shared by the tiles of a
    /// [`super::TiledMatrix`]).
    pub fn program_with_scale(&mut self, weights: &[f64], w_max: f64) -> Result<ProgramReport> {
        ensure!(
            weights.len() == self.n_in * self.n_out,
            "weight matrix has {} values, the tile needs n_out x n_in = {} x {} = {}",
            weights.len(),
            self.n_out,
            self.n_in,
            self.n_out * self.n_in
        );
        if let Some(bad) = weights.iter().position(|w| !w.is_finite()) {
            bail!(
                "weight ({}, {}) is not finite ({})",
                bad / self.n_in,
                bad % self.n_in,
                weights[bad]
            );
        }
        ensure!(
            w_max.is_finite() && w_max > 0.0,
            "weight scale w_max must be positive and finite (got {w_max})"
        );
        let mapping = Mapping::new(&self.config.mapping, w_max);
        let report = self.program_cells(weights, &mapping);
        self.program_counter += 1;
        self.mapping = Some(mapping);
        self.ledger
            .record(EnergyBreakdown::from_write(&report.write));
        self.after_programming()?;
        Ok(report)
    }

    fn program_cells(&mut self, weights: &[f64], mapping: &Mapping) -> ProgramReport {
        let (n_in, n_out, planes) = (self.n_in, self.n_out, self.planes);
        let ctx = ProgramContext {
            device: &self.device,
            config: &self.config,
            g_min_s: self.g_min_s,
            g_unit_s: self.g_unit_s,
        };
        let (seed, tile_id, counter) = (self.seed, self.tile_id, self.program_counter);
        let rows: Vec<RowProgramStats> = self
            .cells
            .par_chunks_mut(n_out * planes * 2)
            .enumerate()
            .map(|(row, cells)| {
                let mut rng = stream(seed, &[tile_id, tags::PROGRAM, counter, row as u64]);
                let mut stats = RowProgramStats::default();
                let mut targets = vec![PairTarget::Analog { pos: 0.0, neg: 0.0 }; planes];
                for col in 0..n_out {
                    mapping.encode(weights[col * n_in + row], &mut targets);
                    for (plane, target) in targets.iter().enumerate() {
                        let base = (col * planes + plane) * 2;
                        let pair = &mut cells[base..base + 2];
                        ctx.program_pair(pair, target, &mut rng, &mut stats);
                    }
                }
                stats
            })
            .collect();
        RowProgramStats::report(&rows)
    }

    /// After programming: reference read, ADC ranges, then the reference-time cache.
    fn after_programming(&mut self) -> Result<()> {
        let t_ref = self.config.periphery.reference_read_time_s;
        let mut cache = self.build_cache(t_ref)?;
        self.reference_readout = self.reference_read(&cache, 0);
        cache.drift_scale = 1.0;
        self.adc_forward = self.default_adcs(&cache, Direction::Forward);
        self.adc_transposed = self.default_adcs(&cache, Direction::Transposed);
        self.cache = Some(cache);
        if self.config.periphery.drift_compensation {
            self.set_read_time_unchecked(t_ref)?;
        }
        Ok(())
    }

    /// Bring the read cache up to date after some pairs of plane 0 changed: `touched`
    /// lists, per row, (column, G+ + G- before the change in siemens) of every changed
    /// pair, each pair once. Only those pairs are re-read (ideal wires, no drift
    /// compensation); otherwise the cache is rebuilt at the present read time, since the
    /// IR-drop solvers and the drift-compensation factor depend on every device.
    pub(crate) fn refresh_pairs<'a>(
        &mut self,
        touched: impl IntoIterator<Item = (usize, &'a [(usize, f64)])>,
    ) -> Result<()> {
        let t_s = self.read_time_s().unwrap_or(0.0);
        if self.config.wires.is_resistive() || self.config.periphery.drift_compensation {
            return self.set_read_time(t_s);
        }
        let (n_in, n_out, inv_unit) = (self.n_in, self.n_out, 1.0 / self.g_unit_s);
        let (device, cells) = (&self.device, &self.cells);
        let cache = self
            .cache
            .as_mut()
            .context("the tile has not been programmed yet: call program() first")?;
        for (row, pairs) in touched {
            for &(col, old_sum_s) in pairs {
                let base = (row * n_out + col) * 2;
                let (pos, neg) = (&cells[base], &cells[base + 1]);
                let (gp, gn) = (
                    device.conductance_at(pos, t_s),
                    device.conductance_at(neg, t_s),
                );
                let g = ((gp - gn) * inv_unit) as f32;
                let var = if cache.var.is_empty() {
                    0.0
                } else {
                    let (sp, sn) = (
                        device.read_noise_sigma(pos, t_s),
                        device.read_noise_sigma(neg, t_s),
                    );
                    ((sp * sp + sn * sn) * inv_unit * inv_unit) as f32
                };
                cache.store_pair(0, row, col, n_in, n_out, g, var);
                cache.row_g_sum_s[row] += gp + gn - old_sum_s;
                cache.col_g_sum_s[col] += gp + gn - old_sum_s;
                if let Some(pair) = cache.sensed_pairs.get_mut(row * n_out + col) {
                    *pair = SensedPair {
                        g_s: [gp, gn],
                        sigma_s: [
                            device.read_noise_sigma(pos, t_s),
                            device.read_noise_sigma(neg, t_s),
                        ],
                    };
                }
            }
        }
        Ok(())
    }

    /// Move to inference time `t_s` (seconds after programming): recompute G(t), the
    /// read-noise variances and the drift-compensation factor.
    pub fn set_read_time(&mut self, t_s: f64) -> Result<()> {
        ensure!(
            t_s.is_finite() && t_s >= 0.0,
            "read time must be a finite number of seconds >= 0 (got {t_s})"
        );
        ensure!(
            self.mapping.is_some(),
            "the tile has not been programmed yet: call program() first"
        );
        self.set_read_time_unchecked(t_s)
    }

    fn set_read_time_unchecked(&mut self, t_s: f64) -> Result<()> {
        let mut cache = self.build_cache(t_s)?;
        cache.drift_scale = if self.config.periphery.drift_compensation {
            let now = self.reference_read(&cache, 1 + t_s.to_bits());
            if now > 0.0 {
                self.reference_readout / now
            } else {
                1.0
            }
        } else {
            1.0
        };
        self.cache = Some(cache);
        Ok(())
    }

    /// Build G(t) and sigma^2(t) for every plane, dead lines zeroed.
    pub(crate) fn build_cache(&self, t_s: f64) -> Result<ReadCache> {
        let (n_in, n_out) = (self.n_in, self.n_out);
        let read_noise = self.config.periphery.read_noise;
        let inv_unit = 1.0 / self.g_unit_s;
        let mut g = vec![vec![0f32; n_in * n_out]; self.planes];
        let mut var = if read_noise {
            vec![vec![0f32; n_in * n_out]; self.planes]
        } else {
            Vec::new()
        };
        let mut row_g_sum_s = vec![0f64; n_in];
        for (plane, g_plane) in g.iter_mut().enumerate() {
            let var_rows: Vec<&mut [f32]> = match var.get_mut(plane) {
                Some(v) => v.chunks_mut(n_out).collect(),
                None => (0..n_in).map(|_| &mut [][..]).collect(),
            };
            let sums: Vec<f64> = g_plane
                .par_chunks_mut(n_out)
                .zip(var_rows.into_par_iter())
                .enumerate()
                .map(|(row, (g_row, var_row))| {
                    self.fill_cache_row(row, plane, t_s, inv_unit, g_row, var_row)
                })
                .collect();
            for (total, s) in row_g_sum_s.iter_mut().zip(sums) {
                *total += s;
            }
        }
        let col_g_sum_s = self.column_conductance_sums(t_s);
        let g_t = g.iter().map(|m| transpose(m, n_in, n_out)).collect();
        let var_t: Vec<Vec<f32>> = var.iter().map(|m| transpose(m, n_in, n_out)).collect();
        Ok(ReadCache {
            t_s,
            var_t_bf16: var_t.iter().map(|m| to_bf16(m)).collect(),
            var_bf16: var.iter().map(|m| to_bf16(m)).collect(),
            g,
            var,
            g_t,
            var_t,
            row_g_sum_s,
            col_g_sum_s,
            drift_scale: 1.0,
            ir: self.build_ir_solvers(t_s)?,
            sensed_pairs: self.sensed_pairs(t_s),
        })
    }

    /// Both devices of every pair at `t_s` for the sense amplifiers (binary and ternary
    /// tiles without bit slicing; empty otherwise).
    fn sensed_pairs(&self, t_s: f64) -> Vec<SensedPair> {
        if self.encoding().is_analog() || self.planes != 1 {
            return Vec::new();
        }
        let mut pairs = vec![SensedPair::default(); self.n_in * self.n_out];
        pairs
            .par_chunks_mut(self.n_out)
            .enumerate()
            .for_each(|(row, out)| {
                for (col, pair) in out.iter_mut().enumerate() {
                    *pair = self.sensed_pair(row, col, t_s);
                }
            });
        pairs
    }

    /// Pair (`row`, `col`) of plane 0 at `t_s` as the sense amplifiers see it.
    fn sensed_pair(&self, row: usize, col: usize, t_s: f64) -> SensedPair {
        let cell = |sign| &self.cells[self.cell_index(row, col, 0, sign)];
        SensedPair {
            g_s: [0, 1].map(|sign| self.device.conductance_at(cell(sign), t_s)),
            sigma_s: [0, 1].map(|sign| self.device.read_noise_sigma(cell(sign), t_s)),
        }
    }

    /// IR-drop solvers of every plane's G+ and G- arrays at time `t_s` (none with ideal
    /// wires). Dead lines carry no current: their devices enter with zero conductance.
    fn build_ir_solvers(&self, t_s: f64) -> Result<Vec<[IrDropSolver; 2]>> {
        let wires = &self.config.wires;
        if !wires.is_resistive() {
            return Ok(Vec::new());
        }
        let params = WireParams {
            r_wire_ohm: wires.r_wire_ohm,
            r_driver_ohm: wires.r_driver_ohm,
            r_sense_ohm: wires.r_sense_ohm,
        };
        let mode = SolveMode::approximate_if(wires.approximate);
        let solver = |plane: usize, sign: usize| {
            let g: Vec<f64> = (0..self.n_in * self.n_out)
                .map(|k| {
                    let (row, col) = (k / self.n_out, k % self.n_out);
                    if self.dead_rows[row] || self.dead_cols[col] {
                        return 0.0;
                    }
                    let cell = &self.cells[self.cell_index(row, col, plane, sign)];
                    self.device.conductance_at(cell, t_s)
                })
                .collect();
            IrDropSolver::new(&g, self.n_in, self.n_out, &params, mode)
                .context("building the IR-drop solver of the tile")
        };
        (0..self.planes)
            .map(|plane| Ok([solver(plane, POS)?, solver(plane, NEG)?]))
            .collect()
    }

    /// One row of the cache; returns the row's summed G+ + G- (siemens).
    fn fill_cache_row(
        &self,
        row: usize,
        plane: usize,
        t_s: f64,
        inv_unit: f64,
        g_row: &mut [f32],
        var_row: &mut [f32],
    ) -> f64 {
        let mut sum_s = 0.0;
        let dead_row = self.dead_rows[row];
        for (col, g_out) in g_row.iter_mut().enumerate() {
            let pos = &self.cells[self.cell_index(row, col, plane, POS)];
            let neg = &self.cells[self.cell_index(row, col, plane, NEG)];
            let (gp, gn) = (
                self.device.conductance_at(pos, t_s),
                self.device.conductance_at(neg, t_s),
            );
            if dead_row || self.dead_cols[col] {
                continue;
            }
            sum_s += gp + gn;
            *g_out = ((gp - gn) * inv_unit) as f32;
            if let Some(v) = var_row.get_mut(col) {
                let sp = self.device.read_noise_sigma(pos, t_s);
                let sn = self.device.read_noise_sigma(neg, t_s);
                *v = ((sp * sp + sn * sn) * inv_unit * inv_unit) as f32;
            }
        }
        sum_s
    }

    fn column_conductance_sums(&self, t_s: f64) -> Vec<f64> {
        let mut sums = vec![0f64; self.n_out];
        for row in (0..self.n_in).filter(|&r| !self.dead_rows[r]) {
            for (col, sum) in sums.iter_mut().enumerate() {
                if self.dead_cols[col] {
                    continue;
                }
                for plane in 0..self.planes {
                    for sign in [POS, NEG] {
                        let cell = &self.cells[self.cell_index(row, col, plane, sign)];
                        *sum += self.device.conductance_at(cell, t_s);
                    }
                }
            }
        }
        sums
    }

    /// Summed |output| of a reference read with every row at +v_read (forward, before
    /// the ADC, with read noise when enabled), in normalised current units.
    fn reference_read(&self, cache: &ReadCache, index: u64) -> f64 {
        let factors = self.plane_factors();
        let mut rng = stream(
            self.seed,
            &[self.tile_id, tags::REFERENCE, self.program_counter, index],
        );
        let mut total = 0.0;
        for col in 0..self.n_out {
            let mut y = 0.0;
            for (plane, c) in factors.iter().enumerate() {
                let (mut mean, mut var) = (0.0f64, 0.0f64);
                for row in 0..self.n_in {
                    mean += f64::from(cache.g[plane][row * self.n_out + col]);
                    if let Some(v) = cache.var.get(plane) {
                        var += f64::from(v[row * self.n_out + col]);
                    }
                }
                let z: f64 = rng.sample(rand_distr::StandardNormal);
                y += c * (mean + var.sqrt() * z);
            }
            total += y.abs();
        }
        total
    }

    /// Per-plane digital weights of the programmed mapping.
    pub(crate) fn plane_factors(&self) -> Vec<f64> {
        self.mapping
            .as_ref()
            .map_or_else(|| vec![1.0; self.planes], Mapping::plane_factors)
    }

    /// ADCs from the configured range mode (calibrated mode: worst case until calibrated).
    fn default_adcs(&self, cache: &ReadCache, direction: Direction) -> Vec<AdcBank> {
        let periphery = &self.config.periphery;
        let bits = periphery.adc.bits;
        let current_unit_a = periphery.v_read_v * self.g_unit_s;
        (0..self.planes)
            .map(|plane| {
                let worst = self.worst_case_currents(&cache.g[plane], direction);
                let full_scales: Vec<f32> = worst
                    .iter()
                    .map(|&w| {
                        let fs = match periphery.adc.range {
                            AdcRange::Fixed { full_scale_a } => full_scale_a / current_unit_a,
                            AdcRange::ColumnMax { fraction } => fraction * w,
                            AdcRange::Calibrated { .. } => w,
                        };
                        fs as f32
                    })
                    .collect();
                AdcBank::new(bits, &full_scales)
            })
            .collect()
    }

    /// Largest normalised current of each sensed line: sum of |G+ - G-| / g_unit along it.
    fn worst_case_currents(&self, g: &[f32], direction: Direction) -> Vec<f64> {
        match direction {
            Direction::Forward => {
                let mut w = vec![0f64; self.n_out];
                for row in g.chunks(self.n_out) {
                    for (acc, &v) in w.iter_mut().zip(row) {
                        *acc += f64::from(v.abs());
                    }
                }
                w
            }
            Direction::Transposed => g
                .chunks(self.n_out)
                .map(|row| row.iter().map(|v| f64::from(v.abs())).sum())
                .collect(),
        }
    }

    /// Calibrate the ADC ranges of `direction` (configuration `adc.range = calibrated`):
    /// each sensed line's full scale becomes `margin` x the largest |current| it carries
    /// over the `batch` input vectors `x` (row-major), read noise-free at the present time.
    pub fn calibrate_adc(&mut self, direction: Direction, x: &[f32], batch: usize) -> Result<()> {
        let AdcRange::Calibrated { margin } = self.config.periphery.adc.range else {
            bail!("calibrate_adc needs periphery.adc.range.mode = \"calibrated\"");
        };
        let peaks = self.analog_peaks(direction, x, batch)?;
        let bits = self.config.periphery.adc.bits;
        let adcs: Vec<AdcBank> = peaks
            .iter()
            .map(|plane| {
                let full_scales: Vec<f32> = plane.iter().map(|&p| (margin * p) as f32).collect();
                AdcBank::new(bits, &full_scales)
            })
            .collect();
        match direction {
            Direction::Forward => self.adc_forward = adcs,
            Direction::Transposed => self.adc_transposed = adcs,
        }
        Ok(())
    }

    /// Noise-free conductances of every device of `plane` and `polarity` (Set = G+,
    /// Reset = G-) at the present read time, siemens, row-major n_in x n_out.
    pub fn conductances(&self, plane: usize, polarity: Polarity) -> Result<Vec<f64>> {
        self.per_device(plane, polarity, D::conductance_at)
    }

    /// Read-noise standard deviations (from the device model) of every device of `plane`
    /// and `polarity` at the present read time, siemens, row-major n_in x n_out.
    pub fn read_noise_sigmas(&self, plane: usize, polarity: Polarity) -> Result<Vec<f64>> {
        self.per_device(plane, polarity, D::read_noise_sigma)
    }

    /// `quantity(device, cell, t)` for every device of `plane` and `polarity` at the present
    /// read time, row-major n_in x n_out.
    fn per_device(
        &self,
        plane: usize,
        polarity: Polarity,
        quantity: fn(&D, &D::State, f64) -> f64,
    ) -> Result<Vec<f64>> {
        ensure!(
            plane < self.planes,
            "plane {plane} does not exist (the tile has {} planes)",
            self.planes
        );
        let t_s = self.read_time_s().unwrap_or(0.0);
        let sign = match polarity {
            Polarity::Set => POS,
            Polarity::Reset => NEG,
        };
        Ok((0..self.n_in * self.n_out)
            .map(|k| {
                let cell =
                    &self.cells[self.cell_index(k / self.n_out, k % self.n_out, plane, sign)];
                quantity(&self.device, cell, t_s)
            })
            .collect())
    }

    /// Read back the effective weights (row-major n_out x n_in, like the programmed
    /// matrix): sum over planes of c_s (G+ - G-) / g_unit at the present read time,
    /// noise-free, dead lines as zeros, times the drift-compensation factor.
    pub fn effective_weights(&self) -> Result<Vec<f64>> {
        let cache = self
            .cache
            .as_ref()
            .context("the tile has not been programmed yet")?;
        let factors = self.plane_factors();
        let mut w = vec![0f64; self.n_in * self.n_out];
        for (plane, c) in factors.iter().enumerate() {
            for row in 0..self.n_in {
                for col in 0..self.n_out {
                    let g = f64::from(cache.g[plane][row * self.n_out + col]);
                    w[col * self.n_in + row] += c * g * cache.drift_scale;
                }
            }
        }
        Ok(w)
    }

    /// Which encoding the tile stores (2T2R sensing needs binary or ternary).
    pub(crate) fn encoding(&self) -> WeightEncoding {
        self.config.mapping.encoding
    }
}

/// Fabricate every cell, then add the configured stuck-at faults.
fn fabricate_cells<D: Device>(
    device: &D,
    config: &TileConfig,
    n_in: usize,
    n_out: usize,
    planes: usize,
    seed: u64,
    tile_id: u64,
) -> Vec<D::State> {
    let per_row = n_out * planes * 2;
    let (p_lrs, p_hrs) = (
        config.faults.stuck_at_lrs_rate,
        config.faults.stuck_at_hrs_rate,
    );
    (0..n_in)
        .into_par_iter()
        .flat_map_iter(|row| {
            let mut rng = stream(seed, &[tile_id, tags::FABRICATE, row as u64]);
            let mut fault_rng = stream(seed, &[tile_id, tags::FAULTS, row as u64]);
            (0..per_row)
                .map(|_| {
                    let mut cell = device.fabricate(&mut rng);
                    if p_lrs + p_hrs > 0.0 {
                        let u: f64 = fault_rng.random();
                        if u < p_lrs {
                            device.set_stuck(&mut cell, Some(StuckAt::Lrs));
                        } else if u < p_lrs + p_hrs {
                            device.set_stuck(&mut cell, Some(StuckAt::Hrs));
                        }
                    }
                    cell
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Dead rows and columns: the configured lists plus random ones at the configured rates.
fn draw_dead_lines(
    config: &TileConfig,
    n_in: usize,
    n_out: usize,
    seed: u64,
    tile_id: u64,
) -> (Vec<bool>, Vec<bool>) {
    let faults = &config.faults;
    let mut rng = stream(seed, &[tile_id, tags::DEAD_LINES]);
    let mut rows: Vec<bool> = (0..n_in)
        .map(|_| rng.random::<f64>() < faults.dead_row_rate)
        .collect();
    let mut cols: Vec<bool> = (0..n_out)
        .map(|_| rng.random::<f64>() < faults.dead_column_rate)
        .collect();
    for &r in &faults.dead_rows {
        rows[r] = true;
    }
    for &c in &faults.dead_columns {
        cols[c] = true;
    }
    (rows, cols)
}

/// Programming statistics of one row (merged over rows).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RowProgramStats {
    write: WriteReport,
    devices: usize,
    converged: usize,
    max_pulses: u32,
    sq_error: f64,
    max_error: f64,
}

impl RowProgramStats {
    /// The report of a programming operation from the statistics of its rows.
    pub(crate) fn report(rows: &[RowProgramStats]) -> ProgramReport {
        let mut total = RowProgramStats::default();
        for r in rows {
            total.merge(r);
        }
        ProgramReport {
            write: total.write,
            devices: total.devices,
            converged: total.converged,
            max_pulses_per_device: total.max_pulses,
            rms_error_s: (total.sq_error / total.devices.max(1) as f64).sqrt(),
            max_abs_error_s: total.max_error,
        }
    }

    fn merge(&mut self, other: &RowProgramStats) {
        self.write.add(other.write);
        self.devices += other.devices;
        self.converged += other.converged;
        self.max_pulses = self.max_pulses.max(other.max_pulses);
        self.sq_error += other.sq_error;
        self.max_error = self.max_error.max(other.max_error);
    }

    fn record(&mut self, write: WriteReport, converged: bool, error_s: f64) {
        self.write.add(write);
        self.devices += 1;
        self.converged += usize::from(converged);
        self.max_pulses = self.max_pulses.max(write.pulses);
        self.sq_error += error_s * error_s;
        self.max_error = self.max_error.max(error_s.abs());
    }
}

/// What programming one device needs to know.
pub(crate) struct ProgramContext<'a, D: Device> {
    pub(crate) device: &'a D,
    pub(crate) config: &'a TileConfig,
    pub(crate) g_min_s: f64,
    pub(crate) g_unit_s: f64,
}

impl<D: Device> ProgramContext<'_, D> {
    pub(crate) fn program_pair<R: rand::Rng + ?Sized>(
        &self,
        pair: &mut [D::State],
        target: &PairTarget,
        rng: &mut R,
        stats: &mut RowProgramStats,
    ) {
        match *target {
            PairTarget::Analog { pos, neg } => {
                for (cell, f) in pair.iter_mut().zip([pos, neg]) {
                    let g_target = self.g_min_s + f * self.g_unit_s;
                    let (write, converged) = self.program_analog(cell, g_target, rng);
                    let t = self.config.programming.verify_read_time_s;
                    let error = self.device.conductance_at(cell, t) - g_target;
                    stats.record(write, converged, error);
                }
            }
            PairTarget::Binary { pos_high, neg_high } => {
                for (cell, high) in pair.iter_mut().zip([pos_high, neg_high]) {
                    let (write, converged) = self.program_binary(cell, high, rng);
                    let t = self.config.programming.verify_read_time_s;
                    let nominal = self.g_min_s + if high { self.g_unit_s } else { 0.0 };
                    let error = self.device.conductance_at(cell, t) - nominal;
                    stats.record(write, converged, error);
                }
            }
        }
    }

    /// Energy of one verify read of a device at conductance `g_s`, joules.
    fn verify_read_energy_j(&self, g_s: f64) -> f64 {
        let v = self.config.periphery.v_read_v;
        v * v * g_s * self.config.energy.read_time_s
    }

    fn program_analog<R: rand::Rng + ?Sized>(
        &self,
        cell: &mut D::State,
        g_target_s: f64,
        rng: &mut R,
    ) -> (WriteReport, bool) {
        let programming = &self.config.programming;
        let mut write = self.device.program(cell, g_target_s, rng);
        if programming.method == ProgrammingMethod::OpenLoop {
            return (write, true);
        }
        let tolerance_s = programming.tolerance_fraction * self.g_unit_s;
        loop {
            let g_read = self.device.read(cell, programming.verify_read_time_s, rng);
            write.energy_j += self.verify_read_energy_j(g_read);
            let error = g_read - g_target_s;
            if error.abs() <= tolerance_s {
                return (write, true);
            }
            if write.pulses >= programming.max_pulses {
                return (write, false);
            }
            match programming.correction {
                VerifyCorrection::Reprogram => {
                    write.add(self.device.program(cell, g_target_s, rng));
                }
                VerifyCorrection::Pulse => {
                    let polarity = if error < 0.0 {
                        Polarity::Set
                    } else {
                        Polarity::Reset
                    };
                    let pulse = self.device.nominal_pulse(polarity);
                    let report = self.device.apply_pulse(cell, &pulse, rng);
                    write.add(WriteReport {
                        pulses: 1,
                        energy_j: report.energy_j,
                        time_s: pulse.width_s,
                    });
                }
            }
        }
    }

    /// Binary programming; write-verify re-programs until the read falls on the right
    /// side of the middle of the nominal window.
    fn program_binary<R: rand::Rng + ?Sized>(
        &self,
        cell: &mut D::State,
        high: bool,
        rng: &mut R,
    ) -> (WriteReport, bool) {
        let programming = &self.config.programming;
        let mut write = self.device.program_binary(cell, high, rng);
        if programming.method == ProgrammingMethod::OpenLoop {
            return (write, true);
        }
        let g_mid_s = self.g_min_s + 0.5 * self.g_unit_s;
        loop {
            let g_read = self.device.read(cell, programming.verify_read_time_s, rng);
            write.energy_j += self.verify_read_energy_j(g_read);
            if (g_read >= g_mid_s) == high {
                return (write, true);
            }
            if write.pulses >= programming.max_pulses {
                return (write, false);
            }
            write.add(self.device.program_binary(cell, high, rng));
        }
    }
}
