//! The layered energy-based network of equilibrium propagation and its dynamics.
//!
//! Neuron layers `s_1 … s_L` (firing rates in `[0, 1]`) sit above a clamped input
//! `s_0 = x`; synaptic layer `k` (`W_k`, `b_k`) connects `s_{k-1}` to `s_k`. The network's
//! primitive function (Ernoult et al., NeurIPS 2019; Laborieux et al., Front.
//! Neurosci. 2021, fully connected case) is
//!
//! `Φ(x, s) = Σ_k s_kᵀ (W_k s_{k-1} + b_k)`,
//!
//! and the discrete-time dynamics, all layers updated synchronously from the previous
//! states, is `s_k ← ρ(∂Φ/∂s_k − β ∂L/∂s_k)`, i.e.
//!
//! `s_k ← ρ(W_k s_{k-1} + b_k + W_{k+1}ᵀ s_{k+1})`, and for the output layer
//! `s_L ← ρ(W_L s_{L-1} + b_L + β (y − s_L))`
//!
//! with the mean-squared-error cost `L = ½‖s_L − y‖²` and nudging strength `β` (`β = 0`:
//! free phase). The states are already rates (outputs of `ρ`), so this is the form
//! `s_k ← ρ(W_k ρ(s_{k-1}) + W_{k+1}ᵀ ρ(s_{k+1}) + b_k)` whenever `ρ` is the identity on
//! `[0, 1]` (the hard sigmoid).
//!
//! With the hard sigmoid `ρ = clip(·, 0, 1)` a fixed point is exactly a stationary point
//! of the Hopfield-like energy `E(s) = ½ Σ_k ‖s_k‖² − Φ(x, s) + β L(s)` on the box
//! `[0, 1]ⁿ` (the update is a projected gradient step of unit length on `E`), which is the
//! setting of the EP theorem (Scellier & Bengio, Front. Comput. Neurosci. 2017).
//!
//! A synaptic layer may also be convolutional ([`Connection::Conv`], the `P_CNN` of
//! Laborieux et al. 2021): its term of `Φ` is `s_kᵀ (P(W_k ⊛ s_{k-1}) + b_k)`, with `⊛`
//! the convolution (every output pixel one read of the kernel matrix `C_out x C·k·k` with
//! its input patch), `P` max (or average) pooling and one bias per channel. Its drive of
//! `s_k` is `P(W_k ⊛ s_{k-1})`, and its feedback to `s_{k-1}`, `∂Φ/∂s_{k-1}`, is the
//! transposed read of the kernel matrix on the rates of `s_k` unpooled onto the positions
//! of each window's maximum, folded back onto the image (col2im) — on a crossbar, the
//! transposed tile read on patches. A fully connected layer above a convolutional one
//! reads its neurons flattened in NCHW order.

use anyhow::{Context, Result, ensure};
use rand::RngExt;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::optimizer::EpOptimizerState;
use crate::learning::rule::{LearningRule, LocalSignals, Phase, WeightChange, apply_change};
use crate::linalg::conv::{ConvGeometry, fill};
use crate::nn::sequential::pool::{PoolGeometry, PoolKind};
use crate::synapses::{DigitalSynapses, Fold, PlasticSynapses, SynapticLayer};

/// Neuron states per rayon task when applying the activation (each element is computed
/// independently, so the split never changes a result).
const ACTIVATION_CHUNK: usize = 8192;
/// Steepness of the reference code's logistic activation `1/(1 + exp(-4 (x - ½)))`.
const STEEP_SIGMOID_GAIN: f32 = 4.0;

/// The neuron non-linearity `ρ`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `ρ(u) = clip(u, 0, 1)`: the hard sigmoid of Laborieux et al. 2021. Fixed points are
    /// exactly the minima of the energy on `[0, 1]ⁿ`, so the EP theorem holds exactly.
    #[default]
    HardSigmoid,
    /// `ρ(u) = 1/(1 + exp(-4 (u - ½)))`: the smooth activation (`mysig`) of the authors'
    /// reference code for the MNIST multilayer perceptron.
    SteepSigmoid,
}

impl Activation {
    /// `ρ(u)`.
    pub fn apply(self, u: f32) -> f32 {
        match self {
            Activation::HardSigmoid => hard_sigmoid(u),
            Activation::SteepSigmoid => steep_sigmoid(u),
        }
    }

    /// `u ← ρ(u)` for every value of `values` (one choice of `ρ` for the whole slice, so the
    /// hard sigmoid's loop is vectorised).
    pub fn apply_all(self, values: &mut [f32]) {
        match self {
            Activation::HardSigmoid => values.iter_mut().for_each(|u| *u = hard_sigmoid(*u)),
            Activation::SteepSigmoid => values.iter_mut().for_each(|u| *u = steep_sigmoid(*u)),
        }
    }
}

/// `clip(u, 0, 1)`.
#[inline]
fn hard_sigmoid(u: f32) -> f32 {
    u.clamp(0.0, 1.0)
}

/// `1/(1 + exp(-4 (u - ½)))`.
#[inline]
fn steep_sigmoid(u: f32) -> f32 {
    1.0 / (1.0 + (-STEEP_SIGMOID_GAIN * (u - 0.5)).exp())
}

/// Nudging of the output layer towards the target: `target` (`batch x outputs`) with
/// strength `beta` (negative for the `-β` phase of symmetric nudging).
#[derive(Clone, Copy, Debug)]
pub struct Nudge<'a> {
    /// One-hot (or any) target rates, `batch x outputs`, row-major.
    pub target: &'a [f32],
    /// Nudging strength `β`.
    pub beta: f32,
}

/// Neuron states of a batch: one `batch x size` row-major matrix per neuron layer.
pub type States = Vec<Vec<f32>>;

/// The equilibria of one EP training step and how to contrast them.
#[derive(Clone, Debug)]
pub struct Equilibria {
    /// Free-phase fixed point (`β = 0`), used for the prediction.
    pub free: States,
    /// Fixed point of the phase nudged with `beta_plus`.
    pub plus: States,
    /// Fixed point of the phase nudged with `-beta_plus` (symmetric nudging only).
    pub minus: Option<States>,
    /// Nudging strength of the `plus` phase (its sign may be random).
    pub beta_plus: f32,
    /// Batch size.
    pub batch: usize,
}

impl Equilibria {
    /// The two phases the weight update contrasts, each with its nudging strength: first
    /// the reference phase (`−β` for symmetric nudging, the free phase otherwise), then
    /// the `+β` phase.
    pub fn phases(&self) -> [(&States, f32); 2] {
        match &self.minus {
            Some(minus) => [(minus, -self.beta_plus), (&self.plus, self.beta_plus)],
            None => [(&self.free, 0.0), (&self.plus, self.beta_plus)],
        }
    }

    /// What a learning rule sees of the fully connected synaptic layer `layer`: the pre- and
    /// post-synaptic rates of both phases ([`Equilibria::phases`]), with the clamped input `x` below the
    /// first layer.
    pub fn signals<'a>(&'a self, x: &'a [f32], layer: usize) -> Result<LocalSignals<'a>> {
        let [first, second] = self.phases();
        ensure!(
            layer < first.0.len(),
            "synaptic layer {layer} does not exist: the network has {} neuron layers",
            first.0.len()
        );
        let phase = |(states, beta): (&'a States, f32)| Phase {
            inputs: if layer == 0 { x } else { &states[layer - 1] },
            outputs: &states[layer],
            beta,
        };
        Ok(LocalSignals {
            layer,
            batch: self.batch,
            rows: self.batch,
            phase: phase(first),
            error: None,
            second_phase: Some(phase(second)),
        })
    }

    /// The EP estimate of `−∂L/∂b_k` for neuron layer `layer` (batch mean of
    /// `L = ½‖s_L − y‖²`): `Σ_batch (s_k^a − s_k^b) / (Δβ · batch)`, `a` and `b` the two
    /// phases of [`Equilibria::phases`] and `Δβ` the difference of their nudging strengths.
    pub fn bias_estimate(&self, layer: usize) -> Result<Vec<f32>> {
        self.shared_bias_estimate(layer, 1)
    }

    /// [`Equilibria::bias_estimate`] for biases each shared by `per_bias` consecutive
    /// neurons of a sample (a convolution's channel over its pooled pixels): the estimate of
    /// each bias sums over its neurons.
    pub fn shared_bias_estimate(&self, layer: usize, per_bias: usize) -> Result<Vec<f32>> {
        let [(b, beta_b), (a, beta_a)] = self.phases();
        ensure!(
            layer < a.len() && self.batch > 0 && per_bias > 0,
            "neuron layer {layer} does not exist, the batch is empty or no neuron has a bias"
        );
        let delta_beta = beta_a - beta_b;
        ensure!(delta_beta != 0.0, "EP needs a non-zero nudging strength β");
        let scale = 1.0 / (delta_beta * self.batch as f32);
        let n = a[layer].len() / self.batch;
        let mut bias = vec![0.0; n / per_bias];
        for (row_a, row_b) in a[layer].chunks_exact(n).zip(b[layer].chunks_exact(n)) {
            for (j, (p, q)) in row_a.iter().zip(row_b).enumerate() {
                bias[j / per_bias] += p - q;
            }
        }
        bias.iter_mut().for_each(|v| *v *= scale);
        Ok(bias)
    }
}

/// How synaptic layer `k` connects neuron layer `k − 1` (or the input) to neuron layer `k`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connection {
    /// Fully connected: `W_k s_{k-1}` (the layer below flattened in NCHW order); one bias
    /// per neuron.
    Dense,
    /// Convolution of the layer below (`C x H x W`) by the kernel matrix (`C_out x C·k·k`),
    /// then pooling: the drive is `P(W_k ⊛ s_{k-1})` and layer `k` holds
    /// `C_out x H' x W'` neurons with one bias per channel.
    Conv {
        /// Geometry of the convolution.
        conv: ConvGeometry,
        /// Pooling of the convolution's output (`C_out x out_h x out_w`).
        pool: PoolGeometry,
    },
}

/// One convolutional layer of an EP ConvNet built by [`EpNetwork::digital_convnet`]:
/// `out` kernels of `kernel x kernel` (stride 1, zero `padding`), then max pooling over
/// `pool x pool` windows with stride `pool`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpConv {
    /// Output channels.
    pub out: usize,
    /// Kernel height and width.
    pub kernel: usize,
    /// Zero padding on every side.
    #[serde(default)]
    pub padding: usize,
    /// Max-pooling window and stride.
    pub pool: usize,
}

/// Work buffers of one convolutional layer's reads during a relaxation, reused from step
/// to step instead of allocated: room for the im2col patches (or, for the transposed read,
/// the patch gradients) where the synapses need the whole batch of them, and the per-pixel
/// reads (or the rates unpooled onto them).
#[derive(Clone, Debug, Default)]
struct ConvWork {
    patches: Vec<f32>,
    pixels: Vec<f32>,
}

/// What the learning rule of a convolutional layer reads in each of the two phases
/// (see [`EpNetwork::conv_pre`]), kept from mini-batch to mini-batch: tens of MB per
/// phase, whose pages would otherwise be faulted in anew at every learning step.
#[derive(Clone, Debug, Default)]
struct ConvSignals {
    /// im2col patches of the layer below.
    pre: [Vec<f32>; 2],
    /// The convolution's output on them (NCHW).
    maps: [Vec<f32>; 2],
    /// The layer's rates unpooled onto that output.
    post: [Vec<f32>; 2],
    /// The pooled drive and the reads' work buffers while computing them.
    work: (Vec<f32>, ConvWork),
}

/// A layered energy-based network on any [`SynapticLayer`]s.
#[derive(Clone, Debug)]
pub struct EpNetwork<S> {
    synapses: Vec<S>,
    biases: Vec<Vec<f32>>,
    connections: Vec<Connection>,
    activation: Activation,
    signals: Box<ConvSignals>,
}

impl EpNetwork<DigitalSynapses> {
    /// A digital network with layer sizes `sizes` (input first), initialised as the
    /// reference code: `W_k, b_k ~ U(-1/√fan_in, 1/√fan_in)` from the streams of `seed`.
    pub fn digital(sizes: &[usize], activation: Activation, seed: u64) -> Result<Self> {
        ensure!(
            sizes.len() >= 2,
            "an EP network needs an input layer and at least one neuron layer, got sizes \
             {sizes:?}"
        );
        let (mut synapses, mut biases) = (Vec::new(), Vec::new());
        for (k, pair) in sizes.windows(2).enumerate() {
            let (w, b) = uniform_layer(pair[0], pair[1], seed, k)
                .with_context(|| format!("synaptic layer {k} ({} -> {})", pair[0], pair[1]))?;
            synapses.push(w);
            biases.push(b);
        }
        EpNetwork::new(synapses, biases, activation)
    }

    /// A digital ConvNet on `input`-shaped images (`[C, H, W]`): the convolutional layers
    /// `convs` (each with max pooling), then fully connected layers of widths `fc` (the
    /// last one the output), initialised as PyTorch's `Conv2d` and `Linear`:
    /// `W_k, b_k ~ U(-1/√fan_in, 1/√fan_in)` (`fan_in = C·k·k` for a convolution) from the
    /// streams of `seed`.
    pub fn digital_convnet(
        input: [usize; 3],
        convs: &[EpConv],
        fc: &[usize],
        activation: Activation,
        seed: u64,
    ) -> Result<Self> {
        ensure!(
            !fc.is_empty(),
            "an EP ConvNet needs at least one fully connected (output) layer"
        );
        let (mut synapses, mut biases, mut connections) = (Vec::new(), Vec::new(), Vec::new());
        let mut shape = input;
        for (k, c) in convs.iter().enumerate() {
            let conv = ConvGeometry::new(shape, c.out, c.kernel, 1, c.padding)
                .with_context(|| format!("convolutional layer {k}"))?;
            let maps = [c.out, conv.out_h(), conv.out_w()];
            let pool = PoolGeometry::new(PoolKind::Max, maps, c.pool, c.pool)
                .with_context(|| format!("pooling of convolutional layer {k}"))?;
            let (w, b) = uniform_layer(conv.patch_len(), c.out, seed, k)?;
            synapses.push(w);
            biases.push(b);
            connections.push(Connection::Conv { conv, pool });
            shape = [c.out, pool.out_h(), pool.out_w()];
        }
        let mut width = shape.iter().product::<usize>();
        for (j, &out) in fc.iter().enumerate() {
            let (w, b) = uniform_layer(width, out, seed, convs.len() + j)?;
            synapses.push(w);
            biases.push(b);
            connections.push(Connection::Dense);
            width = out;
        }
        EpNetwork::with_connections(synapses, biases, connections, activation)
    }
}

/// Synaptic layer `k` of a digital network as the reference code initialises it (PyTorch's
/// `Linear`/`Conv2d` default): weights from stream `2k`, biases from stream `2k + 1` of
/// `seed`, all uniform in `±1/√fan_in`.
fn uniform_layer(
    fan_in: usize,
    out: usize,
    seed: u64,
    k: usize,
) -> Result<(DigitalSynapses, Vec<f32>)> {
    let stream = 2 * k as u64;
    let weights = DigitalSynapses::uniform_random(fan_in, out, seed, stream)?;
    let bound = 1.0 / (fan_in as f32).sqrt();
    let mut rng = crate::rng::stream(seed, &[stream + 1]);
    let biases = (0..out).map(|_| rng.random_range(-bound..bound)).collect();
    Ok((weights, biases))
}

impl<S: SynapticLayer> EpNetwork<S> {
    /// Assemble a fully connected network from its synaptic layers (input side first) and
    /// neuron biases.
    pub fn new(synapses: Vec<S>, biases: Vec<Vec<f32>>, activation: Activation) -> Result<Self> {
        let connections = vec![Connection::Dense; synapses.len()];
        EpNetwork::with_connections(synapses, biases, connections, activation)
    }

    /// Assemble a network from its synaptic layers (input side first), their biases (one
    /// per neuron, or one per channel for a convolution) and how each layer connects.
    pub fn with_connections(
        synapses: Vec<S>,
        biases: Vec<Vec<f32>>,
        connections: Vec<Connection>,
        activation: Activation,
    ) -> Result<Self> {
        ensure!(
            !synapses.is_empty(),
            "an EP network needs at least one synaptic layer"
        );
        ensure!(
            synapses.len() == biases.len() && synapses.len() == connections.len(),
            "{} synaptic layers, {} bias vectors and {} connections",
            synapses.len(),
            biases.len(),
            connections.len()
        );
        let net = EpNetwork {
            synapses,
            biases,
            connections,
            activation,
            signals: Box::default(),
        };
        for k in 0..net.synapses.len() {
            net.check_layer(k)?;
        }
        Ok(net)
    }

    /// Check synaptic layer `k` against its connection, its biases and the layer below.
    fn check_layer(&self, k: usize) -> Result<()> {
        let (syn, bias) = (&self.synapses[k], &self.biases[k]);
        let (fan_in, outputs) = match self.connections[k] {
            Connection::Dense => (syn.inputs(), syn.outputs()),
            Connection::Conv { conv, pool } => {
                ensure!(
                    [pool.channels, pool.in_h, pool.in_w]
                        == [conv.out_channels, conv.out_h(), conv.out_w()],
                    "layer {k}: the pooling's input {:?} is not the convolution's output {:?}",
                    [pool.channels, pool.in_h, pool.in_w],
                    [conv.out_channels, conv.out_h(), conv.out_w()]
                );
                (conv.patch_len(), conv.out_channels)
            }
        };
        ensure!(
            syn.inputs() == fan_in && syn.outputs() == outputs,
            "layer {k}: synapses of {} x {} (outputs x inputs) for a connection of {outputs} x \
             {fan_in}",
            syn.outputs(),
            syn.inputs()
        );
        ensure!(
            bias.len() == outputs,
            "layer {k}: {} biases for {outputs} neurons (or channels)",
            bias.len()
        );
        if k > 0 {
            let below = self.neurons(k - 1);
            let reads = self.input_len(k);
            ensure!(
                reads == below,
                "synaptic layer {k} takes {reads} inputs but layer {} has {below} neurons",
                k - 1
            );
        }
        Ok(())
    }

    /// Values synaptic layer `k` reads from the layer below (or the input).
    fn input_len(&self, k: usize) -> usize {
        match self.connections[k] {
            Connection::Dense => self.synapses[k].inputs(),
            Connection::Conv { conv, .. } => conv.input_len(),
        }
    }

    /// Neurons of layer `k` per sample.
    pub fn neurons(&self, k: usize) -> usize {
        match self.connections[k] {
            Connection::Dense => self.synapses[k].outputs(),
            Connection::Conv { conv, pool } => conv.out_channels * pool.out_h() * pool.out_w(),
        }
    }

    /// Neurons of layer `k` that share one bias: 1, or the pooled pixels of a channel.
    fn neurons_per_bias(&self, k: usize) -> usize {
        self.neurons(k) / self.biases[k].len()
    }

    /// How each synaptic layer connects, input side first.
    pub fn connections(&self) -> &[Connection] {
        &self.connections
    }

    /// The bias of every neuron of layer `k` (a channel's bias repeated over its pixels).
    fn neuron_biases(&self, k: usize) -> Vec<f32> {
        let per = self.neurons_per_bias(k);
        self.biases[k]
            .iter()
            .flat_map(|&b| std::iter::repeat_n(b, per))
            .collect()
    }

    /// The drive of neuron layer `k` from the rates `below` (the input for `k = 0`), without
    /// bias, into `out`: `W_k s` or `P(W_k ⊛ s)`; for a convolution `maps` receives its
    /// output before pooling, which routes the layer's feedback (`work`: reused buffers).
    fn drive_into(
        &mut self,
        k: usize,
        below: &[f32],
        batch: usize,
        (out, maps): (&mut Vec<f32>, &mut Vec<f32>),
        work: &mut ConvWork,
    ) -> Result<()> {
        match self.connections[k] {
            Connection::Dense => self.synapses[k].forward(below, batch, out),
            Connection::Conv { conv, pool } => {
                fill(
                    &mut work.pixels,
                    batch * conv.pixels() * conv.out_channels,
                    false,
                );
                self.synapses[k].forward_conv(
                    &conv,
                    (below, batch),
                    &mut work.patches,
                    &mut work.pixels,
                )?;
                conv.pixels_to_channels_into(&work.pixels, batch, None, maps);
                pool.forward_into(maps, out);
                Ok(())
            }
        }
    }

    /// `∂Φ/∂s_{k-1}` of synaptic layer `k` given the rates `above` of neuron layer `k`, into
    /// `out`: `W_kᵀ s_k`, or for a convolution the transposed read of the kernel matrix on
    /// the rates unpooled onto `maps` (the convolution's output: each pooled rate goes to
    /// its window's maximum), folded back onto the image (`work`: reused buffers).
    fn feedback_into(
        &mut self,
        k: usize,
        (above, maps): (&[f32], &[f32]),
        batch: usize,
        out: &mut Vec<f32>,
        work: &mut ConvWork,
    ) -> Result<()> {
        match self.connections[k] {
            Connection::Dense => self.synapses[k].transposed(above, batch, out),
            Connection::Conv { conv, pool } => {
                let rows = batch * conv.pixels();
                pool.backward_pixel_rows_into(maps, above, &mut work.pixels);
                fill(out, batch * conv.input_len(), false);
                let fold = Fold {
                    rows: conv.pixels(),
                    out,
                    each: &|patches, image| conv.col2im_image(patches, image),
                    scratch: &mut work.patches,
                };
                self.synapses[k].transposed_sparse_folded(&work.pixels, rows, fold)
            }
        }
    }

    /// Layer sizes (values per sample), input first.
    pub fn sizes(&self) -> Vec<usize> {
        let mut sizes = vec![self.inputs()];
        sizes.extend((0..self.synapses.len()).map(|k| self.neurons(k)));
        sizes
    }

    /// Number of input features.
    pub fn inputs(&self) -> usize {
        self.input_len(0)
    }

    /// Number of output neurons (classes).
    pub fn outputs(&self) -> usize {
        self.neurons(self.synapses.len() - 1)
    }

    /// The synaptic layers, input side first.
    pub fn synapses(&self) -> &[S] {
        &self.synapses
    }

    /// The synaptic layers, mutable (to reprogram or perturb them).
    pub fn synapses_mut(&mut self) -> &mut [S] {
        &mut self.synapses
    }

    /// Neuron biases, one vector per neuron layer.
    pub fn biases(&self) -> &[Vec<f32>] {
        &self.biases
    }

    /// The activation `ρ`.
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// All-zero neuron states for a batch (the reference code's initial state).
    pub fn zero_states(&self, batch: usize) -> States {
        (0..self.synapses.len())
            .map(|k| vec![0.0; batch * self.neurons(k)])
            .collect()
    }

    /// The input drive `W_1 x` (or `P(W_1 ⊛ x)`) of the first neuron layer (`batch x n_1`),
    /// without bias. The input is
    /// clamped, so the drive is constant during every phase: computed once per batch, it
    /// leaves only the small layers to each relaxation step.
    pub fn input_drive(&mut self, x: &[f32], batch: usize) -> Result<Vec<f32>> {
        ensure!(
            x.len() == batch * self.inputs(),
            "input holds {} values, expected {batch} vectors of {}",
            x.len(),
            self.inputs()
        );
        let mut drive = vec![0.0; batch * self.neurons(0)];
        self.drive_into(
            0,
            x,
            batch,
            (&mut drive, &mut Vec::new()),
            &mut ConvWork::default(),
        )
        .context("input drive")?;
        Ok(drive)
    }

    /// Run `steps` synchronous steps of the dynamics from `states`, with the input drive
    /// `drive` (from [`EpNetwork::input_drive`]) and optional output nudging.
    pub fn relax(
        &mut self,
        drive: &[f32],
        batch: usize,
        nudge: Option<Nudge<'_>>,
        states: &mut States,
        steps: usize,
    ) -> Result<()> {
        self.check_states(states, batch)?;
        ensure!(
            drive.len() == states[0].len(),
            "input drive holds {} values, expected {}",
            drive.len(),
            states[0].len()
        );
        if let Some(n) = nudge {
            ensure!(
                n.target.len() == batch * self.outputs(),
                "target holds {} values, expected {batch} vectors of {}",
                n.target.len(),
                self.outputs()
            );
        }
        let biases: States = (0..self.synapses.len())
            .map(|k| self.neuron_biases(k))
            .collect();
        let mut pre = self.zero_states(batch);
        let mut feedback: States = (0..self.synapses.len() - 1)
            .map(|k| vec![0.0; batch * self.neurons(k)])
            .collect();
        let mut maps: States = vec![Vec::new(); self.synapses.len()];
        let mut work: Vec<ConvWork> = (0..self.synapses.len())
            .map(|_| ConvWork::default())
            .collect();
        for _ in 0..steps {
            self.step(
                drive,
                batch,
                nudge,
                states,
                &biases,
                (&mut pre, &mut feedback, &mut maps, &mut work),
            )?;
        }
        Ok(())
    }

    /// One synchronous step: every pre-activation from the previous states, then `ρ`
    /// (`biases`: every neuron's bias; `pre`, `feedback`, `maps` and `work` are work
    /// buffers).
    fn step(
        &mut self,
        drive: &[f32],
        batch: usize,
        nudge: Option<Nudge<'_>>,
        states: &mut States,
        biases: &States,
        (pre, feedback, maps, work): (&mut States, &mut States, &mut States, &mut [ConvWork]),
    ) -> Result<()> {
        let last = self.synapses.len() - 1;
        for k in 1..=last {
            self.drive_into(
                k,
                &states[k - 1],
                batch,
                (&mut pre[k], &mut maps[k]),
                &mut work[k],
            )
            .with_context(|| format!("forward read of synaptic layer {k}"))?;
        }
        for k in 0..last {
            let (above, maps) = (&states[k + 1], &maps[k + 1]);
            self.feedback_into(
                k + 1,
                (above, maps),
                batch,
                &mut feedback[k],
                &mut work[k + 1],
            )
            .with_context(|| format!("transposed read of synaptic layer {}", k + 1))?;
        }
        for k in 0..=last {
            let n = biases[k].len();
            let rows_per_task = (ACTIVATION_CHUNK / n).max(1);
            let bias = &biases[k];
            // The first layer's drive is the constant input drive, copied in by each task.
            let drive = (k == 0).then_some(drive);
            let feedback = (k < last).then(|| feedback[k].as_slice());
            let nudge = if k == last { nudge } else { None };
            let state = &states[k];
            let rho = self.activation;
            pre[k]
                .par_chunks_mut(rows_per_task * n)
                .enumerate()
                .for_each(|(task, chunk)| {
                    for (r, row) in chunk.chunks_exact_mut(n).enumerate() {
                        let start = (task * rows_per_task + r) * n;
                        let end = start + n;
                        if let Some(drive) = drive {
                            row.copy_from_slice(&drive[start..end]);
                        }
                        row.iter_mut().zip(bias).for_each(|(u, b)| *u += b);
                        if let Some(fb) = feedback {
                            row.iter_mut()
                                .zip(&fb[start..end])
                                .for_each(|(u, f)| *u += f);
                        }
                        if let Some(nd) = nudge {
                            let target = &nd.target[start..end];
                            for ((u, t), s) in row.iter_mut().zip(target).zip(&state[start..end]) {
                                *u += nd.beta * (t - s);
                            }
                        }
                        rho.apply_all(row);
                    }
                });
        }
        std::mem::swap(states, pre);
        Ok(())
    }

    fn check_states(&self, states: &States, batch: usize) -> Result<()> {
        ensure!(
            states.len() == self.synapses.len(),
            "{} state layers for {} neuron layers",
            states.len(),
            self.synapses.len()
        );
        for (k, s) in states.iter().enumerate() {
            ensure!(
                s.len() == batch * self.neurons(k),
                "state layer {k} holds {} values, expected {batch} x {}",
                s.len(),
                self.neurons(k)
            );
        }
        Ok(())
    }

    /// Energy `E(s) = ½ Σ_k ‖s_k‖² − Φ(x, s) + β ½‖s_L − y‖²` of each sample of a batch
    /// (the Lyapunov function of the hard-sigmoid dynamics; `nudge = None` for `β = 0`).
    pub fn energy(
        &mut self,
        x: &[f32],
        batch: usize,
        states: &States,
        nudge: Option<Nudge<'_>>,
    ) -> Result<Vec<f64>> {
        self.check_states(states, batch)?;
        let mut energy = vec![0.0f64; batch];
        for k in 0..self.synapses.len() {
            let below = if k == 0 { x } else { &states[k - 1] };
            let n = self.neurons(k);
            let mut drive = vec![0.0; batch * n];
            self.drive_into(
                k,
                below,
                batch,
                (&mut drive, &mut Vec::new()),
                &mut ConvWork::default(),
            )?;
            let bias = self.neuron_biases(k);
            for (b, e) in energy.iter_mut().enumerate() {
                for j in 0..n {
                    let s = f64::from(states[k][b * n + j]);
                    let u = f64::from(drive[b * n + j]) + f64::from(bias[j]);
                    *e += 0.5 * s * s - s * u;
                }
            }
        }
        if let Some(nd) = nudge {
            let out = &states[states.len() - 1];
            let n = self.outputs();
            for (b, e) in energy.iter_mut().enumerate() {
                let cost: f64 = (0..n)
                    .map(|j| f64::from(out[b * n + j] - nd.target[b * n + j]).powi(2))
                    .sum();
                *e += f64::from(nd.beta) * 0.5 * cost;
            }
        }
        Ok(energy)
    }
}

impl<S: PlasticSynapses> EpNetwork<S> {
    /// One learning step from the equilibria `eq` of a training step on the input `x`: the
    /// rule proposes each synaptic layer's change from the layer's local signals
    /// ([`Equilibria::signals`]), the optimiser turns it into a step (plain SGD: the
    /// proposal itself) and [`apply_change`] applies it (programming pulses on a crossbar,
    /// an `f32` add on digital synapses); the biases, digital, take the optimiser's step
    /// along [`Equilibria::bias_estimate`] (plain SGD: `b_k += η_k · estimate`).
    pub fn learn<R: LearningRule + ?Sized>(
        &mut self,
        x: &[f32],
        eq: &Equilibria,
        rule: &mut R,
        optimizer: &mut EpOptimizerState,
    ) -> Result<()> {
        ensure!(
            !rule.signals().error,
            "rule {} reads an error signal at the layers' outputs, which an EP network does not \
             provide: it offers the two phases' activities (SignalRequest::second_phase)",
            rule.name()
        );
        ensure!(
            optimizer.learning_rates().len() == self.synapses.len(),
            "{} learning rates for {} synaptic layers",
            optimizer.learning_rates().len(),
            self.synapses.len()
        );
        for k in 0..self.synapses.len() {
            let change = match self.connections[k] {
                Connection::Dense => rule.propose(&eq.signals(x, k)?)?,
                Connection::Conv { .. } => self.propose_conv(k, x, eq, rule)?,
            };
            let layer = &self.synapses[k];
            let change = optimizer.weight_change(k, change, layer.outputs(), layer.inputs())?;
            apply_change(&mut self.synapses[k], &change)
                .with_context(|| format!("weight update of synaptic layer {k}"))?;
            let estimate = eq.shared_bias_estimate(k, self.neurons_per_bias(k))?;
            optimizer.step_biases(k, &mut self.biases[k], &estimate)?;
        }
        Ok(())
    }

    /// What `rule` proposes for convolutional layer `k` from the equilibria `eq` on the input
    /// `x`: its local signals, one row per read of the kernel matrix (see
    /// [`EpNetwork::conv_pre`]).
    fn propose_conv<R: LearningRule + ?Sized>(
        &mut self,
        k: usize,
        x: &[f32],
        eq: &Equilibria,
        rule: &mut R,
    ) -> Result<WeightChange> {
        let Connection::Conv { conv, pool } = self.connections[k] else {
            anyhow::bail!("synaptic layer {k} is not convolutional");
        };
        let phases = eq.phases();
        let mut signals = std::mem::take(&mut self.signals);
        // The clamped input's patches and convolution serve both phases.
        let computed = if k == 0 { 1 } else { 2 };
        for (i, (states, _)) in phases.iter().enumerate().take(computed) {
            let (pre, maps) = (&mut signals.pre[i], &mut signals.maps[i]);
            self.conv_pre(k, (x, states), eq.batch, (pre, maps), &mut signals.work)?;
        }
        for (i, (states, _)) in phases.iter().enumerate() {
            let maps = &signals.maps[i.min(computed - 1)];
            pool.backward_pixel_rows_into(maps, &states[k], &mut signals.post[i]);
        }
        let phase = |i: usize| Phase {
            inputs: &signals.pre[i.min(computed - 1)],
            outputs: &signals.post[i],
            beta: phases[i].1,
        };
        let change = rule.propose(&LocalSignals {
            layer: k,
            batch: eq.batch,
            rows: eq.batch * conv.pixels(),
            phase: phase(0),
            error: None,
            second_phase: Some(phase(1)),
        });
        self.signals = signals;
        change
    }

    /// The pre-synaptic side of convolutional layer `k` in one phase's `states`, into
    /// `pre` and `maps`: the im2col patches of the layer below (or of the input `x`),
    /// `(batch·pixels) x C·k·k`, one row per read of the kernel matrix, and the
    /// convolution's output on them (NCHW), whose window maxima route the rates of layer
    /// `k`: unpooled onto it, they are the post-synaptic side, `(batch·pixels) x C_out`, so
    /// that `Σ_rows post ⊗ pre` is `∂Φ/∂W_k` (`drive` and `work`: reused buffers).
    fn conv_pre(
        &mut self,
        k: usize,
        (x, states): (&[f32], &States),
        batch: usize,
        (pre, maps): (&mut Vec<f32>, &mut Vec<f32>),
        (drive, work): &mut (Vec<f32>, ConvWork),
    ) -> Result<()> {
        let Connection::Conv { conv, .. } = self.connections[k] else {
            anyhow::bail!("synaptic layer {k} is not convolutional");
        };
        let below = if k == 0 { x } else { &states[k - 1] };
        self.drive_into(k, below, batch, (drive, maps), work)
            .with_context(|| format!("forward read of synaptic layer {k}"))?;
        conv.im2col_into(below, batch, pre);
        Ok(())
    }
}
