//! The fast read path of a tile: DAC, analog MVM with read and output noise, ADC,
//! digital combination of bit slices, for one vector or a batch, forward or transposed.
//!
//! Data flow for a batch X (row-major batch x n, f32), per chunk of [`CHUNK_VECTORS`]
//! vectors (a batch of several chunks runs its chunks side by side, one thread each; a
//! single chunk's GEMMs use the rayon threads, each output element accumulated in the same
//! order whatever the split; each vector's noise comes from its own stream, so outputs are
//! bit-identical whatever the thread count; after every faer product the upper vector
//! registers are cleared, as in `crate::linalg`):
//! 1. DAC: u = quantise(x / input_full_scale) (fraction of v_read), in fixed blocks of
//!    vectors run in parallel, which also sum u^2 per line for the read energy; with
//!    per-vector input scales (`Tile::read_part`, the abs-max scaling of
//!    `synapses::AnalogSynapses`) each x is divided by its vector's scale on the way in;
//! 2. per plane s: mean currents I = U G_s (one dense f32 GEMM with faer),
//!    with G_s = (G+ - G-)(t) / g_unit cached per inference time;
//! 3. read noise: every device's read noise is an independent zero-mean Gaussian of
//!    sigma_ij(t), so column j's current noise is Gaussian with variance
//!    sum_i u_i^2 sigma_ij^2: a second GEMM of U∘U with the cached sigma^2 matrix and one
//!    draw per output give exactly the distribution of N x M per-device draws (with
//!    several threads the two GEMMs run side by side, each on half of them; batches of
//!    fewer than 8 vectors use instead the fused one-pass kernel of
//!    `super::kernels`, with sigma^2 stored in bfloat16 to halve its memory traffic,
//!    at most 0.2 % rounding per variance). The
//!    shortcut assumes Gaussian, independent, additive device noise; it does not hold for
//!    non-Gaussian noise (random telegraph noise, reads clamped at G >= 0 when sigma is
//!    comparable to G) nor through the nonlinear wire network of IR drop (where the noise
//!    is only approximately Gaussian and its variance depends on the wires); output
//!    (thermal) noise of variance sigma_out^2 joins the same draw (standard normals from
//!    the vectorised Box–Muller sampler of [`super::normal`]);
//! 4. ADC per sensed line (quantise and saturate), then y = sum_s c_s * input_full_scale *
//!    drift_scale * ADC(I_s), all digital (runs of consecutive reads converted as one
//!    flat loop, see `periphery::AdcBank::run_reads`).
//!
//! With resistive wires (`wires` non-zero) step 2 uses the IR-drop solver of the G+ and
//! G- arrays for every vector instead of the GEMM, and step 3 keeps the variance
//! shortcut as a first-order approximation (the wires' attenuation of the noise is
//! ignored); the array read energy is still t_read * sum_i v_i^2 * sum_j G_ij, an upper
//! bound when the wires drop part of the voltage.
//!
//! Noise streams: vector k of read operation r draws from
//! `rng::stream(seed, [tile_id, READ, r, k])`. A read operation may receive its vectors in
//! parts (`Tile::begin_read`, `read_part`, `end_read`: a convolution streams its im2col
//! patches so that they never exist whole); parts of whole chunks keep the chunks, the
//! vector numbering and the energy sum of the read of the whole batch, so the numbers are
//! the same bit for bit.

use std::cell::RefCell;

use anyhow::{Context, Result, ensure};
use faer::{Accum, MatMut, MatRef, Par, linalg::matmul::matmul};
use rayon::prelude::*;

use super::energy::EnergyBreakdown;
use super::ir_drop::IrDropSolver;
use super::kernels::{Bf16, SmallBatch};
use super::normal::fill_standard_normal_rows;
use super::periphery::{AdcBank, Dac};
use super::tile::{Direction, ReadCache, Tile, tags};
use crate::device::Device;
use crate::linalg::{check_batch_shapes, clear_upper_vector_state};
use crate::rng::{XbarRng, child_key, stream_key, stream_of_key};

/// Input vectors per chunk (the batch is processed chunk by chunk; inside a chunk the
/// GEMMs and the per-vector noise and ADC work run in parallel). Fixed, not derived from
/// the thread count, so that results do not depend on the number of threads.
pub const CHUNK_VECTORS: usize = 256;

/// Smallest chunk computed with the matrix-matrix layout (smaller ones use dot-product
/// matrix-vector kernels).
const GEMM_MIN_BATCH: usize = 8;

/// Input vectors per block of the DAC conversion (fixed, for thread-count independence).
const INPUT_BLOCK_VECTORS: usize = 32;

/// Vectors finished together in a parallel chunk (their noise words transformed in full
/// vectors); every vector still draws from its own stream, so the value is free.
const NOISE_GROUP_VECTORS: usize = 32;

/// Per-thread scratch buffers, reused across reads (no allocation on the hot path).
#[derive(Default)]
struct Scratch {
    u: Vec<f32>,
    u2: Vec<f32>,
    current: Vec<f32>,
    variance: Vec<f32>,
    z: Vec<f32>,
    rngs: Vec<XbarRng>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
    /// Per-line sums of u^2 of one input block (see `ReadPlan::convert_block`).
    static LINE_SUMS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

fn resize(buffer: &mut Vec<f32>, len: usize) {
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
}

/// One read operation of a tile in progress (see [`Tile::begin_read`]): its noise
/// stream, the vectors read so far and their array-energy sum.
#[derive(Clone, Debug)]
pub struct TileRead {
    direction: Direction,
    read_index: u64,
    vectors: usize,
    /// Sum over the vectors read so far of u_i^2 * G_sum_i, siemens.
    u2g_sum_s: f64,
}

impl TileRead {
    fn new(direction: Direction, read_index: u64) -> Self {
        TileRead {
            direction,
            read_index,
            vectors: 0,
            u2g_sum_s: 0.0,
        }
    }
}

/// Everything one chunk needs, borrowed from the tile.
struct ReadPlan<'a> {
    direction: Direction,
    /// Driven and sensed line counts for this direction.
    n_driven: usize,
    n_sensed: usize,
    g: &'a [Vec<f32>],
    var: &'a [Vec<f32>],
    g_t: &'a [Vec<f32>],
    var_t: &'a [Vec<f32>],
    /// Per plane, the sensed-major variances in bfloat16 (small batches).
    var_small: &'a [Vec<Bf16>],
    adcs: &'a [AdcBank],
    /// Per plane: c_s * input_full_scale * drift_scale.
    factors: Vec<f32>,
    dac: Dac,
    /// Output-noise variance in normalised current units.
    output_var: f32,
    /// Whether any noise is drawn.
    noisy: bool,
    /// Summed G+ + G- of each driven line, siemens.
    driven_g_sum_s: &'a [f64],
    seed: u64,
    tile_id: u64,
    read_index: u64,
    /// IR-drop solvers per plane (G+, G-); empty with ideal wires.
    ir: &'a [[IrDropSolver; 2]],
    /// Read voltage, volts, and 1 / (v_read * g_unit), per ampere (IR-drop path).
    v_read_v: f64,
    inv_current_unit: f64,
}

impl ReadPlan<'_> {
    /// `plane`'s conductances (`variance = false`) or read-noise variances as a row-major
    /// matrix, sensed x driven (`sensed_major`) or driven x sensed.
    fn operand(&self, plane: usize, variance: bool, sensed_major: bool) -> MatRef<'_, f32> {
        let m = self.matrix(plane, variance, sensed_major);
        if sensed_major {
            MatRef::from_row_major_slice(m, self.n_sensed, self.n_driven)
        } else {
            MatRef::from_row_major_slice(m, self.n_driven, self.n_sensed)
        }
    }

    /// The row-major storage behind [`ReadPlan::operand`].
    fn matrix(&self, plane: usize, variance: bool, sensed_major: bool) -> &[f32] {
        // g is n_in x n_out (rows driven forward), g_t is n_out x n_in.
        let forward = self.direction == Direction::Forward;
        match (forward == sensed_major, variance) {
            (true, false) => &self.g_t[plane],
            (true, true) => &self.var_t[plane],
            (false, false) => &self.g[plane],
            (false, true) => &self.var[plane],
        }
    }

    /// out (nb x n_sensed, row-major) = u (nb x n_driven, row-major) x plane's matrix.
    /// Small batches use matrix-vector kernels (sensed-major operand, dot products);
    /// larger ones the GEMM layout of an ideal f32 product X G (driven-major operand).
    fn product(
        &self,
        out: &mut [f32],
        plane: usize,
        variance: bool,
        u: &[f32],
        nb: usize,
        par: Par,
    ) {
        let (n_in, n_out) = (self.n_driven, self.n_sensed);
        if nb < GEMM_MIN_BATCH {
            gemm(out, self.operand(plane, variance, true), u, n_in, n_out, nb);
        } else {
            let dst = MatMut::from_row_major_slice_mut(out, nb, n_out);
            let lhs = MatRef::from_row_major_slice(u, nb, n_in);
            let rhs = self.operand(plane, variance, false);
            matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, par);
        }
        clear_upper_vector_state();
    }

    /// Read one chunk of `x.len() / n_driven` vectors, divided by their `scales` (empty:
    /// unscaled), into `y`; returns the chunk's sum of u_i^2 * G_sum_i (siemens),
    /// proportional to the array read energy.
    fn read_chunk(
        &self,
        first_vector: usize,
        (x, scales): (&[f32], &[f32]),
        y: &mut [f32],
        s: &mut Scratch,
        par: Par,
    ) -> f64 {
        let nb = x.len() / self.n_driven;
        let (n_in, n_out) = (self.n_driven, self.n_sensed);
        resize(&mut s.u, nb * n_in);
        resize(&mut s.u2, nb * n_in);
        resize(&mut s.current, nb * n_out);
        let (u, u2) = (&mut s.u[..nb * n_in], &mut s.u2[..nb * n_in]);
        let energy = self.convert_inputs((x, scales), u, u2, par);
        let use_var = !self.var.is_empty();
        if use_var {
            resize(&mut s.variance, nb * n_out);
        }
        if self.noisy {
            let read = stream_key(self.seed, &[self.tile_id, tags::READ, self.read_index]);
            s.rngs.clear();
            s.rngs.extend((0..nb).map(|b| {
                let k = (first_vector + b) as u64;
                stream_of_key(child_key(read, k))
            }));
        }
        y.fill(0.0);
        for plane in 0..self.g.len() {
            self.plane_products(plane, nb, par, s);
            let variance = use_var.then(|| &s.variance[..nb * n_out]);
            let current = &s.current[..nb * n_out];
            if matches!(par, Par::Seq) || nb == 1 {
                self.finish_group(plane, 0, current, variance, &mut s.rngs, &mut s.z, y);
            } else {
                self.finish_parallel(plane, current, variance, &mut s.rngs, y);
            }
        }
        energy
    }

    /// Mean currents (into `s.current`) and read-noise variances (into `s.variance`, when
    /// read noise is on) of plane `plane` for the chunk's `nb` vectors: the fused
    /// bfloat16-variance kernel for small batches on ideal wires, GEMMs or the IR-drop
    /// solver otherwise.
    fn plane_products(&self, plane: usize, nb: usize, par: Par, s: &mut Scratch) {
        let (n_in, n_out) = (self.n_driven, self.n_sensed);
        let (u, u2) = (&s.u[..nb * n_in], &s.u2[..nb * n_in]);
        let current = &mut s.current[..nb * n_out];
        let use_var = !self.var.is_empty();
        if use_var && self.ir.is_empty() && nb < GEMM_MIN_BATCH {
            let kernel = SmallBatch {
                g: self.matrix(plane, false, true),
                var: &self.var_small[plane],
                u,
                u2,
                n_driven: n_in,
                n_sensed: n_out,
            };
            kernel.run(current, &mut s.variance[..nb * n_out]);
            return;
        }
        let variance = &mut s.variance[..if use_var { nb * n_out } else { 0 }];
        let side_by_side = match par {
            Par::Rayon(threads) if use_var && self.ir.is_empty() => Some(threads.get()),
            _ => None,
        };
        if let Some(threads) = side_by_side {
            // The two GEMMs side by side, each on half the threads: on few cores this
            // beats running them one after the other, each on all threads.
            let split = |n: usize| if n > 1 { Par::rayon(n) } else { Par::Seq };
            let (t_var, t_mean) = (threads / 2, threads - threads / 2);
            rayon::join(
                || self.product(current, plane, false, u, nb, split(t_mean)),
                || self.product(variance, plane, true, u2, nb, split(t_var)),
            );
            return;
        }
        match self.ir.get(plane) {
            Some(solvers) => self.ir_currents(solvers, u, current),
            None => self.product(current, plane, false, u, nb, par),
        }
        if use_var {
            self.product(variance, plane, true, u2, nb, par);
        }
    }

    /// Noise, ADC and digital scaling into `y` (the outputs of vectors `first..` of a
    /// chunk, one row of `n_sensed` each). With noise on, the rows' standard normals are
    /// drawn together into `z`, each from its vector's stream in `rngs`.
    #[allow(clippy::too_many_arguments)]
    fn finish_group(
        &self,
        plane: usize,
        first: usize,
        current: &[f32],
        variance: Option<&[f32]>,
        rngs: &mut [XbarRng],
        z: &mut Vec<f32>,
        y: &mut [f32],
    ) {
        let n = self.n_sensed;
        let rows = y.len() / n;
        let z = self.noisy.then(|| {
            resize(z, rows * n);
            fill_standard_normal_rows(&mut rngs[..rows], &mut z[..rows * n]);
            &z[..rows * n]
        });
        let (adcs, factor) = (&self.adcs[plane], self.factors[plane]);
        let run = adcs.run_reads() * n;
        for (r, y_run) in y.chunks_mut(run).enumerate() {
            let start = first * n + r * run;
            let range = start..start + y_run.len();
            let i_run = &current[range.clone()];
            match z {
                Some(z) => {
                    let z_run = &z[r * run..][..y_run.len()];
                    let v_run = variance.map(|v| &v[range]);
                    let output_var = self.output_var;
                    adcs.noisy_convert_accumulate(i_run, v_run, output_var, z_run, factor, y_run);
                }
                None => adcs.convert_accumulate(i_run, factor, y_run),
            }
        }
    }

    /// [`ReadPlan::finish_group`] for every group of [`NOISE_GROUP_VECTORS`] vectors of a
    /// chunk, in parallel (each vector has its own noise stream, so the result does not
    /// depend on the thread count).
    fn finish_parallel(
        &self,
        plane: usize,
        current: &[f32],
        variance: Option<&[f32]>,
        rngs: &mut [XbarRng],
        y: &mut [f32],
    ) {
        let groups = y
            .par_chunks_mut(NOISE_GROUP_VECTORS * self.n_sensed)
            .enumerate();
        let first = |g: usize| g * NOISE_GROUP_VECTORS;
        if self.noisy {
            let streams = rngs.par_chunks_mut(NOISE_GROUP_VECTORS);
            groups
                .zip(streams)
                .for_each_init(Vec::new, |z, ((g, y_g), rngs_g)| {
                    self.finish_group(plane, first(g), current, variance, rngs_g, z, y_g);
                });
        } else {
            groups.for_each(|(g, y_g)| {
                let mut unused = Vec::new();
                self.finish_group(
                    plane,
                    first(g),
                    current,
                    variance,
                    &mut [],
                    &mut unused,
                    y_g,
                );
            });
        }
    }

    /// Mean normalised currents through the resistive wire network: each vector's
    /// voltages drive the G+ and G- arrays, and the sensed currents are subtracted.
    fn ir_currents(&self, solvers: &[IrDropSolver; 2], u: &[f32], current: &mut [f32]) {
        let mut v = vec![0f64; self.n_driven];
        for (ub, ib) in u
            .chunks(self.n_driven)
            .zip(current.chunks_mut(self.n_sensed))
        {
            for (vi, &ui) in v.iter_mut().zip(ub) {
                *vi = f64::from(ui) * self.v_read_v;
            }
            let [pos, neg] = match self.direction {
                Direction::Forward => [solvers[0].solve(&v), solvers[1].solve(&v)],
                Direction::Transposed => [
                    solvers[0].solve_transposed(&v),
                    solvers[1].solve_transposed(&v),
                ],
            };
            for ((i, p), n) in ib.iter_mut().zip(&pos).zip(&neg) {
                *i = ((p - n) * self.inv_current_unit) as f32;
            }
        }
    }

    /// DAC conversion of the chunk's inputs `x` (each vector divided by its scale in
    /// `scales`, if any) into `u` and their squares `u2`; returns sum over vectors and
    /// driven lines of u^2 * G_sum (siemens). Done in fixed blocks of
    /// [`INPUT_BLOCK_VECTORS`] vectors (in parallel unless `par` is sequential), each
    /// summing its squared inputs per line in f32 before weighting them in f64; the block
    /// sums are added in order, so the result does not depend on the thread count.
    fn convert_inputs(
        &self,
        (x, scales): (&[f32], &[f32]),
        u: &mut [f32],
        u2: &mut [f32],
        par: Par,
    ) -> f64 {
        let block = INPUT_BLOCK_VECTORS * self.n_driven;
        let block_scales = |b: usize| {
            let first = b * INPUT_BLOCK_VECTORS;
            scales.get(first..(first + INPUT_BLOCK_VECTORS).min(scales.len()))
        };
        if matches!(par, Par::Seq) {
            let blocks = x.chunks(block).zip(u.chunks_mut(block));
            return blocks
                .zip(u2.chunks_mut(block))
                .enumerate()
                .map(|(b, ((x, u), u2))| self.convert_block((x, block_scales(b)), u, u2))
                .sum();
        }
        let blocks = x.par_chunks(block).zip(u.par_chunks_mut(block));
        let energies: Vec<f64> = blocks
            .zip(u2.par_chunks_mut(block))
            .enumerate()
            .map(|(b, ((x, u), u2))| self.convert_block((x, block_scales(b)), u, u2))
            .collect();
        energies.iter().sum()
    }

    /// [`ReadPlan::convert_inputs`] for one block of vectors (`scales`: the block's
    /// per-vector scales, `None` when unscaled).
    fn convert_block(
        &self,
        (x, scales): (&[f32], Option<&[f32]>),
        u: &mut [f32],
        u2: &mut [f32],
    ) -> f64 {
        let scales = scales.filter(|s| !s.is_empty());
        LINE_SUMS.with_borrow_mut(|line_sums| {
            line_sums.clear();
            line_sums.resize(self.n_driven, 0.0);
            self.dac.convert_vectors((x, scales), u, u2, line_sums);
            line_sums
                .iter()
                .zip(self.driven_g_sum_s)
                .map(|(&v, &g)| f64::from(v) * g)
                .sum()
        })
    }
}

/// out (nb x n_out, row-major) = u (nb x n_in, row-major) * lhs^T, computed as
/// out^T = lhs * u^T with lhs of shape n_out x n_in.
pub(crate) fn gemm(
    out: &mut [f32],
    lhs: MatRef<'_, f32>,
    u: &[f32],
    n_in: usize,
    n_out: usize,
    nb: usize,
) {
    let dst = MatMut::from_column_major_slice_mut(out, n_out, nb);
    let rhs = MatRef::from_column_major_slice(u, n_in, nb);
    matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, Par::Seq);
    clear_upper_vector_state();
}

impl<D: Device> Tile<D> {
    /// y = W x for one input vector `x` (length n_in); returns n_out outputs.
    pub fn forward(&mut self, x: &[f32]) -> Result<Vec<f32>> {
        let mut y = vec![0f32; self.n_out];
        self.read_batch(Direction::Forward, x, 1, &mut y)?;
        Ok(y)
    }

    /// y = W^T x for one vector `x` (length n_out, drives the columns); returns n_in
    /// outputs read at the rows.
    pub fn transposed(&mut self, x: &[f32]) -> Result<Vec<f32>> {
        let mut y = vec![0f32; self.n_in];
        self.read_batch(Direction::Transposed, x, 1, &mut y)?;
        Ok(y)
    }

    /// Forward MVM of `batch` vectors: `x` row-major batch x n_in, `y` batch x n_out.
    pub fn forward_batch(&mut self, x: &[f32], batch: usize, y: &mut [f32]) -> Result<()> {
        self.read_batch(Direction::Forward, x, batch, y)
    }

    /// Transposed MVM of `batch` vectors: `x` batch x n_out, `y` batch x n_in.
    pub fn transposed_batch(&mut self, x: &[f32], batch: usize, y: &mut [f32]) -> Result<()> {
        self.read_batch(Direction::Transposed, x, batch, y)
    }

    /// MVM of `batch` vectors in `direction`; each call is one read operation with fresh
    /// noise (stream index = the tile's read counter, then incremented). Recorded in the
    /// energy ledger.
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

    /// Like [`Tile::read_batch`] with an explicit read index (noise stream) and without
    /// touching the tile: for callers that manage their own read numbering. Returns the
    /// operation's energy and latency.
    pub fn read_batch_at(
        &self,
        direction: Direction,
        x: &[f32],
        batch: usize,
        y: &mut [f32],
        read_index: u64,
    ) -> Result<EnergyBreakdown> {
        let mut read = TileRead::new(direction, read_index);
        self.read_part(&mut read, (x, &[]), batch, y)?;
        Ok(self.read_energy(&read))
    }

    /// Start one read operation in `direction` whose vectors are handed over in parts
    /// ([`Tile::read_part`]), e.g. as a convolution generates its patches: it takes the
    /// next read index (noise stream) now and is recorded in the ledger by
    /// [`Tile::end_read`]. A read in parts equals the read of all its vectors at once, bit
    /// for bit (noise, outputs and energy).
    pub fn begin_read(&mut self, direction: Direction) -> TileRead {
        let read = TileRead::new(direction, self.read_counter);
        self.read_counter += 1;
        read
    }

    /// The next `batch` vectors of `read` into `y`: the vectors `x_b / scales[b]`, each
    /// input divided by its vector's scale on its way into the DAC (the same f32 division
    /// as scaling the batch first, without a scaled copy of it: the input scaling of
    /// `synapses::AnalogSynapses`); `scales` holds one positive value per vector, or is
    /// empty for the inputs as they are. Every part but the last must hold a multiple of
    /// [`CHUNK_VECTORS`] vectors (the read's chunks, which fix its arithmetic).
    pub fn read_part(
        &self,
        read: &mut TileRead,
        (x, scales): (&[f32], &[f32]),
        batch: usize,
        y: &mut [f32],
    ) -> Result<()> {
        let cache = self
            .cache
            .as_ref()
            .context("the tile has not been programmed yet: call program() first")?;
        let plan = self.read_plan(cache, read.direction, read.read_index);
        let (n_x, n_y) = (plan.n_driven, plan.n_sensed);
        check_batch_shapes("crossbar read", x, y, batch, n_x, n_y)?;
        ensure!(
            scales.is_empty() || scales.len() == batch,
            "crossbar read: {} input scales for {batch} vectors (one per vector, or none)",
            scales.len()
        );
        ensure!(
            read.vectors.is_multiple_of(CHUNK_VECTORS),
            "crossbar read in parts: a part follows {} vectors, not a multiple of \
             {CHUNK_VECTORS}; only the last part may be shorter",
            read.vectors
        );
        let (chunk_in, chunk_out) = (CHUNK_VECTORS * n_x, CHUNK_VECTORS * n_y);
        let threads = rayon::current_num_threads();
        let first_vector = read.vectors;
        let chunk = |c: usize, xc: &[f32], yc: &mut [f32], par: Par| {
            let first = c * CHUNK_VECTORS;
            let sc = scales.get(first..first + xc.len() / n_x).unwrap_or(&[]);
            SCRATCH.with_borrow_mut(|s| plan.read_chunk(first_vector + first, (xc, sc), yc, s, par))
        };
        // Each chunk's numbers do not depend on how it is computed (see the module notes),
        // so several chunks run side by side, each on one thread, and a single chunk uses
        // the threads inside its products and noise groups.
        let sums: Vec<f64> = if threads > 1 && batch > CHUNK_VECTORS {
            let chunks = x.par_chunks(chunk_in).zip(y.par_chunks_mut(chunk_out));
            let sums = chunks
                .enumerate()
                .map(|(c, (xc, yc))| chunk(c, xc, yc, Par::Seq));
            sums.collect()
        } else {
            let par = if threads > 1 && batch >= GEMM_MIN_BATCH {
                Par::rayon(threads)
            } else {
                Par::Seq
            };
            let chunks = x.chunks(chunk_in).zip(y.chunks_mut(chunk_out));
            chunks
                .enumerate()
                .map(|(c, (xc, yc))| chunk(c, xc, yc, par))
                .collect()
        };
        // The chunks' energy sums are added in order, as one chunk after the other would.
        for u2g in sums {
            read.u2g_sum_s += u2g;
        }
        read.vectors += batch;
        Ok(())
    }

    /// Record the finished `read` in the energy ledger.
    pub fn end_read(&mut self, read: TileRead) {
        let energy = self.read_energy(&read);
        self.ledger.record(energy);
    }

    fn read_plan<'a>(
        &'a self,
        cache: &'a ReadCache,
        direction: Direction,
        read_index: u64,
    ) -> ReadPlan<'a> {
        let periphery = &self.config.periphery;
        let scale = periphery.input_full_scale * cache.drift_scale;
        let current_unit_a = periphery.v_read_v * self.g_unit_s;
        let output_var = (periphery.output_noise_sigma_a / current_unit_a).powi(2) as f32;
        let (n_driven, n_sensed, adcs, driven_g_sum_s) = match direction {
            Direction::Forward => (self.n_in, self.n_out, &self.adc_forward, &cache.row_g_sum_s),
            Direction::Transposed => (
                self.n_out,
                self.n_in,
                &self.adc_transposed,
                &cache.col_g_sum_s,
            ),
        };
        ReadPlan {
            direction,
            n_driven,
            n_sensed,
            g: &cache.g,
            var: &cache.var,
            g_t: &cache.g_t,
            var_t: &cache.var_t,
            var_small: match direction {
                Direction::Forward => &cache.var_t_bf16,
                Direction::Transposed => &cache.var_bf16,
            },
            adcs,
            factors: self
                .plane_factors()
                .iter()
                .map(|c| (c * scale) as f32)
                .collect(),
            dac: Dac::new(periphery.dac_bits, periphery.input_full_scale),
            output_var,
            noisy: !cache.var.is_empty() || output_var > 0.0,
            driven_g_sum_s,
            seed: self.seed,
            tile_id: self.tile_id,
            read_index,
            ir: &cache.ir,
            v_read_v: periphery.v_read_v,
            inv_current_unit: 1.0 / current_unit_a,
        }
    }

    /// Energy and latency of the vectors of `read` so far.
    fn read_energy(&self, read: &TileRead) -> EnergyBreakdown {
        let periphery = &self.config.periphery;
        let energy = &self.config.energy;
        let planes = self.planes as u64;
        let (n_driven, n_sensed) = match read.direction {
            Direction::Forward => (self.n_in, self.n_out),
            Direction::Transposed => (self.n_out, self.n_in),
        };
        let batch = read.vectors;
        let dac_conversions = (batch * n_driven) as u64 * planes;
        let adc_conversions = (batch * n_sensed) as u64 * planes;
        EnergyBreakdown {
            array_read_j: energy.read_time_s * periphery.v_read_v.powi(2) * read.u2g_sum_s,
            dac_j: dac_conversions as f64 * energy.dac_conversion_j(periphery.dac_bits),
            adc_j: adc_conversions as f64 * energy.adc_conversion_j(periphery.adc.bits),
            macs: (batch * self.n_in * self.n_out) as f64,
            vectors: batch as u64,
            dac_conversions,
            adc_conversions,
            read_latency_s: batch as f64 * energy.read_latency_s(),
            ..EnergyBreakdown::default()
        }
    }

    /// Largest noise-free |normalised current| of each sensed line of each plane over
    /// the inputs `x` (before the ADC), for ADC calibration.
    pub(crate) fn analog_peaks(
        &self,
        direction: Direction,
        x: &[f32],
        batch: usize,
    ) -> Result<Vec<Vec<f64>>> {
        let cache = self
            .cache
            .as_ref()
            .context("the tile has not been programmed yet: call program() first")?;
        let plan = self.read_plan(cache, direction, 0);
        let (n_in, n_out) = (plan.n_driven, plan.n_sensed);
        ensure!(
            batch > 0 && x.len() == batch * n_in,
            "calibration inputs have {} values, expected batch x {n_in} = {}",
            x.len(),
            batch * n_in
        );
        let mut peaks = vec![vec![0f64; n_out]; self.planes];
        let mut u = vec![0f32; x.len()];
        plan.dac.convert_slice(x, &mut u);
        let mut current = vec![0f32; batch * n_out];
        for (plane, peak) in peaks.iter_mut().enumerate() {
            plan.product(&mut current, plane, false, &u, batch, Par::Seq);
            for row in current.chunks(n_out) {
                for (p, &i) in peak.iter_mut().zip(row) {
                    *p = p.max(f64::from(i.abs()));
                }
            }
        }
        Ok(peaks)
    }
}
