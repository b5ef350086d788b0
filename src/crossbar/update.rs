//! Pulsed outer-product updates: in-place training of a tile with coincident pulse trains.
//!
//! The scheme of resistive processing units (Gokmen & Vlasov, Front. Neurosci. 2016): for
//! an update `ΔW = scale · δ xᵀ` (δ over the outputs, x over the inputs) every array row i
//! (input i) receives a stochastic pulse train of `slots` bits, each bit set with
//! probability `p_i ∝ |x_i|`, and every column j (output j) one with `q_j ∝ |δ_j|`. A
//! device receives a programming pulse in every slot where its row and column trains
//! coincide, so it gets a binomial number of pulses of mean `slots · p_i · q_j`. The
//! probabilities are scaled so that this mean is `|ΔW_ij| / Δw_min`, Δw_min being the
//! weight change of one nominal pulse ([`Tile::weight_step`]); both trains get the same
//! largest probability (the "update management" of Gokmen et al., Front. Neurosci. 2017).
//! When an update asks for more pulses than the configured train length allows, the train
//! is lengthened (never clipped), so the expected change is always the requested one.
//!
//! The sign of `x_i δ_j scale` chooses which device of the differential pair is pulsed
//! ([`PairUpdate`]). Every pulse goes through [`Device::apply_pulse`], so step
//! nonlinearity, up/down asymmetry, cycle-to-cycle noise, bounds, stochastic switching and
//! write energy all apply; the pulses and their energy go to the tile's ledger, and the
//! read cache is rebuilt afterwards. Random streams are derived from (seed, tile id,
//! [`UPDATE`], update index, row), so updates are bit-identical for any thread count.

use anyhow::{Context, Result, ensure};
use rand::RngExt;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::config::WeightEncoding;
use super::energy::EnergyBreakdown;
use super::tile::Tile;
use crate::device::{Device, Polarity, WriteReport};
use crate::rng::{XbarRng, stream};

/// Stream purpose tag of pulsed updates (declared with the tile's other tags).
pub use super::tile::tags::UPDATE;
/// Stream index (after [`UPDATE`]) of the probe cells that measure the nominal step.
const STEP_PROBE: u64 = u64::MAX;
/// Cells probed to measure the mean conductance step of one nominal pulse.
const STEP_PROBE_CELLS: usize = 64;
/// Bits per word of a pulse train.
const WORD_BITS: usize = 64;
/// Stream index (after [`UPDATE`] and the update index) of the per-update evolution of the
/// cells ([`Device::after_update`]: decay, diffusion), followed by the row.
const AFTER_UPDATE: u64 = u64::MAX;

/// Which device of a differential pair a pulse goes to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PairUpdate {
    /// Keep the pair in the mapping's canonical form (one device at the bottom of its
    /// window): to raise the weight, RESET G- while it is above its minimum, otherwise
    /// SET G+ (mirrored to lower it). Uses both SET and RESET steps of the device.
    #[default]
    Canonical,
    /// Only potentiate: SET G+ to raise the weight, SET G- to lower it (the usual choice
    /// for PCM, whose RESET is abrupt; the pair saturates and needs occasional refresh).
    SetOnly,
}

/// How a dense update turns a device's requested change `|ΔW| / Δw_min` into a whole
/// number of pulses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PulseRounding {
    /// Round down, plus one more pulse with probability equal to the remainder: the
    /// expected change is the requested one.
    #[default]
    Stochastic,
    /// Round to the nearest count, halves up (NeuroSim's `truncate` with threshold 0.5,
    /// MLP_NeuroSim_V3.0 formula.cpp): changes below half a step are dropped.
    Nearest,
}

/// How many pulses a device's weight change asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PulseCount {
    /// `|ΔW| / Δw_min`, Δw_min the weight change of one nominal pulse measured on the
    /// device ([`Tile::weight_step`]).
    #[default]
    MeasuredStep,
    /// `|ΔW| / c · L`, c the weight spanned by one device's window and L the device's level
    /// count in the direction of the change ([`Device::window_levels`]): NeuroSim's
    /// `numPulse = ΔW / (maxWeight - minWeight) · maxNumLevelLTP` (or LTD), whatever the
    /// step nonlinearity. Dense updates of RRAM-model devices only.
    WindowLevels,
}

/// Settings of pulsed updates.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PulsedUpdateConfig {
    /// Length BL of the stochastic pulse trains, slots (Gokmen & Vlasov 2016 use 10);
    /// lengthened for an update that needs more pulses than BL on one device.
    pub pulse_train_length: u32,
    /// Which device of a pair each pulse goes to.
    pub pair_update: PairUpdate,
    /// Pulse counts of dense (device-by-device) updates.
    pub rounding: PulseRounding,
    /// What one pulse is worth when dense updates count pulses.
    pub pulse_count: PulseCount,
}

impl Default for PulsedUpdateConfig {
    fn default() -> Self {
        Self {
            pulse_train_length: 10,
            pair_update: PairUpdate::Canonical,
            rounding: PulseRounding::Stochastic,
            pulse_count: PulseCount::MeasuredStep,
        }
    }
}

impl PulsedUpdateConfig {
    /// Check every field.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.pulse_train_length >= 1,
            "pulse_train_length must be at least 1 slot (got 0)"
        );
        Ok(())
    }
}

/// What one pulsed update did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PulsedUpdateReport {
    /// Pulses applied to devices, their energy, and the (parallel) pulsing time.
    pub write: WriteReport,
    /// Outer products applied (each its own pair of pulse trains).
    pub outer_products: usize,
    /// Total train slots over the outer products.
    pub slots: u64,
}

/// Pulse-train parameters of one outer product.
#[derive(Clone, Copy, Debug)]
struct TrainPlan {
    /// Slots in each train.
    slots: usize,
    /// Probability per unit |x_i| of a row bit.
    row_gain: f64,
    /// Probability per unit |δ_j| of a column bit.
    col_gain: f64,
    /// Sign of `scale`.
    negative: bool,
}

impl TrainPlan {
    /// Plan for `scale · δ xᵀ` with weight step `dw`: the largest element needs
    /// `n = |scale| max|x| max|δ| / dw` pulses on average; slots = max(BL, ceil n) and
    /// both largest probabilities are sqrt(n / slots), so E[pulses_ij] = |ΔW_ij| / dw.
    fn new(x: &[f32], delta: &[f32], scale: f64, dw: f64, length: u32) -> Option<Self> {
        let max_abs = |v: &[f32]| v.iter().fold(0f64, |m, &a| m.max(f64::from(a).abs()));
        let (x_max, d_max) = (max_abs(x), max_abs(delta));
        let needed = scale.abs() * x_max * d_max / dw;
        if needed <= 0.0 || !needed.is_finite() {
            return None;
        }
        let slots = (needed.ceil() as usize).max(length as usize);
        let peak = (needed / slots as f64).sqrt();
        Some(Self {
            slots,
            row_gain: peak / x_max,
            col_gain: peak / d_max,
            negative: scale < 0.0,
        })
    }

    fn words(&self) -> usize {
        self.slots.div_ceil(WORD_BITS)
    }
}

/// Draw a pulse train of `plan.slots` bits, each set with probability `p`, into `bits`.
fn draw_train(bits: &mut [u64], slots: usize, p: f64, rng: &mut XbarRng) {
    bits.iter_mut().for_each(|w| *w = 0);
    if p <= 0.0 {
        return;
    }
    for k in 0..slots {
        if rng.random::<f64>() < p {
            bits[k / WORD_BITS] |= 1 << (k % WORD_BITS);
        }
    }
}

/// Coincident slots of two trains.
fn coincidences(a: &[u64], b: &[u64]) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x & y).count_ones()).sum()
}

/// What pulsing one row needs to know.
struct RowPulser<'a, D: Device> {
    device: &'a D,
    policy: PairUpdate,
    /// Reference encoding: only G+ is pulsed, G- is the fixed reference.
    reference: bool,
    t_s: f64,
    half_step_s: f64,
}

impl<D: Device> RowPulser<'_, D> {
    /// Apply `n` pulses that raise (`up`) or lower the weight of `pair` = [G+, G-].
    fn pulse_pair(&self, pair: &mut [D::State], up: bool, n: u32, rng: &mut XbarRng) -> f64 {
        let (grow, shrink) = if up { (0, 1) } else { (1, 0) };
        let mut energy_j = 0.0;
        for _ in 0..n {
            let (cell, polarity) = match self.policy {
                _ if self.reference => (0, if up { Polarity::Set } else { Polarity::Reset }),
                PairUpdate::SetOnly => (grow, Polarity::Set),
                PairUpdate::Canonical => {
                    let g = self.device.conductance_at(&pair[shrink], self.t_s);
                    let (g_floor, _) = self.device.g_window(&pair[shrink]);
                    if g > g_floor + self.half_step_s {
                        (shrink, Polarity::Reset)
                    } else {
                        (grow, Polarity::Set)
                    }
                }
            };
            let pulse = self.device.nominal_pulse(polarity);
            energy_j += self
                .device
                .apply_pulse(&mut pair[cell], &pulse, rng)
                .energy_j;
        }
        energy_j
    }
}

/// Pulses, energy and the devices touched by the pulsing of one row.
struct RowOutcome {
    pulses: u32,
    energy_j: f64,
    /// (column, G+ + G- before the update in siemens) of every pair pulsed.
    touched: Vec<(usize, f64)>,
    seen: Vec<bool>,
}

impl RowOutcome {
    fn new(n_out: usize) -> Self {
        Self {
            pulses: 0,
            energy_j: 0.0,
            touched: Vec::new(),
            seen: vec![false; n_out],
        }
    }

    /// Apply `n` pulses to the pair of column `col` and remember its pre-update sum.
    fn pulse<D: Device>(
        &mut self,
        pulser: &RowPulser<'_, D>,
        col: usize,
        pair: &mut [D::State],
        (up, n): (bool, u32),
        rng: &mut XbarRng,
    ) {
        if !self.seen[col] {
            self.seen[col] = true;
            let g = |cell| pulser.device.conductance_at(cell, pulser.t_s);
            self.touched.push((col, g(&pair[0]) + g(&pair[1])));
        }
        self.energy_j += pulser.pulse_pair(pair, up, n, rng);
        self.pulses += n;
    }
}

/// Sum the pulses and energy of every row.
fn totals(rows: &[RowOutcome]) -> (u32, f64) {
    rows.iter()
        .fold((0, 0.0), |(n, e), r| (n + r.pulses, e + r.energy_j))
}

impl<D: Device> Tile<D> {
    /// Mean conductance change of one nominal pulse, siemens: the step the device declares
    /// ([`Device::declared_step_s`]), or else the average of |ΔG| over a SET and a RESET
    /// pulse on probe cells programmed to the middle of the nominal window (a fixed
    /// stream, so the value is reproducible).
    pub fn nominal_step_s(&self) -> Result<f64> {
        let device = &self.device;
        if let Some(step_s) = device.declared_step_s() {
            return Ok(step_s);
        }
        let mut rng = stream(self.seed, &[self.tile_id, UPDATE, STEP_PROBE]);
        let g_mid_s = self.g_min_s + 0.5 * self.g_unit_s;
        let mut total = 0.0;
        for _ in 0..STEP_PROBE_CELLS {
            let mut cell = device.fabricate(&mut rng);
            for polarity in [Polarity::Set, Polarity::Reset] {
                device.program(&mut cell, g_mid_s, &mut rng);
                let before = device.conductance_at(&cell, 0.0);
                device.apply_pulse(&mut cell, &device.nominal_pulse(polarity), &mut rng);
                total += (device.conductance_at(&cell, 0.0) - before).abs();
            }
        }
        let step_s = total / (2 * STEP_PROBE_CELLS) as f64;
        ensure!(
            step_s > 0.0 && step_s.is_finite(),
            "the device's nominal pulse does not change the conductance of cells in the \
             middle of its window: it cannot be trained with pulsed updates"
        );
        Ok(step_s)
    }

    /// Weight change of one nominal pulse, Δw_min = c · ΔG / (g_max - g_min), in the
    /// units of the programmed weights (c = w_max for differential pairs, 2 w_max against a
    /// reference device).
    pub fn weight_step(&self) -> Result<f64> {
        let mapping = self
            .mapping
            .as_ref()
            .context("pulsed updates need a programmed tile: call program() first")?;
        Ok(mapping.plane_factors()[0] * self.nominal_step_s()? / self.g_unit_s)
    }

    /// Apply `ΔW = scale · Σ_r δ_r x_rᵀ` by coincident stochastic pulse trains (see the
    /// module documentation). `delta` is `rows x n_out` (post-synaptic factors), `x` is
    /// `rows x n_in` (pre-synaptic factors), both row-major; `update_index` numbers the
    /// update (it selects the random streams, so use a new one for every update).
    pub fn apply_outer_product(
        &mut self,
        delta: &[f32],
        x: &[f32],
        rows: usize,
        scale: f32,
        config: &PulsedUpdateConfig,
        update_index: u64,
    ) -> Result<PulsedUpdateReport> {
        config
            .validate()
            .context("invalid pulsed-update settings")?;
        ensure!(
            config.pulse_count == PulseCount::MeasuredStep,
            "pulses.pulse_count = \"window_levels\" applies to dense (device-by-device) \
             updates; outer-product updates size their trains by the measured step"
        );
        self.check_update_shapes(delta, x, rows)?;
        let dw = self.weight_step()?;
        let (n_in, n_out) = (self.n_in, self.n_out);
        let plans: Vec<Option<TrainPlan>> = (0..rows)
            .map(|r| {
                let xr = &x[r * n_in..(r + 1) * n_in];
                let dr = &delta[r * n_out..(r + 1) * n_out];
                TrainPlan::new(xr, dr, f64::from(scale), dw, config.pulse_train_length)
            })
            .collect();
        let col_trains = self.column_trains(delta, &plans, update_index);
        let policy = config.pair_update;
        let rows = self.pulse_rows((delta, x), &plans, &col_trains, policy, update_index)?;
        let (pulses, energy_j) = totals(&rows);
        let slots: u64 = plans.iter().flatten().map(|p| p.slots as u64).sum();
        let width_s = self.device.nominal_pulse(Polarity::Set).width_s;
        // Rows and columns are pulsed in parallel; each train runs once per polarity.
        let write = WriteReport {
            pulses,
            energy_j,
            time_s: 2.0 * slots as f64 * width_s,
        };
        self.finish_update(write, &rows, update_index)?;
        Ok(PulsedUpdateReport {
            write,
            outer_products: plans.len(),
            slots,
        })
    }

    /// Apply a dense update `ΔW` (row-major `n_out x n_in`, like the programmed matrix)
    /// device by device: device ij receives |ΔW_ij| / Δw_min pulses rounded as
    /// `config.rounding` says (stochastically by default, so the expected change is
    /// ΔW_ij), serially addressed rather than by coincident trains.
    pub fn apply_dense_update(
        &mut self,
        delta_w: &[f32],
        config: &PulsedUpdateConfig,
        update_index: u64,
    ) -> Result<PulsedUpdateReport> {
        config
            .validate()
            .context("invalid pulsed-update settings")?;
        let (n_in, n_out) = (self.n_in, self.n_out);
        ensure!(
            delta_w.len() == n_in * n_out && delta_w.iter().all(|d| d.is_finite()),
            "dense update holds {} values (finite ones needed), the tile needs n_out x n_in = \
             {n_out} x {n_in}",
            delta_w.len()
        );
        self.check_update_shapes(&[], &[], 0)?;
        let (dw_up, dw_down) = self.dense_steps(config.pulse_count)?;
        let pulser = RowPulser {
            device: &self.device,
            policy: config.pair_update,
            reference: self.config.mapping.encoding == WeightEncoding::Reference,
            t_s: self.cache.as_ref().map_or(0.0, |c| c.t_s),
            half_step_s: 0.5 * self.nominal_step_s()?,
        };
        let (seed, tile_id, rounding) = (self.seed, self.tile_id, config.rounding);
        let (dead_rows, dead_cols) = (&self.dead_rows, &self.dead_cols);
        let rows: Vec<RowOutcome> = self
            .cells
            .par_chunks_mut(n_out * 2)
            .enumerate()
            .map(|(row, cells)| {
                let mut rng = stream(seed, &[tile_id, UPDATE, update_index, row as u64]);
                let mut outcome = RowOutcome::new(n_out);
                for col in 0..n_out {
                    let d = f64::from(delta_w[col * n_in + row]);
                    if d == 0.0 || dead_rows[row] || dead_cols[col] {
                        continue;
                    }
                    let steps = d.abs() / if d > 0.0 { dw_up } else { dw_down };
                    let n = match rounding {
                        PulseRounding::Stochastic => {
                            steps.floor() as u32 + u32::from(rng.random::<f64>() < steps.fract())
                        }
                        PulseRounding::Nearest => (steps + 0.5).floor() as u32,
                    };
                    if n == 0 && rounding == PulseRounding::Nearest {
                        continue;
                    }
                    let pair = &mut cells[col * 2..col * 2 + 2];
                    outcome.pulse(&pulser, col, pair, (d > 0.0, n), &mut rng);
                }
                outcome
            })
            .collect();
        let (pulses, energy_j) = totals(&rows);
        let width_s = self.device.nominal_pulse(Polarity::Set).width_s;
        // Devices are addressed one at a time.
        let write = WriteReport {
            pulses,
            energy_j,
            time_s: f64::from(pulses) * width_s,
        };
        self.finish_update(write, &rows, update_index)?;
        Ok(PulsedUpdateReport {
            write,
            outer_products: 0,
            slots: 0,
        })
    }

    /// Weight change of one pulse that raises and one that lowers a weight, as `count`
    /// values pulses.
    fn dense_steps(&self, count: PulseCount) -> Result<(f64, f64)> {
        match count {
            PulseCount::MeasuredStep => {
                let dw = self.weight_step()?;
                Ok((dw, dw))
            }
            PulseCount::WindowLevels => {
                let mapping = self
                    .mapping
                    .as_ref()
                    .context("pulsed updates need a programmed tile: call program() first")?;
                let span = mapping.plane_factors()[0];
                let levels = |polarity| {
                    self.device.window_levels(polarity).context(
                        "pulses.pulse_count = \"window_levels\" needs a device with level \
                         counts (an rram-model preset); use \"measured_step\"",
                    )
                };
                // A raise is counted in potentiation levels, a lowering in depression
                // levels (exact for the reference encoding, where only G+ moves).
                Ok((
                    span / levels(Polarity::Set)?,
                    span / levels(Polarity::Reset)?,
                ))
            }
        }
    }

    /// Record an update in the ledger, let every cell evolve once if the device says so
    /// ([`Device::after_update`], then the read cache is rebuilt), and bring the read cache
    /// up to date (see [`Tile::refresh_pairs`]).
    fn finish_update(
        &mut self,
        write: WriteReport,
        rows: &[RowOutcome],
        update_index: u64,
    ) -> Result<()> {
        self.ledger.record(EnergyBreakdown::from_write(&write));
        if self.device.evolves_per_update() {
            self.evolve_cells(update_index);
            let t_s = self.read_time_s().unwrap_or(0.0);
            return self
                .set_read_time(t_s)
                .context("rebuilding the read cache after the cells' per-update evolution");
        }
        self.refresh_pairs(
            rows.iter()
                .enumerate()
                .map(|(row, outcome)| (row, outcome.touched.as_slice())),
        )
        .context("refreshing the read cache after a pulsed update")
    }

    /// Every cell's per-update evolution (aihwkit's decay and diffusion, once per
    /// mini-batch), each row from its own stream (seed, tile, UPDATE, update index,
    /// AFTER_UPDATE, row), so the result does not depend on the thread count.
    fn evolve_cells(&mut self, update_index: u64) {
        let (seed, tile_id, n_out) = (self.seed, self.tile_id, self.n_out);
        let device = &self.device;
        self.cells
            .par_chunks_mut(n_out * 2)
            .enumerate()
            .for_each(|(row, cells)| {
                let path = [tile_id, UPDATE, update_index, AFTER_UPDATE, row as u64];
                let mut rng = stream(seed, &path);
                for cell in cells {
                    device.after_update(cell, &mut rng);
                }
            });
    }

    fn check_update_shapes(&self, delta: &[f32], x: &[f32], rows: usize) -> Result<()> {
        ensure!(
            delta.len() == rows * self.n_out && x.len() == rows * self.n_in,
            "outer-product update of {rows} rows ({} post, {} pre values) does not fit a tile \
             of {} inputs x {} outputs",
            delta.len(),
            x.len(),
            self.n_in,
            self.n_out
        );
        ensure!(
            self.planes == 1 && self.config.mapping.encoding.is_analog(),
            "pulsed updates need analog weights without bit slicing \
             (mapping.encoding = \"analog\" or \"reference\", no mapping.bit_slicing)"
        );
        ensure!(
            delta.iter().chain(x).all(|v| v.is_finite()),
            "outer-product update holds non-finite values"
        );
        Ok(())
    }

    /// Column trains of every outer product, `[r][col * words + w]`, from the stream
    /// (seed, tile, UPDATE, update index).
    fn column_trains(
        &self,
        delta: &[f32],
        plans: &[Option<TrainPlan>],
        update_index: u64,
    ) -> Vec<Vec<u64>> {
        let n_out = self.n_out;
        let mut rng = stream(self.seed, &[self.tile_id, UPDATE, update_index]);
        plans
            .iter()
            .enumerate()
            .map(|(r, plan)| {
                let Some(plan) = plan else { return Vec::new() };
                let words = plan.words();
                let mut bits = vec![0u64; n_out * words];
                for (col, train) in bits.chunks_mut(words).enumerate() {
                    let p = f64::from(delta[r * n_out + col]).abs() * plan.col_gain;
                    if !self.dead_cols[col] {
                        draw_train(train, plan.slots, p, &mut rng);
                    }
                }
                bits
            })
            .collect()
    }

    /// Pulse every row in parallel; returns what happened in each row.
    fn pulse_rows(
        &mut self,
        factors: (&[f32], &[f32]),
        plans: &[Option<TrainPlan>],
        col_trains: &[Vec<u64>],
        policy: PairUpdate,
        update_index: u64,
    ) -> Result<Vec<RowOutcome>> {
        let pulser = RowPulser {
            device: &self.device,
            policy,
            reference: self.config.mapping.encoding == WeightEncoding::Reference,
            t_s: self.cache.as_ref().map_or(0.0, |c| c.t_s),
            half_step_s: 0.5 * self.nominal_step_s()?,
        };
        let rows = RowContext {
            delta: factors.0,
            x: factors.1,
            plans,
            col_trains,
            dead_rows: &self.dead_rows,
            n_in: self.n_in,
            n_out: self.n_out,
            seed: self.seed,
            tile_id: self.tile_id,
            update_index,
        };
        Ok(self
            .cells
            .par_chunks_mut(rows.n_out * 2)
            .enumerate()
            .map(|(row, row_cells)| rows.pulse_row(&pulser, row, row_cells))
            .collect())
    }
}

/// Everything the pulsing of one row reads.
struct RowContext<'a> {
    delta: &'a [f32],
    x: &'a [f32],
    plans: &'a [Option<TrainPlan>],
    col_trains: &'a [Vec<u64>],
    dead_rows: &'a [bool],
    n_in: usize,
    n_out: usize,
    seed: u64,
    tile_id: u64,
    update_index: u64,
}

impl RowContext<'_> {
    /// Draw row `row`'s trains from its own stream (which then drives the device noise of
    /// the row) and pulse its devices where the trains coincide; returns (pulses, energy).
    fn pulse_row<D: Device>(
        &self,
        pulser: &RowPulser<'_, D>,
        row: usize,
        cells: &mut [D::State],
    ) -> RowOutcome {
        let path = [self.tile_id, UPDATE, self.update_index, row as u64];
        let mut rng = stream(self.seed, &path);
        let mut outcome = RowOutcome::new(self.n_out);
        if self.dead_rows[row] {
            return outcome;
        }
        let mut train = Vec::new();
        for (r, plan) in self.plans.iter().enumerate() {
            let Some(plan) = plan else { continue };
            let xi = self.x[r * self.n_in + row];
            if xi == 0.0 {
                continue;
            }
            let words = plan.words();
            train.resize(words, 0);
            draw_train(
                &mut train,
                plan.slots,
                f64::from(xi).abs() * plan.row_gain,
                &mut rng,
            );
            if train.iter().all(|&w| w == 0) {
                continue;
            }
            for col in 0..self.n_out {
                let col_train = &self.col_trains[r][col * words..(col + 1) * words];
                let n = coincidences(&train, col_train);
                if n == 0 {
                    continue;
                }
                let dj = self.delta[r * self.n_out + col];
                let up = ((xi > 0.0) == (dj > 0.0)) != plan.negative;
                let pair = &mut cells[col * 2..col * 2 + 2];
                outcome.pulse(pulser, col, pair, (up, n), &mut rng);
            }
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crossbar::TileConfig;
    use crate::device::preset;

    /// Every device stays inside its own (fabricated) conductance window, however hard the
    /// updates push: the bounds of the device models hold under pulsed training.
    #[test]
    fn pulsed_updates_respect_device_bounds_for_every_preset() {
        let (n_in, n_out) = (6, 5);
        for name in preset::builtin_names() {
            let device = preset::load(name, &toml::Table::new()).unwrap();
            let mut tile = Tile::new(device, n_in, n_out, TileConfig::ideal(), 3, 0).unwrap();
            let w: Vec<f64> = (0..n_in * n_out).map(|k| (k as f64 * 0.37).sin()).collect();
            tile.program(&w).unwrap();
            let delta: Vec<f32> = (0..n_out).map(|j| 1.0 - 0.4 * j as f32).collect();
            let x: Vec<f32> = (0..n_in).map(|i| 0.5 - 0.2 * i as f32).collect();
            for (k, scale) in [3.0f32, 3.0, -6.0, -6.0, 9.0].into_iter().enumerate() {
                for policy in [PairUpdate::Canonical, PairUpdate::SetOnly] {
                    let config = PulsedUpdateConfig {
                        pulse_train_length: 10,
                        pair_update: policy,
                        ..Default::default()
                    };
                    let index = 2 * k as u64 + u64::from(policy == PairUpdate::SetOnly);
                    tile.apply_outer_product(&delta, &x, 1, scale, &config, index)
                        .unwrap();
                }
            }
            assert!(
                tile.ledger().total.programming_pulses > 0,
                "{name}: no pulses"
            );
            let t_s = tile.read_time_s().unwrap();
            for cell in &tile.cells {
                let g = tile.device.conductance_at(cell, t_s);
                let (lo, hi) = tile.device.g_window(cell);
                let slack = 1e-9 * (hi - lo);
                assert!(
                    g >= lo - slack && g <= hi + slack,
                    "{name}: {g} outside [{lo}, {hi}]"
                );
            }
        }
    }

    /// The incremental cache update after a pulsed update leaves every copy of the read
    /// cache (f32 conductances and variances in both layouts, bfloat16 variances) equal to
    /// a full rebuild at the same read time.
    #[test]
    fn incremental_cache_update_matches_a_rebuild() {
        let (n_in, n_out) = (7, 4);
        let device = preset::load("rram_hfo2", &toml::Table::new()).unwrap();
        let mut config = TileConfig::ideal();
        config.periphery.read_noise = true;
        let mut tile = Tile::new(device, n_in, n_out, config, 5, 0).unwrap();
        let w: Vec<f64> = (0..n_in * n_out).map(|k| (k as f64 * 0.61).cos()).collect();
        tile.program(&w).unwrap();
        let delta: Vec<f32> = (0..n_out).map(|j| 0.8 - 0.5 * j as f32).collect();
        let x: Vec<f32> = (0..n_in).map(|i| 0.3 * i as f32 - 0.9).collect();
        let update = PulsedUpdateConfig {
            pulse_train_length: 10,
            pair_update: PairUpdate::Canonical,
            ..Default::default()
        };
        tile.apply_outer_product(&delta, &x, 1, 4.0, &update, 0)
            .unwrap();
        assert!(
            tile.ledger().total.programming_pulses > 0,
            "no pulses applied"
        );
        let incremental = tile.cache.take().unwrap();
        let rebuilt = tile.build_cache(incremental.t_s).unwrap();
        assert_eq!(incremental.g, rebuilt.g);
        assert_eq!(incremental.g_t, rebuilt.g_t);
        assert_eq!(incremental.var, rebuilt.var);
        assert_eq!(incremental.var_t, rebuilt.var_t);
        assert_eq!(incremental.var_bf16, rebuilt.var_bf16);
        assert_eq!(incremental.var_t_bf16, rebuilt.var_t_bf16);
    }
}
