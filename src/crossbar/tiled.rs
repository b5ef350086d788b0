//! Tiling: a weight matrix of any size split over fixed-size tiles, with digital
//! accumulation of the partial sums.
//!
//! Input block r (rows r*max_rows..) and output block c (columns c*max_cols..) go to tile
//! (r, c), which has its own DACs, ADCs and random streams (tile id r * n_col_blocks + c).
//! Every tile uses the same weight scale (the largest |w| of the whole matrix, or the
//! configured one) so partial sums add in weight units. Forward: y[c-block] = sum over r
//! of tile(r, c) x[r-block]; transposed: y[r-block] = sum over c of tile(r, c)^T
//! x[c-block].

use anyhow::{Result, ensure};

use super::config::TileConfig;
use super::energy::EnergyBreakdown;
use super::read::TileRead;
use super::reprogram::WeightWrite;
use super::tile::{Direction, ProgramReport, Tile};
use super::update::{PulsedUpdateConfig, PulsedUpdateReport};
use crate::device::{Device, Polarity};
use crate::linalg::check_batch_shapes;

/// One read operation of a tiled matrix in progress: one [`TileRead`] per tile (see
/// [`TiledMatrix::begin_read`]).
#[derive(Clone, Debug)]
pub struct MatrixRead {
    direction: Direction,
    tiles: Vec<TileRead>,
}

impl MatrixRead {
    /// The direction of the read.
    pub fn direction(&self) -> Direction {
        self.direction
    }
}

/// Devices per weight and bit slice: a differential (or 2T2R) pair.
const DEVICES_PER_WEIGHT: f64 = 2.0;
/// A tile's read cache per device beside its state, bytes: `G(t)` and `sigma^2(t)` in `f32`
/// in both layouts (4 x 4 bytes) and `sigma^2` in bfloat16 (2 bytes); see
/// [`Tile::set_read_time`].
const CACHE_BYTES_PER_DEVICE: f64 = 18.0;

/// Estimated memory of `weights` weights programmed on tiles configured by `config`, bytes:
/// every device's state and read cache (a pair per weight and bit slice). Checked against
/// the available memory before large matrices are fabricated.
pub fn deployed_bytes(weights: f64, config: &TileConfig) -> f64 {
    let slices = config
        .mapping
        .bit_slicing
        .as_ref()
        .map_or(1.0, |b| f64::from(b.slices));
    let per_device = std::mem::size_of::<crate::device::AnyState>() as f64 + CACHE_BYTES_PER_DEVICE;
    DEVICES_PER_WEIGHT * slices * weights * per_device
}

/// A weight matrix spread over a grid of tiles.
pub struct TiledMatrix<D: Device + Clone> {
    n_in: usize,
    n_out: usize,
    max_rows: usize,
    max_cols: usize,
    /// Tiles, row-block major: index r * col_blocks + c.
    tiles: Vec<Tile<D>>,
    row_blocks: usize,
    col_blocks: usize,
}

/// Split `n` lines into blocks of at most `max` lines: (start, len) of each.
fn blocks(n: usize, max: usize) -> Vec<(usize, usize)> {
    (0..n.div_ceil(max))
        .map(|b| (b * max, max.min(n - b * max)))
        .collect()
}

impl<D: Device + Clone> TiledMatrix<D> {
    /// Fabricate the tiles for an n_out x n_in weight matrix (inputs n_in).
    pub fn new(
        device: D,
        n_in: usize,
        n_out: usize,
        config: TileConfig,
        seed: u64,
    ) -> Result<Self> {
        config.validate()?;
        ensure!(
            n_in > 0 && n_out > 0,
            "a matrix needs at least one input and one output (got {n_in} x {n_out})"
        );
        let (max_rows, max_cols) = (config.max_rows, config.max_cols);
        let rows = blocks(n_in, max_rows);
        let cols = blocks(n_out, max_cols);
        let mut tiles = Vec::with_capacity(rows.len() * cols.len());
        for (r, &(_, n_r)) in rows.iter().enumerate() {
            for (c, &(_, n_c)) in cols.iter().enumerate() {
                let id = (r * cols.len() + c) as u64;
                tiles.push(Tile::new(
                    device.clone(),
                    n_r,
                    n_c,
                    config.clone(),
                    seed,
                    id,
                )?);
            }
        }
        Ok(Self {
            n_in,
            n_out,
            max_rows,
            max_cols,
            tiles,
            row_blocks: rows.len(),
            col_blocks: cols.len(),
        })
    }

    /// Number of inputs.
    pub fn n_in(&self) -> usize {
        self.n_in
    }

    /// Number of outputs.
    pub fn n_out(&self) -> usize {
        self.n_out
    }

    /// The tiles, row-block major (tile (r, c) at r * col_blocks + c).
    pub fn tiles(&self) -> &[Tile<D>] {
        &self.tiles
    }

    /// Mutable access to the tiles.
    pub fn tiles_mut(&mut self) -> &mut [Tile<D>] {
        &mut self.tiles
    }

    /// (row blocks, column blocks) of the grid.
    pub fn grid(&self) -> (usize, usize) {
        (self.row_blocks, self.col_blocks)
    }

    /// Program `weights` (row-major n_out x n_in) over all tiles with one common weight
    /// scale; returns the summed report.
    pub fn program(&mut self, weights: &[f64]) -> Result<ProgramReport> {
        ensure!(
            weights.len() == self.n_in * self.n_out,
            "weight matrix has {} values, expected n_out x n_in = {} x {} = {}",
            weights.len(),
            self.n_out,
            self.n_in,
            self.n_in * self.n_out
        );
        let configured = self.tiles[0].config().mapping.weight_max;
        let largest = weights.iter().fold(0.0f64, |m, w| m.max(w.abs()));
        let w_max = configured.unwrap_or(if largest > 0.0 { largest } else { 1.0 });
        let mut reports = Vec::with_capacity(self.tiles.len());
        let rows = blocks(self.n_in, self.max_rows);
        let cols = blocks(self.n_out, self.max_cols);
        for (r, &(r0, n_r)) in rows.iter().enumerate() {
            for (c, &(c0, n_c)) in cols.iter().enumerate() {
                let sub: Vec<f64> = (0..n_c)
                    .flat_map(|j| weights[(c0 + j) * self.n_in + r0..][..n_r].iter().copied())
                    .collect();
                reports.push(self.tiles[r * self.col_blocks + c].program_with_scale(&sub, w_max)?);
            }
        }
        Ok(combine(&reports))
    }

    /// Re-program the weights named by `writes` (indices of the whole matrix, each weight
    /// at most once) on their tiles (see [`Tile::reprogram`]); returns the summed report.
    pub fn reprogram(&mut self, writes: &[WeightWrite]) -> Result<ProgramReport> {
        let mut per_tile: Vec<Vec<WeightWrite>> = vec![Vec::new(); self.tiles.len()];
        for w in writes {
            ensure!(
                w.output < self.n_out && w.input < self.n_in,
                "weight write ({}, {}) is outside the {} outputs x {} inputs matrix",
                w.output,
                w.input,
                self.n_out,
                self.n_in
            );
            let (r, c) = (w.input / self.max_rows, w.output / self.max_cols);
            per_tile[r * self.col_blocks + c].push(WeightWrite {
                output: w.output % self.max_cols,
                input: w.input % self.max_rows,
                weight: w.weight,
            });
        }
        let mut reports = Vec::new();
        for (tile, tile_writes) in self.tiles.iter_mut().zip(&per_tile) {
            if !tile_writes.is_empty() {
                reports.push(tile.reprogram(tile_writes)?);
            }
        }
        Ok(combine(&reports))
    }

    /// Sense every weight of a binary or ternary matrix once with the tiles' sense
    /// amplifiers (see [`Tile::sense_weights`]): weights in {-1, 0, +1}, row-major
    /// n_out x n_in.
    pub fn sense_weights(&mut self) -> Result<Vec<i8>> {
        let n_in = self.n_in;
        let mut weights = vec![0i8; n_in * self.n_out];
        let rows = blocks(self.n_in, self.max_rows);
        let cols = blocks(self.n_out, self.max_cols);
        for (r, &(r0, n_r)) in rows.iter().enumerate() {
            for (c, &(c0, n_c)) in cols.iter().enumerate() {
                let block = self.tiles[r * self.col_blocks + c].sense_weights()?;
                for j in 0..n_c {
                    weights[(c0 + j) * n_in + r0..][..n_r]
                        .copy_from_slice(&block[j * n_r..][..n_r]);
                }
            }
        }
        Ok(weights)
    }

    /// Move every tile to inference time `t_s` (seconds after programming).
    pub fn set_read_time(&mut self, t_s: f64) -> Result<()> {
        self.tiles.iter_mut().try_for_each(|t| t.set_read_time(t_s))
    }

    /// y = W x for `batch` vectors (`x` batch x n_in, `y` batch x n_out, row-major).
    pub fn forward_batch(&mut self, x: &[f32], batch: usize, y: &mut [f32]) -> Result<()> {
        self.read_batch(Direction::Forward, x, batch, y)
    }

    /// y = W^T x for `batch` vectors (`x` batch x n_out, `y` batch x n_in).
    pub fn transposed_batch(&mut self, x: &[f32], batch: usize, y: &mut [f32]) -> Result<()> {
        self.read_batch(Direction::Transposed, x, batch, y)
    }

    /// MVM in `direction`: each tile reads its block of the inputs, partial sums are
    /// added digitally.
    pub fn read_batch(
        &mut self,
        direction: Direction,
        x: &[f32],
        batch: usize,
        y: &mut [f32],
    ) -> Result<()> {
        let mut read = self.begin_read(direction);
        self.read_part(&mut read, (x, &[]), batch, y)?;
        self.end_read(read);
        Ok(())
    }

    /// Start one read operation of every tile in `direction`, its vectors handed over in
    /// parts by [`TiledMatrix::read_part`] (see [`Tile::begin_read`]).
    pub fn begin_read(&mut self, direction: Direction) -> MatrixRead {
        MatrixRead {
            direction,
            tiles: self
                .tiles
                .iter_mut()
                .map(|t| t.begin_read(direction))
                .collect(),
        }
    }

    /// The next `batch` vectors of `read` (`x`, divided by their `scales` as in
    /// [`Tile::read_part`]): each tile reads
    /// its block of the inputs, partial sums are added digitally. Every part but the last
    /// must hold a multiple of [`super::read::CHUNK_VECTORS`] vectors.
    pub fn read_part(
        &self,
        read: &mut MatrixRead,
        (x, scales): (&[f32], &[f32]),
        batch: usize,
        y: &mut [f32],
    ) -> Result<()> {
        let direction = read.direction;
        let (n_x, n_y) = match direction {
            Direction::Forward => (self.n_in, self.n_out),
            Direction::Transposed => (self.n_out, self.n_in),
        };
        check_batch_shapes("tiled MVM", x, y, batch, n_x, n_y)?;
        if let ([tile], [part]) = (self.tiles.as_slice(), read.tiles.as_mut_slice()) {
            return tile.read_part(part, (x, scales), batch, y);
        }
        let rows = blocks(self.n_in, self.max_rows);
        let cols = blocks(self.n_out, self.max_cols);
        let (x_blocks, y_blocks) = match direction {
            Direction::Forward => (&rows, &cols),
            Direction::Transposed => (&cols, &rows),
        };
        y.fill(0.0);
        let mut partial = Vec::new();
        for &(x0, n_xb) in x_blocks.iter() {
            let x_sub = gather(x, n_x, x0, n_xb);
            for &(y0, n_yb) in y_blocks.iter() {
                let (r, c) = match direction {
                    Direction::Forward => (x0 / self.max_rows, y0 / self.max_cols),
                    Direction::Transposed => (y0 / self.max_rows, x0 / self.max_cols),
                };
                partial.resize(batch * n_yb, 0.0);
                let t = r * self.col_blocks + c;
                let part = (&x_sub[..], scales);
                self.tiles[t].read_part(&mut read.tiles[t], part, batch, &mut partial)?;
                for (y_row, p_row) in y.chunks_mut(n_y).zip(partial.chunks(n_yb)) {
                    for (a, &b) in y_row[y0..y0 + n_yb].iter_mut().zip(p_row) {
                        *a += b;
                    }
                }
            }
        }
        Ok(())
    }

    /// Record the finished `read` in every tile's ledger.
    pub fn end_read(&mut self, read: MatrixRead) {
        for (tile, part) in self.tiles.iter_mut().zip(read.tiles) {
            tile.end_read(part);
        }
    }

    /// Apply `ΔW = scale · Σ_r δ_r x_rᵀ` by coincident pulse trains on every tile (see
    /// [`Tile::apply_outer_product`]): tile (r, c) receives its blocks of `x` (`rows x
    /// n_in`) and `delta` (`rows x n_out`) and plans its own trains. Tiles are pulsed in
    /// parallel, so the report sums pulses and energy and takes the longest pulsing time
    /// and train length.
    pub fn apply_outer_product(
        &mut self,
        delta: &[f32],
        x: &[f32],
        rows: usize,
        scale: f32,
        config: &PulsedUpdateConfig,
        update_index: u64,
    ) -> Result<PulsedUpdateReport> {
        ensure!(
            delta.len() == rows * self.n_out && x.len() == rows * self.n_in,
            "outer-product update of {rows} rows ({} post, {} pre values) does not fit a \
             matrix of {} inputs x {} outputs",
            delta.len(),
            x.len(),
            self.n_in,
            self.n_out
        );
        let row_blocks = blocks(self.n_in, self.max_rows);
        let col_blocks = blocks(self.n_out, self.max_cols);
        let mut total = PulsedUpdateReport {
            outer_products: rows,
            ..PulsedUpdateReport::default()
        };
        for (r, &(r0, n_r)) in row_blocks.iter().enumerate() {
            let x_sub = gather(x, self.n_in, r0, n_r);
            for (c, &(c0, n_c)) in col_blocks.iter().enumerate() {
                let delta_sub = gather(delta, self.n_out, c0, n_c);
                let tile = &mut self.tiles[r * self.col_blocks + c];
                let report = tile.apply_outer_product(
                    &delta_sub,
                    &x_sub,
                    rows,
                    scale,
                    config,
                    update_index,
                )?;
                total.write.pulses += report.write.pulses;
                total.write.energy_j += report.write.energy_j;
                total.write.time_s = total.write.time_s.max(report.write.time_s);
                total.slots = total.slots.max(report.slots);
            }
        }
        Ok(total)
    }

    /// Noise-free conductances of the devices of `plane` and `polarity` (Set = G+, Reset =
    /// G-) at the present read time, siemens, row-major n_out x n_in like the programmed
    /// matrix (one tile's [`Tile::conductances`] is in array order, n_in x n_out).
    pub fn conductances(&self, plane: usize, polarity: Polarity) -> Result<Vec<f64>> {
        let mut g = vec![0f64; self.n_in * self.n_out];
        let rows = blocks(self.n_in, self.max_rows);
        let cols = blocks(self.n_out, self.max_cols);
        for (r, &(r0, n_r)) in rows.iter().enumerate() {
            for (c, &(c0, n_c)) in cols.iter().enumerate() {
                let sub = self.tiles[r * self.col_blocks + c].conductances(plane, polarity)?;
                for i in 0..n_r {
                    for j in 0..n_c {
                        g[(c0 + j) * self.n_in + r0 + i] = sub[i * n_c + j];
                    }
                }
            }
        }
        Ok(g)
    }

    /// Effective weights of the whole matrix (row-major n_out x n_in), read back from
    /// every tile (see [`Tile::effective_weights`]).
    pub fn effective_weights(&self) -> Result<Vec<f64>> {
        let mut w = vec![0f64; self.n_in * self.n_out];
        let rows = blocks(self.n_in, self.max_rows);
        let cols = blocks(self.n_out, self.max_cols);
        for (r, &(r0, n_r)) in rows.iter().enumerate() {
            for (c, &(c0, n_c)) in cols.iter().enumerate() {
                let sub = self.tiles[r * self.col_blocks + c].effective_weights()?;
                for j in 0..n_c {
                    let dst = &mut w[(c0 + j) * self.n_in + r0..][..n_r];
                    dst.copy_from_slice(&sub[j * n_r..(j + 1) * n_r]);
                }
            }
        }
        Ok(w)
    }

    /// Cumulative energy and latency of all tiles (latency summed: tiles read one after
    /// the other; tiles working in parallel would take the largest instead).
    pub fn total_energy(&self) -> EnergyBreakdown {
        let mut total = EnergyBreakdown::default();
        for tile in &self.tiles {
            total.add(&tile.ledger().total);
        }
        total
    }
}

/// One report for programming operations on several tiles: sums, maxima, and the RMS
/// error over all devices.
fn combine(reports: &[ProgramReport]) -> ProgramReport {
    let mut total = ProgramReport::default();
    let mut sq_error = 0.0;
    for report in reports {
        total.write.add(report.write);
        total.devices += report.devices;
        total.converged += report.converged;
        total.max_pulses_per_device = total
            .max_pulses_per_device
            .max(report.max_pulses_per_device);
        sq_error += report.rms_error_s.powi(2) * report.devices as f64;
        total.max_abs_error_s = total.max_abs_error_s.max(report.max_abs_error_s);
    }
    total.rms_error_s = (sq_error / total.devices.max(1) as f64).sqrt();
    total
}

/// Columns `start..start + len` of a row-major batch with `width` columns.
fn gather(x: &[f32], width: usize, start: usize, len: usize) -> Vec<f32> {
    x.chunks(width)
        .flat_map(|row| row[start..start + len].iter().copied())
        .collect()
}
