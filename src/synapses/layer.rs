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

use std::ops::Range;

use anyhow::{Result, ensure};
use rand::RngExt;

use crate::linalg;

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
    /// Forward read of `batch` input vectors that `source` generates on demand (a
    /// convolution's im2col patches), with `buffer` as reusable scratch: the same result
    /// as [`SynapticLayer::forward`] of the whole batch. This default builds the whole
    /// batch; synapses that read in parts (analog tiles) ask for a part at a time, so a
    /// large generated batch never exists whole.
    fn forward_generated(
        &mut self,
        batch: usize,
        source: &mut InputSource<'_>,
        buffer: &mut Vec<f32>,
        y: &mut [f32],
    ) -> Result<()> {
        let len = batch * self.inputs();
        buffer.resize(len, 0.0);
        source(0..batch, &mut buffer[..len]);
        self.forward(&buffer[..len], batch, y)
    }
}

/// Generates input vectors on demand: `source(rows, out)` writes the vectors `rows` of a
/// batch into `out` (`rows.len() x inputs`, every value).
pub type InputSource<'a> = dyn FnMut(Range<usize>, &mut [f32]) + 'a;

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
    fn forward_generated(
        &mut self,
        batch: usize,
        source: &mut InputSource<'_>,
        buffer: &mut Vec<f32>,
        y: &mut [f32],
    ) -> Result<()> {
        (**self).forward_generated(batch, source, buffer, y)
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

/// A digital `f32` weight matrix: the floating-point reference [`SynapticLayer`].
#[derive(Clone, Debug, PartialEq)]
pub struct DigitalSynapses {
    weight: Vec<f32>,
    inputs: usize,
    outputs: usize,
}

impl DigitalSynapses {
    /// Wrap a row-major `outputs x inputs` weight matrix.
    pub fn new(inputs: usize, outputs: usize, weight: Vec<f32>) -> Result<Self> {
        ensure!(
            inputs > 0 && outputs > 0,
            "a synaptic layer needs at least one input and one output (got {inputs} x {outputs})"
        );
        ensure!(
            weight.len() == inputs * outputs,
            "weight matrix holds {} values, expected {outputs} outputs x {inputs} inputs",
            weight.len()
        );
        Ok(DigitalSynapses {
            weight,
            inputs,
            outputs,
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

    /// The weights, row-major `outputs x inputs`.
    pub fn weight(&self) -> &[f32] {
        &self.weight
    }

    /// The weights, mutable (digital training).
    pub fn weight_mut(&mut self) -> &mut [f32] {
        &mut self.weight
    }
}

impl SynapticLayer for DigitalSynapses {
    fn inputs(&self) -> usize {
        self.inputs
    }

    fn outputs(&self) -> usize {
        self.outputs
    }

    fn forward(&mut self, x: &[f32], batch: usize, y: &mut [f32]) -> Result<()> {
        linalg::check_batch_shapes("forward read", x, y, batch, self.inputs, self.outputs)?;
        linalg::a_bt(x, &self.weight, batch, self.inputs, self.outputs, y);
        Ok(())
    }

    fn transposed(&mut self, y: &[f32], batch: usize, x: &mut [f32]) -> Result<()> {
        linalg::check_batch_shapes("transposed read", y, x, batch, self.outputs, self.inputs)?;
        linalg::a_b(y, &self.weight, batch, self.outputs, self.inputs, x);
        Ok(())
    }
}

impl PlasticSynapses for DigitalSynapses {
    fn apply_update(&mut self, update: &OuterProductUpdate) -> Result<()> {
        check_update_shape(update, self.outputs, self.inputs, "matrix")?;
        self.apply_dense(&update.dense())
    }

    fn apply_dense(&mut self, delta_w: &[f32]) -> Result<()> {
        ensure!(
            delta_w.len() == self.weight.len(),
            "dense update holds {} values, the layer has {} x {} weights",
            delta_w.len(),
            self.outputs,
            self.inputs
        );
        self.weight
            .iter_mut()
            .zip(delta_w)
            .for_each(|(w, d)| *w += d);
        Ok(())
    }
}
