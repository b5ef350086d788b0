//! The synaptic-layer seam: [`SynapticLayer`] (forward and transposed reads),
//! [`PlasticSynapses`] (outer-product and dense updates), and the digital reference
//! [`DigitalSynapses`].
//!
//! EP needs three operations on each weight matrix `W` (`outputs x inputs`): the forward
//! read `W·x` (feed-forward drive of the layer above), the transposed read `Wᵀ·y` (feedback
//! to the layer below) and the local outer-product update: [`SynapticLayer`] holds the two
//! reads (all inference needs), [`PlasticSynapses`] the updates. [`DigitalSynapses`] implements it with an `f32` matrix and is the reference
//! (floating-point EP); a crossbar tile implements it with its forward and transposed analog
//! MVMs on the same devices and turns [`OuterProductUpdate`]s into programming pulses, so the
//! network dynamics never change when the hardware does.
//!
//! A grouped convolution's kernel matrix is block-diagonal: [`DigitalSynapses::block_diagonal`]
//! stores only its blocks, and [`read_block_diagonal`] reads any layer made of blocks, each
//! block reading its own slice of every input vector and writing its own slice of every
//! output vector.

use std::borrow::Cow;
use std::ops::Range;

use anyhow::{Result, ensure};
use rand::RngExt;
use rayon::prelude::*;

use crate::linalg;
use crate::linalg::conv::ConvGeometry;

/// A weight update as a sum of outer products: `ΔW = scale · Σ_r post_r ⊗ pre_r`, i.e.
/// `ΔW = scale · postᵀ · pre` with `post` (`rows x outputs`) and `pre` (`rows x inputs`).
///
/// This is the form the EP rule produces (post- and pre-synaptic activities at the two
/// equilibria) and the form pulsed crossbar updates consume (row and column pulse trains
/// coincident on each device), so hardware never has to materialise `ΔW`.
#[derive(Clone, Debug, PartialEq)]
pub struct OuterProductUpdate {
    /// Post-synaptic factors, `rows x outputs`, row-major.
    pub post: Vec<f32>,
    /// Pre-synaptic factors, `rows x inputs`, row-major.
    pub pre: Vec<f32>,
    /// Number of outer products summed.
    pub rows: usize,
    /// Common multiplier (learning rate, `1/batch`, `1/Δβ`).
    pub scale: f32,
}

impl OuterProductUpdate {
    /// Length of each post-synaptic factor (rows of `W`).
    pub fn outputs(&self) -> usize {
        self.post.len() / self.rows.max(1)
    }

    /// Length of each pre-synaptic factor (columns of `W`).
    pub fn inputs(&self) -> usize {
        self.pre.len() / self.rows.max(1)
    }

    /// The dense update `ΔW` (`outputs x inputs`, row-major).
    pub fn dense(&self) -> Vec<f32> {
        let (outputs, inputs) = (self.outputs(), self.inputs());
        let mut delta = vec![0.0; outputs * inputs];
        linalg::at_b(
            &self.post, &self.pre, outputs, self.rows, inputs, &mut delta,
        );
        delta.iter_mut().for_each(|d| *d *= self.scale);
        delta
    }
}

/// A weight matrix `W` (`outputs x inputs`) stored on synapses, read forwards and
/// backwards: the read-only seam every network uses (inference, the forward and feedback
/// passes of training).
pub trait SynapticLayer {
    /// Length of each input vector (columns of `W`).
    fn inputs(&self) -> usize;
    /// Length of each output vector (rows of `W`).
    fn outputs(&self) -> usize;
    /// Forward read `y = x · Wᵀ` of a batch: `x` is `batch x inputs`, `y` receives
    /// `batch x outputs`. Takes `&mut self` so hardware can draw noise and count energy.
    fn forward(&mut self, x: &[f32], batch: usize, y: &mut [f32]) -> Result<()>;
    /// Transposed read `x = y · W` of a batch: `y` is `batch x outputs`, `x` receives
    /// `batch x inputs` (on a crossbar: drive the columns, read the rows).
    fn transposed(&mut self, y: &[f32], batch: usize, x: &mut [f32]) -> Result<()>;
    /// [`SynapticLayer::transposed`] of a batch of mostly-zero vectors (rates or errors
    /// routed back through max pooling onto each window's maximum), each chunk of
    /// `fold.rows` results folded into its part of `fold.out` (see [`Fold`]), with the
    /// bits of a dense read then folding. Digital weights skip the zero entries and fold
    /// each chunk as soon as it is read; this default reads the whole batch densely into
    /// `fold.scratch` (on a crossbar every read is a physical read, zeros and all), then
    /// folds.
    fn transposed_sparse_folded(&mut self, y: &[f32], batch: usize, fold: Fold<'_>) -> Result<()> {
        fold.check(batch)?;
        fold.read_then_fold(batch, self.inputs(), |x| self.transposed(y, batch, x))
    }
    /// Number of diagonal blocks the matrix is made of (a grouped convolution's kernel
    /// matrix: its groups; 1 for a full matrix, the default).
    fn blocks(&self) -> usize {
        1
    }
    /// Forward read of `batch` input vectors that `source` generates on demand (a
    /// convolution's im2col patches), with `buffer` as reusable scratch: the same result
    /// as [`SynapticLayer::forward`] of the whole batch. This default builds the whole
    /// batch; synapses that read in parts (analog tiles) ask for a part at a time, so a
    /// large generated batch never exists whole.
    fn forward_generated(
        &mut self,
        batch: usize,
        source: &InputSource<'_>,
        buffer: &mut Vec<f32>,
        y: &mut [f32],
    ) -> Result<()> {
        forward_whole(self, batch, source, buffer, y)
    }
    /// Forward read of every output pixel of a convolution `conv` of a batch of NCHW
    /// `images`: [`SynapticLayer::forward_generated`] on the im2col patches (this
    /// default), `y` receiving one row of outputs per output pixel (`(batch·pixels) x
    /// outputs`). Digital weights read the images directly where they can
    /// ([`ConvGeometry::read_direct`]).
    fn forward_conv(
        &mut self,
        conv: &ConvGeometry,
        (images, batch): (&[f32], usize),
        buffer: &mut Vec<f32>,
        y: &mut [f32],
    ) -> Result<()> {
        forward_patches(self, conv, (images, batch), buffer, y)
    }
}

/// [`SynapticLayer::forward_conv`] through the im2col patches, generated on demand (the
/// trait's default).
pub fn forward_patches<L: SynapticLayer + ?Sized>(
    layer: &mut L,
    conv: &ConvGeometry,
    (images, batch): (&[f32], usize),
    buffer: &mut Vec<f32>,
    y: &mut [f32],
) -> Result<()> {
    let patches = |g, rows, out: &mut [f32]| conv.im2col_rows(images, g, rows, out);
    layer.forward_generated(batch * conv.pixels(), &patches, buffer, y)
}

/// [`SynapticLayer::forward_generated`] by generating the whole batch into `buffer` (block
/// by block, each into its columns), then one [`SynapticLayer::forward`] (the trait's
/// default).
pub fn forward_whole<L: SynapticLayer + ?Sized>(
    layer: &mut L,
    batch: usize,
    source: &InputSource<'_>,
    buffer: &mut Vec<f32>,
    y: &mut [f32],
) -> Result<()> {
    let (blocks, inputs) = (layer.blocks(), layer.inputs());
    let len = batch * inputs;
    buffer.resize(len, 0.0);
    if blocks == 1 {
        source(0, 0..batch, &mut buffer[..len]);
    } else {
        let mut part = vec![0f32; len / blocks];
        for g in 0..blocks {
            source(g, 0..batch, &mut part);
            place_block(&mut buffer[..len], &part, (blocks, inputs / blocks), g);
        }
    }
    layer.forward(&buffer[..len], batch, y)
}

/// Forward read of a layer of `blocks` diagonal blocks (`n_out` outputs each) on generated
/// inputs: `read(g, source_g, y_g)` reads block `g` on the inputs `source_g` generates
/// (block `g`'s columns of `source`, asked for as block 0), and its outputs `y_g`
/// (`batch x n_out`) go to columns `g·n_out ..` of every row of `y`. A single block reads
/// `source` into `y` directly.
pub fn read_generated_blocks(
    batch: usize,
    (blocks, n_out): (usize, usize),
    source: &InputSource<'_>,
    y: &mut [f32],
    mut read: impl FnMut(usize, &InputSource<'_>, &mut [f32]) -> Result<()>,
) -> Result<()> {
    if blocks == 1 {
        return read(0, source, y);
    }
    let mut y_g = vec![0f32; batch * n_out];
    for g in 0..blocks {
        let source_g = |_: usize, rows: Range<usize>, out: &mut [f32]| source(g, rows, out);
        read(g, &source_g, &mut y_g)?;
        place_block(y, &y_g, (blocks, n_out), g);
    }
    Ok(())
}

/// Where [`SynapticLayer::transposed_sparse_folded`] sends a batch of transposed reads:
/// the batch in chunks of `rows` vectors, chunk `i` folded by `each(chunk, out_i)` into
/// the `i`-th of as many equal parts of `out`, every value of which `each` writes (a
/// convolution: one image's patch gradients added back onto that image by col2im).
pub struct Fold<'a> {
    /// Read vectors per chunk (a convolution: the output pixels of one image).
    pub rows: usize,
    /// The folded results, one equal part per chunk.
    pub out: &'a mut [f32],
    /// Folds one chunk's reads (`rows x inputs`) into its part of `out`.
    pub each: &'a (dyn Fn(&[f32], &mut [f32]) + Sync),
    /// Room for a whole batch of reads, for synapses that read the batch before folding.
    pub scratch: &'a mut Vec<f32>,
}

impl Fold<'_> {
    /// Check that a batch of `batch` reads splits into chunks of `rows`, and `out` into as
    /// many parts.
    fn check(&self, batch: usize) -> Result<()> {
        ensure!(
            self.rows > 0 && batch > 0 && batch.is_multiple_of(self.rows),
            "a batch of {batch} reads does not split into chunks of {}",
            self.rows
        );
        let chunks = batch / self.rows;
        ensure!(
            self.out.len().is_multiple_of(chunks),
            "{} folded values do not split into {chunks} equal parts",
            self.out.len()
        );
        Ok(())
    }

    /// Read a whole batch of `batch` vectors of `width` values into `scratch` by `read`,
    /// then fold it, chunks in parallel.
    fn read_then_fold(
        self,
        batch: usize,
        width: usize,
        read: impl FnOnce(&mut [f32]) -> Result<()>,
    ) -> Result<()> {
        self.scratch.resize(batch * width, 0.0);
        let reads = &mut self.scratch[..batch * width];
        read(reads)?;
        let part = self.out.len() / (batch / self.rows);
        let each = self.each;
        self.out
            .par_chunks_mut(part)
            .zip(reads.par_chunks(self.rows * width))
            .for_each(|(out, reads)| each(reads, out));
        Ok(())
    }
}

/// Generates input vectors on demand: `source(block, rows, out)` writes diagonal block
/// `block`'s part (its columns; for a full matrix, block 0, the whole vector) of the
/// vectors `rows` of a batch into `out` (`rows.len() x` the block's inputs, every value).
pub type InputSource<'a> = dyn Fn(usize, Range<usize>, &mut [f32]) + Sync + 'a;

impl<T: SynapticLayer + ?Sized> SynapticLayer for Box<T> {
    fn inputs(&self) -> usize {
        (**self).inputs()
    }
    fn outputs(&self) -> usize {
        (**self).outputs()
    }
    fn forward(&mut self, x: &[f32], batch: usize, y: &mut [f32]) -> Result<()> {
        (**self).forward(x, batch, y)
    }
    fn transposed(&mut self, y: &[f32], batch: usize, x: &mut [f32]) -> Result<()> {
        (**self).transposed(y, batch, x)
    }
    fn transposed_sparse_folded(&mut self, y: &[f32], batch: usize, fold: Fold<'_>) -> Result<()> {
        (**self).transposed_sparse_folded(y, batch, fold)
    }
    fn blocks(&self) -> usize {
        (**self).blocks()
    }
    fn forward_generated(
        &mut self,
        batch: usize,
        source: &InputSource<'_>,
        buffer: &mut Vec<f32>,
        y: &mut [f32],
    ) -> Result<()> {
        (**self).forward_generated(batch, source, buffer, y)
    }
    fn forward_conv(
        &mut self,
        conv: &ConvGeometry,
        images: (&[f32], usize),
        buffer: &mut Vec<f32>,
        y: &mut [f32],
    ) -> Result<()> {
        (**self).forward_conv(conv, images, buffer, y)
    }
}

/// Synapses that learn: a [`SynapticLayer`] that carries out weight updates (the seam every
/// learning rule writes through, see `crate::learning::rule::apply_change`).
pub trait PlasticSynapses: SynapticLayer {
    /// Apply `W += ΔW` for an outer-product update (on a crossbar: programming pulses).
    fn apply_update(&mut self, update: &OuterProductUpdate) -> Result<()>;
    /// Apply `W += ΔW` for a dense `ΔW` (`outputs x inputs`, row-major).
    fn apply_dense(&mut self, delta_w: &[f32]) -> Result<()>;
}

/// Check that an outer-product update fits a layer of `outputs x inputs` weights (`what`
/// names the layer in the error).
pub fn check_update_shape(
    update: &OuterProductUpdate,
    outputs: usize,
    inputs: usize,
    what: &str,
) -> Result<()> {
    ensure!(
        update.rows > 0
            && update.post.len() == update.rows * outputs
            && update.pre.len() == update.rows * inputs,
        "outer-product update of {} rows ({} post, {} pre values) does not fit a {outputs} x \
         {inputs} {what}",
        update.rows,
        update.post.len(),
        update.pre.len(),
    );
    Ok(())
}

/// A digital `f32` weight matrix: the floating-point reference [`SynapticLayer`]. It may be
/// block-diagonal (a grouped convolution's kernel matrix): `blocks` diagonal blocks of
/// `outputs/blocks x inputs/blocks`, stacked row-major as PyTorch stores a grouped
/// `Conv2d` weight (`C_out x C_in/groups x k x k`); the zeros off the blocks are not stored.
#[derive(Clone, Debug)]
pub struct DigitalSynapses {
    weight: Vec<f32>,
    inputs: usize,
    outputs: usize,
    blocks: usize,
    /// `Wᵀ`, as the direct convolution read takes it ([`ConvGeometry::read_direct`]), made
    /// by the first such read after the weights change; empty while out of date.
    weight_t: Vec<f32>,
}

/// Two layers are equal when their weights and shapes are (whatever their copies for the
/// direct convolution read).
impl PartialEq for DigitalSynapses {
    fn eq(&self, other: &Self) -> bool {
        (&self.weight, self.inputs, self.outputs, self.blocks)
            == (&other.weight, other.inputs, other.outputs, other.blocks)
    }
}

impl DigitalSynapses {
    /// Wrap a row-major `outputs x inputs` weight matrix.
    pub fn new(inputs: usize, outputs: usize, weight: Vec<f32>) -> Result<Self> {
        Self::block_diagonal(1, inputs, outputs, weight)
    }

    /// A block-diagonal `outputs x inputs` matrix of `blocks` diagonal blocks (`outputs` and
    /// `inputs` multiples of `blocks`) from its blocks' weights: `outputs` rows of
    /// `inputs/blocks` values, block `g` holding rows `g·outputs/blocks ..`. One block is a
    /// full matrix.
    pub fn block_diagonal(
        blocks: usize,
        inputs: usize,
        outputs: usize,
        weight: Vec<f32>,
    ) -> Result<Self> {
        ensure!(
            inputs > 0 && outputs > 0,
            "a synaptic layer needs at least one input and one output (got {inputs} x {outputs})"
        );
        ensure!(
            blocks > 0 && inputs.is_multiple_of(blocks) && outputs.is_multiple_of(blocks),
            "a {outputs} x {inputs} matrix cannot be split into {blocks} diagonal blocks (both \
             sizes must be multiples of the block count)"
        );
        ensure!(
            weight.len() == inputs / blocks * outputs,
            "weight matrix holds {} values, expected {outputs} outputs x {} inputs{}",
            weight.len(),
            inputs / blocks,
            if blocks > 1 {
                format!(" ({blocks} diagonal blocks)")
            } else {
                String::new()
            }
        );
        Ok(DigitalSynapses {
            weight,
            inputs,
            outputs,
            blocks,
            weight_t: Vec::new(),
        })
    }

    /// Uniform initialisation `W ~ U(-1/√inputs, 1/√inputs)` (PyTorch's default for
    /// `nn.Linear`, used by the reference EP code of Laborieux et al. 2021), drawn from the
    /// reproducible stream `(seed, [stream])`.
    pub fn uniform_random(inputs: usize, outputs: usize, seed: u64, stream: u64) -> Result<Self> {
        let bound = 1.0 / (inputs.max(1) as f32).sqrt();
        Self::uniform_within(inputs, outputs, bound, seed, stream)
    }

    /// Weights drawn from `U(-bound, bound)` with the stream `(seed, [stream])`.
    pub fn uniform_within(
        inputs: usize,
        outputs: usize,
        bound: f32,
        seed: u64,
        stream: u64,
    ) -> Result<Self> {
        ensure!(
            bound.is_finite() && bound > 0.0,
            "the initial weight bound must be a positive number (got {bound})"
        );
        let mut rng = crate::rng::stream(seed, &[stream]);
        let weight = (0..inputs * outputs)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        DigitalSynapses::new(inputs, outputs, weight)
    }

    /// The stored weights, row-major `outputs x inputs` (a block-diagonal matrix: its
    /// blocks, `outputs x inputs/blocks`).
    pub fn weight(&self) -> &[f32] {
        &self.weight
    }

    /// The stored weights, mutable (digital training).
    pub fn weight_mut(&mut self) -> &mut [f32] {
        self.weight_t.clear();
        &mut self.weight
    }

    /// The weights of diagonal block `g`, row-major `outputs/blocks x inputs/blocks`.
    pub fn block(&self, g: usize) -> &[f32] {
        let len = self.weight.len() / self.blocks;
        &self.weight[g * len..][..len]
    }

    /// The transposed read `x = y · W`, each block's by `product` (`c = a · b` of `a`:
    /// `m x k`, `b`: `k x n`).
    fn read_transposed(
        &self,
        y: &[f32],
        batch: usize,
        x: &mut [f32],
        product: linalg::Product,
    ) -> Result<()> {
        linalg::check_batch_shapes("transposed read", y, x, batch, self.outputs, self.inputs)?;
        let (n, m) = (self.inputs / self.blocks, self.outputs / self.blocks);
        read_block_diagonal(y, batch, (self.blocks, m, n), x, |g, yg, xg| {
            product(yg, self.block(g), batch, m, n, xg);
            Ok(())
        })
    }
}

impl SynapticLayer for DigitalSynapses {
    fn inputs(&self) -> usize {
        self.inputs
    }

    fn outputs(&self) -> usize {
        self.outputs
    }

    fn blocks(&self) -> usize {
        self.blocks
    }

    fn forward(&mut self, x: &[f32], batch: usize, y: &mut [f32]) -> Result<()> {
        linalg::check_batch_shapes("forward read", x, y, batch, self.inputs, self.outputs)?;
        let (n, m) = (self.inputs / self.blocks, self.outputs / self.blocks);
        read_block_diagonal(x, batch, (self.blocks, n, m), y, |g, xg, yg| {
            linalg::a_bt(xg, self.block(g), batch, n, m, yg);
            Ok(())
        })
    }

    fn transposed(&mut self, y: &[f32], batch: usize, x: &mut [f32]) -> Result<()> {
        self.read_transposed(y, batch, x, linalg::a_b)
    }

    /// Each diagonal block generates each block of rows of its product on the thread that
    /// multiplies it, just before (same bits, see `linalg::a_bt_generated`).
    fn forward_generated(
        &mut self,
        batch: usize,
        source: &InputSource<'_>,
        buffer: &mut Vec<f32>,
        y: &mut [f32],
    ) -> Result<()> {
        ensure!(
            y.len() == batch * self.outputs,
            "forward read: {} outputs for {batch} vectors of {}",
            y.len(),
            self.outputs
        );
        let (n, m) = (self.inputs / self.blocks, self.outputs / self.blocks);
        read_generated_blocks(batch, (self.blocks, m), source, y, |g, source_g, y_g| {
            let rows = |rows, out: &mut [f32]| source_g(0, rows, out);
            linalg::a_bt_generated(&rows, self.block(g), (batch, n, m), y_g, buffer);
            Ok(())
        })
    }

    /// The images are read directly where [`ConvGeometry::read_direct`] applies (a full
    /// kernel matrix), else through the im2col patches.
    fn forward_conv(
        &mut self,
        conv: &ConvGeometry,
        (images, batch): (&[f32], usize),
        buffer: &mut Vec<f32>,
        y: &mut [f32],
    ) -> Result<()> {
        ensure!(
            conv.patch_len() == self.inputs
                && conv.out_channels == self.outputs
                && images.len() == batch * conv.input_len()
                && y.len() == batch * conv.pixels() * self.outputs,
            "convolution read: {} x {} kernel matrix, {} image values and {} outputs do not \
             match {batch} images of {:?}",
            self.outputs,
            self.inputs,
            images.len(),
            y.len(),
            conv
        );
        if self.blocks == 1 && conv.reads_direct() {
            if self.weight_t.is_empty() {
                self.weight_t = linalg::transpose(&self.weight, self.outputs, self.inputs);
            }
            if conv.read_direct(images, batch, &self.weight_t, y) {
                return Ok(());
            }
        }
        forward_patches(self, conv, (images, batch), buffer, y)
    }

    fn transposed_sparse_folded(&mut self, y: &[f32], batch: usize, fold: Fold<'_>) -> Result<()> {
        fold.check(batch)?;
        let (m, n) = (self.outputs, self.inputs);
        ensure!(
            y.len() == batch * m,
            "transposed read: {} values for {batch} vectors of {m}",
            y.len()
        );
        let shape = (batch, m, n);
        if self.blocks == 1
            && linalg::a_b_sparse_lhs_folded(
                y,
                &self.weight,
                shape,
                fold.rows,
                (&mut *fold.out, fold.each),
            )
        {
            return Ok(());
        }
        fold.read_then_fold(batch, n, |x| {
            self.read_transposed(y, batch, x, linalg::a_b_sparse_lhs)
        })
    }
}

/// Columns `g·width .. (g+1)·width` of a row-major matrix of `rows` rows, as a contiguous
/// `rows x width` matrix: the matrix itself when it is `width` wide, else a copy.
pub fn column_block(matrix: &[f32], rows: usize, width: usize, g: usize) -> Cow<'_, [f32]> {
    if matrix.len() == rows * width {
        return Cow::Borrowed(matrix);
    }
    let mut block = Vec::new();
    copy_column_block(matrix, rows, width, g, &mut block);
    Cow::Owned(block)
}

/// [`column_block`] copied into `out` (its previous contents dropped).
fn copy_column_block(matrix: &[f32], rows: usize, width: usize, g: usize, out: &mut Vec<f32>) {
    let stride = matrix.len() / rows.max(1);
    out.clear();
    out.extend((0..rows).flat_map(|r| &matrix[r * stride + g * width..][..width]));
}

/// Read a layer of `blocks` diagonal blocks on a batch: block `g` reads columns
/// `g·n_in ..` of every row of `x` (`batch x blocks·n_in`) and its result goes to columns
/// `g·n_out ..` of every row of `y` (`batch x blocks·n_out`). `read(g, x_g, y_g)` reads
/// block `g` (`x_g`: `batch x n_in`, `y_g`: `batch x n_out`); blocks are read in order. A
/// single block reads `x` into `y` directly; several are [`read_generated_blocks`] with
/// each block's columns of `x` copied into one block buffer.
pub fn read_block_diagonal(
    x: &[f32],
    batch: usize,
    (blocks, n_in, n_out): (usize, usize, usize),
    y: &mut [f32],
    mut read: impl FnMut(usize, &[f32], &mut [f32]) -> Result<()>,
) -> Result<()> {
    if blocks == 1 {
        return read(0, x, y);
    }
    let columns = |g: usize, rows: Range<usize>, out: &mut [f32]| {
        for (part, r) in out.chunks_exact_mut(n_in).zip(rows) {
            part.copy_from_slice(&x[(r * blocks + g) * n_in..][..n_in]);
        }
    };
    let mut x_g = vec![0f32; batch * n_in];
    read_generated_blocks(batch, (blocks, n_out), &columns, y, |g, source_g, y_g| {
        source_g(0, 0..batch, &mut x_g);
        read(g, &x_g, y_g)
    })
}

/// Copy `part` (rows of `width`) into columns `g·width ..` of the rows of `matrix` (rows of
/// `blocks·width`).
fn place_block(matrix: &mut [f32], part: &[f32], (blocks, width): (usize, usize), g: usize) {
    for (row, values) in matrix
        .chunks_exact_mut(blocks * width)
        .zip(part.chunks_exact(width))
    {
        row[g * width..][..width].copy_from_slice(values);
    }
}

impl PlasticSynapses for DigitalSynapses {
    fn apply_update(&mut self, update: &OuterProductUpdate) -> Result<()> {
        ensure!(
            self.blocks == 1,
            "an outer-product update covers a full matrix, not one of {} diagonal blocks",
            self.blocks
        );
        check_update_shape(update, self.outputs, self.inputs, "matrix")?;
        self.apply_dense(&update.dense())
    }

    fn apply_dense(&mut self, delta_w: &[f32]) -> Result<()> {
        ensure!(
            delta_w.len() == self.weight.len(),
            "dense update holds {} values, the layer stores {} x {} weights",
            delta_w.len(),
            self.outputs,
            self.inputs / self.blocks
        );
        self.weight_t.clear();
        self.weight
            .iter_mut()
            .zip(delta_w)
            .for_each(|(w, d)| *w += d);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Read the batch `v` forwards or transposed into a fresh vector.
    fn read(layer: &mut DigitalSynapses, transposed: bool, v: &[f32], batch: usize) -> Vec<f32> {
        let len = if transposed {
            layer.inputs()
        } else {
            layer.outputs()
        };
        let mut out = vec![0f32; batch * len];
        if transposed {
            layer.transposed(v, batch, &mut out).unwrap();
        } else {
            layer.forward(v, batch, &mut out).unwrap();
        }
        out
    }

    /// A block-diagonal matrix reads as the full matrix with zeros off its blocks, forwards
    /// and transposed; a full matrix is one block; shapes that do not split are refused.
    #[test]
    fn block_diagonal_reads_equal_the_full_matrix_with_zeros_off_the_blocks() {
        let (blocks, n, m, batch) = (3, 4, 2, 5);
        let mut r = crate::rng::stream(1, &[0]);
        let mut draw =
            |len: usize| -> Vec<f32> { (0..len).map(|_| r.random_range(-1.0..1.0)).collect() };
        let stored = draw(blocks * m * n);
        let mut full = vec![0f32; blocks * m * blocks * n];
        for g in 0..blocks {
            for (i, j) in (0..m).flat_map(|i| (0..n).map(move |j| (i, j))) {
                full[(g * m + i) * blocks * n + g * n + j] = stored[(g * m + i) * n + j];
            }
        }
        let mut grouped =
            DigitalSynapses::block_diagonal(blocks, blocks * n, blocks * m, stored).unwrap();
        let mut dense = DigitalSynapses::new(blocks * n, blocks * m, full).unwrap();
        assert_eq!((grouped.blocks(), dense.blocks()), (3, 1));
        let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(a, b)| (a - b).abs() < 1e-6);

        // Forwards on inputs of `n` per block, then transposed on outputs of `m` per block.
        for (transposed, len) in [(false, n), (true, m)] {
            let v = draw(batch * blocks * len);
            let (a, b) = (
                read(&mut grouped, transposed, &v, batch),
                read(&mut dense, transposed, &v, batch),
            );
            assert!(close(&a, &b), "transposed = {transposed}: {a:?} vs {b:?}");
        }

        let e = DigitalSynapses::block_diagonal(3, 12, 7, vec![0.0; 28]).unwrap_err();
        assert!(e.to_string().contains("3 diagonal blocks"), "{e}");
        let e = DigitalSynapses::block_diagonal(3, 12, 6, vec![0.0; 72]).unwrap_err();
        assert!(e.to_string().contains("holds 72 values"), "{e}");
    }

    /// The sparse transposed read (zeros skipped), folded chunk by chunk, has the bits of
    /// the dense read folded after it, for a full matrix of the EP ConvNet's second
    /// convolution (64 x 800, ten images of 64 patches) and for two diagonal blocks, on
    /// mostly-zero vectors as unpooled rates are. The fold sums each chunk's reads column
    /// by column (as col2im adds patch entries onto an image), so a misplaced chunk or
    /// part shows.
    #[test]
    fn sparse_transposed_reads_have_the_bits_of_dense_ones() {
        let mut r = crate::rng::stream(2, &[0]);
        for (blocks, inputs, outputs, batch, rows) in [(1, 800, 64, 640, 64), (2, 400, 64, 300, 30)]
        {
            let weight = (0..inputs / blocks * outputs)
                .map(|_| r.random_range(-0.1..0.1))
                .collect();
            let mut synapses =
                DigitalSynapses::block_diagonal(blocks, inputs, outputs, weight).unwrap();
            let y: Vec<f32> = (0..batch * outputs)
                .map(|_| {
                    let v: f32 = r.random_range(0.0..6.0);
                    if v < 1.0 { v } else { 0.0 }
                })
                .collect();
            let column_sums = |reads: &[f32], out: &mut [f32]| {
                out.fill(0.0);
                for read in reads.chunks(inputs) {
                    out.iter_mut().zip(read).for_each(|(o, v)| *o += v);
                }
            };
            let mut dense = vec![0f32; batch * inputs];
            synapses.transposed(&y, batch, &mut dense).unwrap();
            let expected: Vec<f32> = dense
                .chunks(rows * inputs)
                .flat_map(|chunk| {
                    let mut sums = vec![0f32; inputs];
                    column_sums(chunk, &mut sums);
                    sums
                })
                .collect();
            let mut folded = vec![f32::NAN; batch / rows * inputs];
            let fold = Fold {
                rows,
                out: &mut folded,
                each: &column_sums,
                scratch: &mut Vec::new(),
            };
            synapses.transposed_sparse_folded(&y, batch, fold).unwrap();
            let differing = expected
                .iter()
                .zip(&folded)
                .position(|(d, s)| d.to_bits() != s.to_bits());
            assert_eq!(differing, None, "{blocks} blocks");
        }
    }

    /// A forward read of generated inputs equals the forward read of the whole batch, bit
    /// for bit, for a full and a block-diagonal matrix, through the digital override
    /// (each block's inputs generated block of rows by block of rows) and through the
    /// trait's default `forward_whole` (each block generated into its columns).
    #[test]
    fn generated_forward_reads_equal_whole_ones() {
        let mut r = crate::rng::stream(4, &[0]);
        for (blocks, inputs, outputs, batch) in [(1, 75, 16, 600), (3, 36, 12, 500)] {
            let weight = (0..inputs / blocks * outputs)
                .map(|_| r.random_range(-0.5..0.5))
                .collect();
            let mut synapses =
                DigitalSynapses::block_diagonal(blocks, inputs, outputs, weight).unwrap();
            let x: Vec<f32> = (0..batch * inputs)
                .map(|_| r.random_range(-1.0..1.0))
                .collect();
            let want = read(&mut synapses, false, &x, batch);
            let width = inputs / blocks;
            let source = |g: usize, rows: Range<usize>, out: &mut [f32]| {
                for (o, row) in out.chunks_exact_mut(width).zip(rows) {
                    o.copy_from_slice(&x[row * inputs + g * width..][..width]);
                }
            };
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let mut y = vec![f32::NAN; batch * outputs];
            synapses
                .forward_generated(batch, &source, &mut Vec::new(), &mut y)
                .unwrap();
            assert_eq!(bits(&y), bits(&want), "{blocks} blocks, digital");
            y.fill(f32::NAN);
            forward_whole(&mut synapses, batch, &source, &mut Vec::new(), &mut y).unwrap();
            assert_eq!(bits(&y), bits(&want), "{blocks} blocks, forward_whole");
        }
    }

    /// A convolution read on digital weights equals the read of its im2col patches bit for
    /// bit: directly from the images where `ConvGeometry::read_direct` applies (here
    /// patches of at most 256 taps, which faer's GEMM also sums as one chain, and rates
    /// with exact zeros), and through the patches for a grouped convolution, also after
    /// the weights change (by an update or in place). A kernel matrix of the wrong shape is
    /// refused with the shapes.
    #[test]
    fn convolution_reads_equal_reads_of_the_patches() {
        let mut r = crate::rng::stream(6, &[0]);
        for (input, out, groups, batch) in [([8, 12, 12], 64, 1, 4), ([4, 9, 9], 32, 2, 3)] {
            let conv = ConvGeometry {
                groups,
                ..ConvGeometry::new(input, out, 3, 1, 1).unwrap()
            };
            let block_inputs = conv.patch_len() / groups;
            let weight = (0..block_inputs * out)
                .map(|_| r.random_range(-0.5..0.5))
                .collect();
            let mut synapses =
                DigitalSynapses::block_diagonal(groups, conv.patch_len(), out, weight).unwrap();
            let images: Vec<f32> = (0..batch * conv.input_len())
                .map(|_| r.random_range(-0.5f32..1.0).max(0.0))
                .collect();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let mut want = vec![f32::NAN; batch * conv.pixels() * out];
            forward_patches(
                &mut synapses,
                &conv,
                (&images, batch),
                &mut Vec::new(),
                &mut want,
            )
            .unwrap();
            let mut y = vec![f32::NAN; want.len()];
            synapses
                .forward_conv(&conv, (&images, batch), &mut Vec::new(), &mut y)
                .unwrap();
            assert_eq!(bits(&y), bits(&want), "{conv:?}");
            // After each way of changing the weights, the next read sees the new ones.
            let delta: Vec<f32> = (0..synapses.weight().len())
                .map(|_| r.random_range(-0.1..0.1))
                .collect();
            for change in 0..2 {
                if change == 0 {
                    synapses.apply_dense(&delta).unwrap();
                } else {
                    synapses.weight_mut().iter_mut().for_each(|w| *w *= -0.5);
                }
                let mut fresh = DigitalSynapses::block_diagonal(
                    groups,
                    conv.patch_len(),
                    out,
                    synapses.weight().to_vec(),
                )
                .unwrap();
                let c = (&images[..], batch);
                forward_patches(&mut fresh, &conv, c, &mut Vec::new(), &mut want).unwrap();
                synapses
                    .forward_conv(&conv, c, &mut Vec::new(), &mut y)
                    .unwrap();
                assert_eq!(bits(&y), bits(&want), "{conv:?}, change {change}");
            }
        }
        let conv = ConvGeometry::new([2, 6, 6], 4, 3, 1, 0).unwrap();
        let mut synapses = DigitalSynapses::new(10, 4, vec![0.0; 40]).unwrap();
        let mut y = vec![0.0; conv.pixels() * 4];
        let err = synapses
            .forward_conv(&conv, (&[0.0; 72], 1), &mut Vec::new(), &mut y)
            .unwrap_err()
            .to_string();
        assert!(err.contains("4 x 10 kernel matrix"), "{err}");
    }

    /// A fold whose chunks do not divide the batch, or whose output does not split into
    /// as many parts, is refused with the counts.
    #[test]
    fn folds_that_do_not_split_the_batch_are_refused() {
        let mut synapses = DigitalSynapses::new(4, 2, vec![0.5; 8]).unwrap();
        let each = |_: &[f32], out: &mut [f32]| out.fill(0.0);
        for (rows, out_len, message) in [
            (4, 6, "does not split into chunks of 4"),
            (3, 5, "5 folded values do not split into 2 equal parts"),
        ] {
            let mut out = vec![0f32; out_len];
            let fold = Fold {
                rows,
                out: &mut out,
                each: &each,
                scratch: &mut Vec::new(),
            };
            let e = synapses
                .transposed_sparse_folded(&[1.0; 12], 6, fold)
                .unwrap_err();
            assert!(e.to_string().contains(message), "{e}");
        }
    }
}
