//! Binary (BNN) and ternary (TNN) networks: trained digitally with the straight-through
//! estimator, then folded into weight matrices of ±1 (or −1/0/+1) and per-neuron
//! thresholds for in-memory inference (e.g. on 2T2R arrays read by sense amplifiers).
//!
//! Training follows Courbariaux, Hubara et al. (NeurIPS 2016, "Binarized neural
//! networks"): every layer keeps real *hidden* weights `W_h` clipped to `[-1, 1]`; the
//! forward pass uses `sign(W_h)` (ternary networks: `W_h` ternarised with the threshold
//! `Δ = 0.7·mean|W_h|` of Li & Liu's ternary weight networks, 2016); the weight gradient
//! passes straight through to `W_h`; hidden neurons apply batch norm then `sign` (or a
//! ternary step with a dead zone), whose gradient is passed where `|y| ≤ 1` (the hardtanh
//! straight-through estimator); the output layer is batch-normed logits trained with
//! softmax cross-entropy; the optimiser is Adam (or SGD) on `W_h`, `γ`, `β`.
//!
//! Folding: with running statistics `μ`, `σ²` and `s = √(σ² + ε)`, a binary neuron fires
//! `+1` iff `γ(a − μ)/s + β ≥ 0`, i.e. iff `a ≥ μ − βs/γ` for `γ > 0`. For `γ < 0` the
//! inequality flips, so the neuron's weight row is negated instead, leaving one comparison
//! `Σ w x ≥ τ` per neuron; ternary neurons get two thresholds the same way. The output
//! layer's batch norm becomes a per-class scale and offset.

use super::backprop::{EpochReport, TrainConfig, TrainReport, augment, epoch_order, gather};
use super::mlp::softmax_cross_entropy;
use super::network::{Classifier, Layer, Network, Neuron, argmax_rows, check_data_fits};
use super::optim::ParamState;
use crate::data::Dataset;
use crate::linalg;
use crate::rng;
use crate::synapses::SynapticLayer;
use anyhow::{Result, bail, ensure};
use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Batch-norm variance floor ε (PyTorch's default).
const BN_EPSILON: f32 = 1e-5;
/// Weight of the current batch in the running batch-norm statistics (PyTorch's default).
const BN_MOMENTUM: f32 = 0.1;
/// Ternary weight threshold as a fraction of the layer's mean |W_h| (Li & Liu, "Ternary
/// weight networks", 2016).
const TWN_DELTA_FACTOR: f32 = 0.7;
/// Dead zone of ternary neurons, in units of the batch-normed pre-activation: the neuron
/// outputs 0 when `|y| ≤` this value.
pub const TERNARY_ACTIVATION_THRESHOLD: f32 = 0.5;
/// Pixel intensity (in [0, 1]) at and above which a binarised input pixel is `+1`.
pub const PIXEL_THRESHOLD: f32 = 0.5;
/// Width of the straight-through window: the sign's gradient passes where `|y| ≤ 1`.
const STE_WINDOW: f32 = 1.0;
/// Bound of the hidden (real) weights: they are clipped to `[−1, 1]` after every step
/// (Courbariaux, Hubara et al. 2016), beyond which the sign could never flip back.
pub(crate) const HIDDEN_WEIGHT_BOUND: f32 = 1.0;

/// Weight and neuron alphabet of a quantised network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quantization {
    /// Weights and hidden activations in {−1, +1}.
    Binary,
    /// Weights and hidden activations in {−1, 0, +1}.
    Ternary,
}

/// How input pixels enter the first layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputEncoding {
    /// Pixel intensities in [0, 1] as they are (first layer needs analog/multi-bit inputs).
    Real,
    /// `+1` if the pixel is at least [`PIXEL_THRESHOLD`], else `−1` (all layers binary).
    Binary,
}

/// A matrix of quantised weights (`outputs x inputs`, row-major, values in {−1, 0, +1}).
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizedMatrix {
    inputs: usize,
    outputs: usize,
    weights: Vec<i8>,
    quantization: Quantization,
}

impl QuantizedMatrix {
    /// A matrix from its weights, checking the shape and that every weight is allowed.
    pub fn new(
        inputs: usize,
        outputs: usize,
        weights: Vec<i8>,
        quantization: Quantization,
    ) -> Result<Self> {
        ensure!(
            inputs > 0 && outputs > 0,
            "a quantised matrix needs at least one input and one output"
        );
        ensure!(
            weights.len() == inputs * outputs,
            "quantised matrix has {} weights, expected outputs x inputs = {outputs} x {inputs}",
            weights.len()
        );
        let allowed: &[i8] = match quantization {
            Quantization::Binary => &[-1, 1],
            Quantization::Ternary => &[-1, 0, 1],
        };
        if let Some(bad) = weights.iter().find(|w| !allowed.contains(w)) {
            bail!(
                "weight {bad} is not allowed in a {quantization:?} matrix (allowed: {allowed:?})"
            );
        }
        Ok(QuantizedMatrix {
            inputs,
            outputs,
            weights,
            quantization,
        })
    }

    /// The weights, `outputs x inputs`, row-major.
    pub fn weights(&self) -> &[i8] {
        &self.weights
    }

    /// The weights as `f32` (for the products).
    fn weights_f32(&self) -> Vec<f32> {
        self.weights.iter().map(|&v| f32::from(v)).collect()
    }

    /// The weight alphabet.
    pub fn quantization(&self) -> Quantization {
        self.quantization
    }

    /// Replace each weight, independently with probability `bit_error_rate`, by another
    /// allowed value: binary weights flip sign; ternary weights move to one of the two
    /// other values with equal probability (a weight-level error model; device-level 2T2R
    /// errors belong to the crossbar model).
    pub fn inject_bit_errors<R: Rng + ?Sized>(
        &mut self,
        bit_error_rate: f64,
        rng: &mut R,
    ) -> Result<()> {
        ensure!(
            (0.0..=1.0).contains(&bit_error_rate),
            "bit_error_rate = {bit_error_rate} must lie in [0, 1]"
        );
        for w in &mut self.weights {
            if rng.random::<f64>() < bit_error_rate {
                *w = match self.quantization {
                    Quantization::Binary => -*w,
                    Quantization::Ternary => {
                        let others: [i8; 2] = match *w {
                            -1 => [0, 1],
                            0 => [-1, 1],
                            _ => [-1, 0],
                        };
                        others[usize::from(rng.random::<bool>())]
                    }
                };
            }
        }
        Ok(())
    }
}

impl SynapticLayer for QuantizedMatrix {
    fn inputs(&self) -> usize {
        self.inputs
    }

    fn outputs(&self) -> usize {
        self.outputs
    }

    fn forward(&mut self, x: &[f32], batch: usize, y: &mut [f32]) -> Result<()> {
        let (n_x, n_y) = (self.inputs, self.outputs);
        linalg::check_batch_shapes("quantised product", x, y, batch, n_x, n_y)?;
        linalg::a_bt(x, &self.weights_f32(), batch, n_x, n_y, y);
        Ok(())
    }

    fn transposed(&mut self, y: &[f32], batch: usize, x: &mut [f32]) -> Result<()> {
        let (n, m) = (self.inputs, self.outputs);
        linalg::check_batch_shapes("quantised transposed product", y, x, batch, m, n)?;
        linalg::a_b(y, &self.weights_f32(), batch, m, n, x);
        Ok(())
    }
}

/// Flip the weights of every layer of a folded network with probability
/// `bit_error_rate` (see [`QuantizedMatrix::inject_bit_errors`]); layer `l` draws from
/// stream `(seed, [BIT_ERROR_STREAM, l])`.
pub fn inject_bit_errors(
    net: &mut Network<QuantizedMatrix>,
    bit_error_rate: f64,
    seed: u64,
) -> Result<()> {
    for (l, layer) in net.layers_mut().iter_mut().enumerate() {
        layer.op.inject_bit_errors(
            bit_error_rate,
            &mut rng::stream(seed, &[rng::BIT_ERROR_STREAM, l as u64]),
        )?;
    }
    Ok(())
}

/// One trainable layer: hidden weights and batch-norm parameters and statistics.
#[derive(Clone, Debug, PartialEq)]
struct QLayer {
    inputs: usize,
    outputs: usize,
    hidden: Vec<f32>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
    running_mean: Vec<f32>,
    running_var: Vec<f32>,
}

/// A view of one layer's batch norm `y = γ(a − μ)/√(σ² + ε) + β`, one value per neuron.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNorm<'a> {
    /// Scale γ.
    pub gamma: &'a [f32],
    /// Shift β.
    pub beta: &'a [f32],
    /// Running mean μ of the pre-activation (used at inference).
    pub running_mean: &'a [f32],
    /// Running variance σ² of the pre-activation (used at inference).
    pub running_var: &'a [f32],
}

/// A binary or ternary multilayer network with hidden real weights and batch norm.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizedMlp {
    quantization: Quantization,
    input: InputEncoding,
    layers: Vec<QLayer>,
}

/// Quantise hidden weights to the forward-pass weights (as f32 for the products).
pub(crate) fn quantize(hidden: &[f32], q: Quantization) -> Vec<f32> {
    match q {
        Quantization::Binary => hidden
            .iter()
            .map(|&w| if w >= 0.0 { 1.0 } else { -1.0 })
            .collect(),
        Quantization::Ternary => {
            let delta = TWN_DELTA_FACTOR * hidden.iter().map(|w| w.abs()).sum::<f32>()
                / hidden.len() as f32;
            hidden
                .iter()
                .map(|&w| {
                    if w > delta {
                        1.0
                    } else if w < -delta {
                        -1.0
                    } else {
                        0.0
                    }
                })
                .collect()
        }
    }
}

/// The hidden-neuron nonlinearity applied to a batch-normed pre-activation.
pub(crate) fn activate(y: f32, q: Quantization) -> f32 {
    match q {
        Quantization::Binary => {
            if y >= 0.0 {
                1.0
            } else {
                -1.0
            }
        }
        Quantization::Ternary => {
            if y > TERNARY_ACTIVATION_THRESHOLD {
                1.0
            } else if y < -TERNARY_ACTIVATION_THRESHOLD {
                -1.0
            } else {
                0.0
            }
        }
    }
}

/// The straight-through estimator of [`activate`] (the hardtanh window): the error `dy`
/// of each output passes to its input `y` where `|y| ≤ 1`, and is 0 elsewhere.
pub(crate) fn straight_through(dy: &mut [f32], y: &[f32]) {
    dy.iter_mut().zip(y).for_each(|(d, &y)| {
        if y.abs() > STE_WINDOW {
            *d = 0.0;
        }
    });
}

/// Clip hidden weights to `±`[`HIDDEN_WEIGHT_BOUND`] after an optimiser step.
pub(crate) fn clip_hidden(hidden: &mut [f32]) {
    hidden
        .iter_mut()
        .for_each(|w| *w = w.clamp(-HIDDEN_WEIGHT_BOUND, HIDDEN_WEIGHT_BOUND));
}

fn encode(x: &[f32], input: InputEncoding) -> Vec<f32> {
    match input {
        InputEncoding::Real => x.to_vec(),
        InputEncoding::Binary => x
            .iter()
            .map(|&p| if p >= PIXEL_THRESHOLD { 1.0 } else { -1.0 })
            .collect(),
    }
}

/// Values the training backward pass needs from one layer's forward pass.
struct Cache {
    input: Vec<f32>,
    wq: Vec<f32>,
    xhat: Vec<f32>,
    inv_std: Vec<f32>,
    y: Vec<f32>,
}

impl QuantizedMlp {
    /// A network with the given layer sizes (e.g. `[784, 512, 10]`); hidden weights
    /// uniform in `±1/√inputs` (PyTorch's `nn.Linear` default) from stream
    /// `(seed, [QUANTIZED_INIT_STREAM, layer])`, `γ = 1`, `β = 0`.
    pub fn random(
        sizes: &[usize],
        quantization: Quantization,
        input: InputEncoding,
        seed: u64,
    ) -> Result<Self> {
        ensure!(
            sizes.len() >= 2,
            "layer sizes {sizes:?}: give at least the input and output sizes"
        );
        ensure!(
            sizes.iter().all(|&s| s > 0),
            "layer sizes {sizes:?} must all be at least 1"
        );
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(l, s)| {
                let (inputs, outputs) = (s[0], s[1]);
                let bound = 1.0 / (inputs as f32).sqrt();
                let mut r = rng::stream(seed, &[rng::QUANTIZED_INIT_STREAM, l as u64]);
                QLayer {
                    inputs,
                    outputs,
                    hidden: (0..inputs * outputs)
                        .map(|_| r.random_range(-bound..bound))
                        .collect(),
                    gamma: vec![1.0; outputs],
                    beta: vec![0.0; outputs],
                    running_mean: vec![0.0; outputs],
                    running_var: vec![1.0; outputs],
                }
            })
            .collect();
        Ok(QuantizedMlp {
            quantization,
            input,
            layers,
        })
    }

    /// Layer sizes, input first.
    pub fn sizes(&self) -> Vec<usize> {
        std::iter::once(self.layers[0].inputs)
            .chain(self.layers.iter().map(|l| l.outputs))
            .collect()
    }

    /// The weight and activation alphabet.
    pub fn quantization(&self) -> Quantization {
        self.quantization
    }

    /// How input pixels are encoded.
    pub fn input_encoding(&self) -> InputEncoding {
        self.input
    }

    /// Hidden real weights of layer `layer` (`outputs x inputs`, row-major, in [−1, 1]).
    pub fn hidden_weights(&self, layer: usize) -> Option<&[f32]> {
        self.layers.get(layer).map(|l| l.hidden.as_slice())
    }

    /// Batch-norm parameters and running statistics of layer `layer`.
    pub fn batch_norm(&self, layer: usize) -> Option<BatchNorm<'_>> {
        self.layers.get(layer).map(|l| BatchNorm {
            gamma: &l.gamma,
            beta: &l.beta,
            running_mean: &l.running_mean,
            running_var: &l.running_var,
        })
    }

    /// Quantised weights of layer `layer` as used in the forward pass (before folding).
    pub fn quantized_weights(&self, layer: usize) -> Option<Vec<i8>> {
        self.layers.get(layer).map(|l| {
            quantize(&l.hidden, self.quantization)
                .iter()
                .map(|&w| w as i8)
                .collect()
        })
    }

    /// Inference forward pass with running batch-norm statistics (the unfolded network).
    fn infer(&self, x: &[f32], batch: usize) -> Vec<f32> {
        let mut act = encode(x, self.input);
        let last = self.layers.len() - 1;
        for (l, layer) in self.layers.iter().enumerate() {
            let wq = quantize(&layer.hidden, self.quantization);
            let mut a = vec![0.0; batch * layer.outputs];
            linalg::a_bt(&act, &wq, batch, layer.inputs, layer.outputs, &mut a);
            for row in a.chunks_exact_mut(layer.outputs) {
                for (j, v) in row.iter_mut().enumerate() {
                    let s = (layer.running_var[j] + BN_EPSILON).sqrt();
                    let y = layer.gamma[j] * (*v - layer.running_mean[j]) / s + layer.beta[j];
                    *v = if l == last {
                        y
                    } else {
                        activate(y, self.quantization)
                    };
                }
            }
            act = a;
        }
        act
    }

    /// Fold batch norm into per-neuron thresholds (hidden layers) and a per-class scale
    /// and offset (output layer), giving a network of quantised matrices that makes the
    /// same predictions; the input binarisation, if any, stays in front.
    pub fn fold(&self) -> Result<Network<QuantizedMatrix>> {
        let last = self.layers.len() - 1;
        let mut layers = Vec::with_capacity(self.layers.len());
        for (l, layer) in self.layers.iter().enumerate() {
            let mut weights: Vec<i8> = quantize(&layer.hidden, self.quantization)
                .iter()
                .map(|&w| w as i8)
                .collect();
            let n = layer.outputs;
            let (mut low, mut high) = (vec![0.0f32; n], vec![0.0f32; n]);
            let (mut scale, mut offset) = (vec![0.0f32; n], vec![0.0f32; n]);
            for j in 0..n {
                let (g, b) = (f64::from(layer.gamma[j]), f64::from(layer.beta[j]));
                let mu = f64::from(layer.running_mean[j]);
                let s = f64::from(layer.running_var[j] + BN_EPSILON).sqrt();
                if l == last {
                    scale[j] = (g / s) as f32;
                    offset[j] = (b - g * mu / s) as f32;
                    continue;
                }
                if g < 0.0 {
                    weights[j * layer.inputs..(j + 1) * layer.inputs]
                        .iter_mut()
                        .for_each(|w| *w = -*w);
                }
                let (lo, hi) = fold_thresholds(g, b, mu, s, self.quantization);
                (low[j], high[j]) = (lo as f32, hi as f32);
            }
            let neuron = if l == last {
                Neuron::Affine { scale, offset }
            } else {
                match self.quantization {
                    Quantization::Binary => Neuron::Sign(high),
                    Quantization::Ternary => Neuron::Ternary { low, high },
                }
            };
            let op = QuantizedMatrix::new(layer.inputs, layer.outputs, weights, self.quantization)?;
            layers.push(Layer { op, neuron });
        }
        let net = Network::new(layers)?;
        Ok(match self.input {
            InputEncoding::Real => net,
            InputEncoding::Binary => net.with_binary_input(PIXEL_THRESHOLD),
        })
    }
}

/// Thresholds `(low, high)` on the (polarity-corrected) sum `a'` of a hidden neuron with
/// batch norm `y = γ(a − μ)/s + β`: binary fires `+1` iff `a' ≥ high` (`low = high`);
/// ternary gives `+1` iff `a' > high`, `−1` iff `a' < low`. For `γ < 0` the caller negates
/// the weight row, so `a' = −a`.
fn fold_thresholds(g: f64, b: f64, mu: f64, s: f64, q: Quantization) -> (f64, f64) {
    let inf = f64::INFINITY;
    // The pre-activation a at which y equals `level`, in the polarity-corrected frame.
    let crossing = |level: f64| {
        let a = mu + (level - b) * s / g;
        if g > 0.0 { a } else { -a }
    };
    match q {
        Quantization::Binary => {
            let t = if g == 0.0 {
                if b >= 0.0 { -inf } else { inf }
            } else {
                crossing(0.0)
            };
            (t, t)
        }
        Quantization::Ternary => {
            let d = f64::from(TERNARY_ACTIVATION_THRESHOLD);
            if g == 0.0 {
                if b > d {
                    (-inf, -inf)
                } else if b < -d {
                    (inf, inf)
                } else {
                    (-inf, inf)
                }
            } else {
                (crossing(-d), crossing(d))
            }
        }
    }
}

impl Classifier for QuantizedMlp {
    fn inputs(&self) -> usize {
        self.layers[0].inputs
    }

    fn classes(&self) -> usize {
        self.layers[self.layers.len() - 1].outputs
    }

    fn logits(&mut self, x: &[f32], batch: usize) -> Result<Vec<f32>> {
        self.check_inputs(x, batch)?;
        Ok(self.infer(x, batch))
    }
}

/// Per-layer optimiser memories: hidden weights, γ, β.
type LayerStates = [ParamState; 3];

/// Train `net` on `data` in place. Uses `config`'s optimiser (Adam as in Courbariaux et
/// al.), epochs, batch size, step-size decay, shifts and seed; the last batch of an epoch
/// is skipped if it holds a single image (batch norm needs two). Weight noise is not
/// supported here (an error).
pub fn train_quantized(
    net: &mut QuantizedMlp,
    data: &Dataset,
    config: &TrainConfig,
) -> Result<TrainReport> {
    train_quantized_observed(net, data, config, &mut |_| {})
}

/// [`train_quantized`], calling `on_epoch` with each finished epoch's report.
pub fn train_quantized_observed(
    net: &mut QuantizedMlp,
    data: &Dataset,
    config: &TrainConfig,
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<TrainReport> {
    config.validate()?;
    config.check_shift_fits(data)?;
    ensure!(
        config.weight_noise.is_none(),
        "weight_noise applies to real-valued MLPs; train binary/ternary networks without it"
    );
    ensure!(
        config.batch_size >= 2,
        "batch_size = {}: batch norm needs at least 2 images per batch",
        config.batch_size
    );
    check_data_fits(net.inputs(), net.classes(), data)?;
    ensure!(data.len() >= 2, "cannot train on fewer than 2 images");
    let mut states: Vec<LayerStates> = vec![Default::default(); net.layers.len()];
    let mut lr = config.optimizer.learning_rate();
    let mut report = TrainReport::default();
    for epoch in 0..config.epochs {
        let start = Instant::now();
        let order = epoch_order(data.len(), config.seed, epoch);
        let (mut loss_sum, mut correct, mut seen) = (0.0, 0usize, 0usize);
        for (b, indices) in order
            .chunks(config.batch_size)
            .enumerate()
            .filter(|(_, c)| c.len() >= 2)
        {
            let (mut x, labels) = gather(data, indices);
            augment(
                &mut x,
                data.shape(),
                config,
                rng::QUANTIZED_SHIFT_STREAM,
                (epoch, b),
            );
            let (loss, hits) = net.train_step(&x, &labels, &mut states, config, lr);
            loss_sum += loss * labels.len() as f64;
            correct += hits;
            seen += labels.len();
        }
        lr *= config.learning_rate_decay;
        let epoch_report = EpochReport {
            epoch,
            loss: loss_sum / seen as f64,
            train_accuracy: correct as f64 / seen as f64,
            seconds: start.elapsed().as_secs_f64(),
        };
        on_epoch(&epoch_report);
        report.epochs.push(epoch_report);
    }
    Ok(report)
}

impl QuantizedMlp {
    /// Forward with batch statistics, backward with the straight-through estimator, one
    /// optimiser step. Returns the batch loss and the number of correct predictions.
    fn train_step(
        &mut self,
        x: &[f32],
        labels: &[u8],
        states: &mut [LayerStates],
        config: &TrainConfig,
        lr: f32,
    ) -> (f64, usize) {
        let batch = labels.len();
        let caches = self.forward_train(x, batch);
        let logits = &caches[caches.len() - 1].y;
        let hits = argmax_rows(logits, self.classes())
            .iter()
            .zip(labels)
            .filter(|&(&p, &l)| p == usize::from(l))
            .count();
        let (loss, mut dy) = softmax_cross_entropy(logits, labels);
        for l in (0..self.layers.len()).rev() {
            let layer = &mut self.layers[l];
            let cache = &caches[l];
            let n = layer.outputs;
            if l + 1 < caches.len() {
                // Straight-through estimator of the sign / ternary step (hardtanh window).
                straight_through(&mut dy, &cache.y);
            }
            let (da, dgamma, dbeta) =
                batch_norm_backward(&dy, &cache.xhat, &cache.inv_std, &layer.gamma, n);
            let mut dw = vec![0.0; layer.hidden.len()];
            linalg::at_b(&da, &cache.input, n, batch, layer.inputs, &mut dw);
            if l > 0 {
                let mut dx = vec![0.0; batch * layer.inputs];
                linalg::a_b(&da, &cache.wq, batch, n, layer.inputs, &mut dx);
                dy = dx;
            }
            let [sw, sg, sb] = &mut states[l];
            sw.step(&config.optimizer, lr, &mut layer.hidden, &dw);
            clip_hidden(&mut layer.hidden);
            sg.step(&config.optimizer, lr, &mut layer.gamma, &dgamma);
            sb.step(&config.optimizer, lr, &mut layer.beta, &dbeta);
        }
        (loss, hits)
    }

    /// Training forward pass with batch statistics; updates the running statistics.
    fn forward_train(&mut self, x: &[f32], batch: usize) -> Vec<Cache> {
        let mut act = encode(x, self.input);
        let last = self.layers.len() - 1;
        let mut caches = Vec::with_capacity(self.layers.len());
        for (l, layer) in self.layers.iter_mut().enumerate() {
            let wq = quantize(&layer.hidden, self.quantization);
            let n = layer.outputs;
            let mut a = vec![0.0; batch * n];
            linalg::a_bt(&act, &wq, batch, layer.inputs, n, &mut a);
            let (mean, var) = column_moments(&a, n);
            let inv_std: Vec<f32> = var.iter().map(|v| 1.0 / (v + BN_EPSILON).sqrt()).collect();
            let mut xhat = a;
            for row in xhat.chunks_exact_mut(n) {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = (*v - mean[j]) * inv_std[j];
                }
            }
            let y: Vec<f32> = xhat
                .chunks_exact(n)
                .flat_map(|row| {
                    row.iter()
                        .enumerate()
                        .map(|(j, &h)| layer.gamma[j] * h + layer.beta[j])
                })
                .collect();
            let unbiased = batch as f32 / (batch as f32 - 1.0);
            for j in 0..n {
                layer.running_mean[j] =
                    (1.0 - BN_MOMENTUM) * layer.running_mean[j] + BN_MOMENTUM * mean[j];
                layer.running_var[j] =
                    (1.0 - BN_MOMENTUM) * layer.running_var[j] + BN_MOMENTUM * var[j] * unbiased;
            }
            let next = if l == last {
                Vec::new()
            } else {
                y.iter().map(|&v| activate(v, self.quantization)).collect()
            };
            caches.push(Cache {
                input: std::mem::replace(&mut act, next),
                wq,
                xhat,
                inv_std,
                y,
            });
        }
        caches
    }
}

/// Per-column mean and biased variance of a `rows x n` row-major matrix (fixed order).
pub(crate) fn column_moments(a: &[f32], n: usize) -> (Vec<f32>, Vec<f32>) {
    let rows = (a.len() / n) as f64;
    let mut sum = vec![0.0f64; n];
    let mut sq = vec![0.0f64; n];
    for row in a.chunks_exact(n) {
        for (j, &v) in row.iter().enumerate() {
            sum[j] += f64::from(v);
            sq[j] += f64::from(v) * f64::from(v);
        }
    }
    let mean: Vec<f64> = sum.iter().map(|s| s / rows).collect();
    let var = sq
        .iter()
        .zip(&mean)
        .map(|(q, m)| ((q / rows - m * m).max(0.0)) as f32)
        .collect();
    (mean.into_iter().map(|m| m as f32).collect(), var)
}

/// Backward pass of batch norm `y = γ·x̂ + β`, `x̂ = (a − mean)·inv_std` with batch
/// statistics: returns `(∂L/∂a, ∂L/∂γ, ∂L/∂β)` (Ioffe & Szegedy, ICML 2015).
pub(crate) fn batch_norm_backward(
    dy: &[f32],
    xhat: &[f32],
    inv_std: &[f32],
    gamma: &[f32],
    n: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let rows = dy.len() / n;
    let mut dgamma = vec![0.0f32; n];
    let mut dbeta = vec![0.0f32; n];
    for (drow, hrow) in dy.chunks_exact(n).zip(xhat.chunks_exact(n)) {
        for j in 0..n {
            dgamma[j] += drow[j] * hrow[j];
            dbeta[j] += drow[j];
        }
    }
    // With dx̂ = γ·dy: ∂L/∂a = inv_std/B · (B·dx̂ − Σ dx̂ − x̂·Σ dx̂·x̂), and Σ dx̂ = γ·dβ,
    // Σ dx̂·x̂ = γ·dγ.
    let b = rows as f32;
    let mut da = vec![0.0f32; dy.len()];
    for ((arow, drow), hrow) in da
        .chunks_exact_mut(n)
        .zip(dy.chunks_exact(n))
        .zip(xhat.chunks_exact(n))
    {
        for j in 0..n {
            let g = gamma[j];
            arow[j] = inv_std[j] / b * (b * g * drow[j] - g * dbeta[j] - hrow[j] * g * dgamma[j]);
        }
    }
    (da, dgamma, dbeta)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Batch norm's analytic input gradient matches central finite differences of
    /// `L = Σ c ⊙ BN(a)` (the loss is linear in the output, so only BN's curvature enters).
    #[test]
    fn batch_norm_backward_matches_finite_differences() {
        let (rows, n) = (6, 3);
        let a: Vec<f64> = (0..rows * n)
            .map(|i| ((i * 37 % 11) as f64 - 5.0) * 0.3)
            .collect();
        let c: Vec<f64> = (0..rows * n)
            .map(|i| ((i * 13 % 7) as f64 - 3.0) * 0.2)
            .collect();
        let gamma = [1.3f32, -0.7, 0.4];
        let loss = |a: &[f64]| -> f64 {
            let mut total = 0.0;
            for j in 0..n {
                let col: Vec<f64> = (0..rows).map(|r| a[r * n + j]).collect();
                let m = col.iter().sum::<f64>() / rows as f64;
                let v = col.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / rows as f64;
                for r in 0..rows {
                    let y = f64::from(gamma[j]) * (col[r] - m) / (v + f64::from(BN_EPSILON)).sqrt();
                    total += c[r * n + j] * y;
                }
            }
            total
        };
        let af: Vec<f32> = a.iter().map(|&v| v as f32).collect();
        let (mean, var) = column_moments(&af, n);
        let inv_std: Vec<f32> = var.iter().map(|v| 1.0 / (v + BN_EPSILON).sqrt()).collect();
        let xhat: Vec<f32> = af
            .iter()
            .enumerate()
            .map(|(i, &v)| (v - mean[i % n]) * inv_std[i % n])
            .collect();
        let dy: Vec<f32> = c.iter().map(|&v| v as f32).collect();
        let (da, _, _) = batch_norm_backward(&dy, &xhat, &inv_std, &gamma, n);
        let h = 1e-5;
        for i in 0..rows * n {
            let (mut up, mut down) = (a.clone(), a.clone());
            up[i] += h;
            down[i] -= h;
            let numeric = (loss(&up) - loss(&down)) / (2.0 * h);
            assert!(
                (numeric - f64::from(da[i])).abs() < 1e-4,
                "a[{i}]: numeric {numeric}, analytic {}",
                da[i]
            );
        }
    }

    /// The folded network computes the same function as the batch-normed one for every
    /// polarity of γ (negative γ negates the weight row, γ = 0 gives a constant neuron).
    #[test]
    fn folding_with_negative_and_zero_gamma_preserves_the_network() {
        for q in [Quantization::Binary, Quantization::Ternary] {
            for input in [InputEncoding::Binary, InputEncoding::Real] {
                let mut net = QuantizedMlp::random(&[20, 16, 5], q, input, 1).unwrap();
                let mut r = rng::stream(2, &[]);
                for layer in &mut net.layers {
                    for j in 0..layer.outputs {
                        layer.gamma[j] = if j % 5 == 0 {
                            0.0
                        } else {
                            r.random_range(-1.5..1.5)
                        };
                        layer.beta[j] = r.random_range(-1.0..1.0);
                        layer.running_mean[j] = r.random_range(-2.0..2.0);
                        layer.running_var[j] = r.random_range(0.5..4.0);
                    }
                }
                assert!(net.layers[0].gamma.iter().any(|&g| g < 0.0));
                let batch = 200;
                let x: Vec<f32> = (0..batch * 20).map(|_| r.random_range(0.0..1.0)).collect();
                let want = net.infer(&x, batch);
                let got = net.fold().unwrap().logits(&x, batch).unwrap();
                for (w, g) in want.iter().zip(&got) {
                    assert!(
                        (w - g).abs() <= 1e-4 * (1.0 + w.abs()),
                        "{q:?} {input:?}: {w} vs {g}"
                    );
                }
            }
        }
    }

    #[test]
    fn folded_thresholds_reproduce_the_batch_norm_sign() {
        // Every polarity and the γ = 0 corner: compare on a grid of pre-activations.
        for &(g, b) in &[
            (0.8, 0.3),
            (-1.2, 0.5),
            (0.0, 0.2),
            (0.0, -0.9),
            (0.0, 0.7),
            (2.0, -1.5),
        ] {
            let (mu, s) = (1.7, 2.3);
            for q in [Quantization::Binary, Quantization::Ternary] {
                let (lo, hi) = fold_thresholds(g, b, mu, s, q);
                for k in -40..=40 {
                    let a = f64::from(k) * 0.37;
                    let y = (g * (a - mu) / s + b) as f32;
                    let ap = if g < 0.0 { -a } else { a };
                    let folded = match q {
                        Quantization::Binary => {
                            if ap >= hi {
                                1.0
                            } else {
                                -1.0
                            }
                        }
                        Quantization::Ternary => {
                            if ap > hi {
                                1.0
                            } else if ap < lo {
                                -1.0
                            } else {
                                0.0
                            }
                        }
                    };
                    assert_eq!(folded, activate(y, q), "γ {g} β {b} a {a} {q:?}");
                }
            }
        }
    }
}
