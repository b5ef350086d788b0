//! The digital reference multilayer perceptron: dense layers, ReLU between them, softmax
//! cross-entropy on the output, and exact backpropagation.
//!
//! Weights are stored in PyTorch's `nn.Linear` layout: `outputs x inputs`, row-major `f32`,
//! plus one bias per output. A layer computes `y = x · Wᵀ + b` for a batch of row vectors.

use super::network::{Classifier, Layer, Network, Neuron};
use super::noise::WeightNoise;
use crate::linalg;
use crate::rng;
use crate::synapses::SynapticLayer;
use anyhow::{Context, Result, ensure};
use rand_distr::{Distribution, StandardNormal};

/// A fully connected layer: weight matrix `outputs x inputs` (row-major) and biases.
#[derive(Clone, Debug, PartialEq)]
pub struct Dense {
    inputs: usize,
    outputs: usize,
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl Dense {
    /// A layer from its weights (`outputs x inputs`, row-major) and biases (`outputs`).
    pub fn new(inputs: usize, outputs: usize, weight: Vec<f32>, bias: Vec<f32>) -> Result<Dense> {
        ensure!(
            inputs > 0 && outputs > 0,
            "a dense layer needs at least one input and one output"
        );
        ensure!(
            weight.len() == inputs * outputs,
            "weight matrix has {} values, expected outputs x inputs = {outputs} x {inputs}",
            weight.len()
        );
        ensure!(
            bias.len() == outputs,
            "bias has {} values, expected one per output ({outputs})",
            bias.len()
        );
        ensure!(
            weight.iter().chain(&bias).all(|v| v.is_finite()),
            "weights and biases must be finite (found NaN or infinity)"
        );
        Ok(Dense {
            inputs,
            outputs,
            weight,
            bias,
        })
    }

    /// He-initialised layer (Gaussian weights of variance 2 / inputs, zero biases; He et
    /// al., ICCV 2015), drawn from stream `(seed, [MLP_INIT_STREAM, layer])`.
    pub fn he_random(inputs: usize, outputs: usize, seed: u64, layer: usize) -> Result<Dense> {
        ensure!(
            inputs > 0 && outputs > 0,
            "a dense layer needs at least one input and one output"
        );
        let mut r = rng::stream(seed, &[rng::MLP_INIT_STREAM, layer as u64]);
        let std = (2.0 / inputs as f64).sqrt();
        let weight = (0..inputs * outputs)
            .map(|_| {
                let z: f64 = StandardNormal.sample(&mut r);
                (std * z) as f32
            })
            .collect();
        Dense::new(inputs, outputs, weight, vec![0.0; outputs])
    }

    /// Number of inputs (columns of the weight matrix).
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Number of outputs (rows of the weight matrix).
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// Weight matrix, `outputs x inputs`, row-major.
    pub fn weight(&self) -> &[f32] {
        &self.weight
    }

    /// Biases, one per output.
    pub fn bias(&self) -> &[f32] {
        &self.bias
    }

    /// Weight matrix, mutable (its shape cannot change).
    pub fn weight_mut(&mut self) -> &mut [f32] {
        &mut self.weight
    }

    /// Biases, mutable.
    pub fn bias_mut(&mut self) -> &mut [f32] {
        &mut self.bias
    }

    /// `y = x · Wᵀ + b`, no activation (`x` is `batch x inputs`).
    fn affine(&self, x: &[f32], batch: usize) -> Vec<f32> {
        let mut y = vec![0.0; batch * self.outputs];
        linalg::a_bt(x, &self.weight, batch, self.inputs, self.outputs, &mut y);
        for row in y.chunks_exact_mut(self.outputs) {
            row.iter_mut().zip(&self.bias).for_each(|(v, b)| *v += b);
        }
        y
    }
}

impl SynapticLayer for Dense {
    fn inputs(&self) -> usize {
        self.inputs
    }

    fn outputs(&self) -> usize {
        self.outputs
    }

    fn forward(&mut self, x: &[f32], batch: usize, y: &mut [f32]) -> Result<()> {
        linalg::check_batch_shapes("dense product", x, y, batch, self.inputs, self.outputs)?;
        linalg::a_bt(x, &self.weight, batch, self.inputs, self.outputs, y);
        Ok(())
    }

    fn transposed(&mut self, y: &[f32], batch: usize, x: &mut [f32]) -> Result<()> {
        let (n, m) = (self.inputs, self.outputs);
        linalg::check_batch_shapes("dense transposed product", y, x, batch, m, n)?;
        linalg::a_b(y, &self.weight, batch, m, n, x);
        Ok(())
    }
}

/// Gradient of the loss with respect to one dense layer's parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseGradient {
    /// `∂L/∂W`, `outputs x inputs`, row-major.
    pub weight: Vec<f32>,
    /// `∂L/∂b`, one per output.
    pub bias: Vec<f32>,
}

/// A multilayer perceptron: dense layers with ReLU between them and none after the last.
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp {
    layers: Vec<Dense>,
}

impl Mlp {
    /// A network from its layers, checking that consecutive sizes match.
    pub fn new(layers: Vec<Dense>) -> Result<Mlp> {
        ensure!(!layers.is_empty(), "an MLP needs at least one layer");
        for (i, pair) in layers.windows(2).enumerate() {
            ensure!(
                pair[1].inputs == pair[0].outputs,
                "layer {} takes {} inputs but layer {i} has {} outputs: consecutive layer sizes \
                 must match",
                i + 1,
                pair[1].inputs,
                pair[0].outputs
            );
        }
        Ok(Mlp { layers })
    }

    /// A He-initialised network with the given layer sizes, e.g. `[784, 256, 128, 10]`.
    pub fn random(sizes: &[usize], seed: u64) -> Result<Mlp> {
        ensure!(
            sizes.len() >= 2,
            "layer sizes {sizes:?}: give at least the input and output sizes"
        );
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(i, s)| {
                Dense::he_random(s[0], s[1], seed, i).with_context(|| format!("layer {i}"))
            })
            .collect::<Result<Vec<_>>>()?;
        Mlp::new(layers)
    }

    /// Layer sizes, input first (e.g. `[784, 256, 128, 10]`).
    pub fn sizes(&self) -> Vec<usize> {
        std::iter::once(self.layers[0].inputs)
            .chain(self.layers.iter().map(|l| l.outputs))
            .collect()
    }

    /// The layers, input first.
    pub fn layers(&self) -> &[Dense] {
        &self.layers
    }

    /// The layers, mutable (shapes stay fixed).
    pub fn layers_mut(&mut self) -> &mut [Dense] {
        &mut self.layers
    }

    fn check_batch(&self, x: &[f32], labels: &[u8]) -> Result<usize> {
        let batch = labels.len();
        ensure!(batch > 0, "empty batch");
        ensure!(
            x.len() == batch * self.layers[0].inputs,
            "batch input holds {} values, expected {batch} labels x {} inputs",
            x.len(),
            self.layers[0].inputs
        );
        let classes = self.layers[self.layers.len() - 1].outputs;
        if let Some(&bad) = labels.iter().find(|&&l| usize::from(l) >= classes) {
            anyhow::bail!("label {bad} is out of range for a network with {classes} outputs");
        }
        Ok(batch)
    }

    /// Mean softmax cross-entropy of the batch (`x` is `labels.len() x inputs`).
    pub fn loss(&self, x: &[f32], labels: &[u8]) -> Result<f64> {
        let batch = self.check_batch(x, labels)?;
        let logits = forward(&self.layers, x, batch).pop().unwrap_or_default();
        Ok(softmax_cross_entropy(&logits, labels).0)
    }

    /// Mean softmax cross-entropy of the batch and its exact gradient (backpropagation).
    pub fn loss_and_gradients(
        &self,
        x: &[f32],
        labels: &[u8],
    ) -> Result<(f64, Vec<DenseGradient>)> {
        let batch = self.check_batch(x, labels)?;
        let (loss, grads, _) = backprop(&self.layers, x, labels, batch);
        Ok((loss, grads))
    }

    /// A copy whose weights carry one draw of `noise` (biases untouched), from streams
    /// `(seed, [.., layer])`: the network as programmed into imperfect devices.
    pub fn perturbed(&self, noise: &WeightNoise, seed: u64) -> Result<Mlp> {
        noise.validate()?;
        let mut out = self.clone();
        for (i, layer) in out.layers.iter_mut().enumerate() {
            noise.perturb(&mut layer.weight, &mut rng::stream(seed, &[i as u64]));
        }
        Ok(out)
    }

    /// Deploy the network on other matrix operators (e.g. crossbar tiles): `make(i, layer)`
    /// builds the operator for layer `i`; biases and ReLUs stay digital.
    pub fn deploy<Op: SynapticLayer>(
        &self,
        mut make: impl FnMut(usize, &Dense) -> Result<Op>,
    ) -> Result<Network<Op>> {
        let last = self.layers.len() - 1;
        let layers = self
            .layers
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let op = make(i, d).with_context(|| format!("deploying layer {i}"))?;
                let neuron = if i == last {
                    Neuron::Bias(d.bias.clone())
                } else {
                    Neuron::BiasRelu(d.bias.clone())
                };
                Ok(Layer { op, neuron })
            })
            .collect::<Result<Vec<_>>>()?;
        Network::new(layers)
    }
}

impl Classifier for Mlp {
    fn inputs(&self) -> usize {
        self.layers[0].inputs
    }

    fn classes(&self) -> usize {
        self.layers[self.layers.len() - 1].outputs
    }

    fn logits(&mut self, x: &[f32], batch: usize) -> Result<Vec<f32>> {
        self.check_inputs(x, batch)?;
        Ok(forward(&self.layers, x, batch).pop().unwrap_or_default())
    }
}

/// Forward pass keeping every layer's output: `outs[i]` is layer `i`'s post-activation
/// (ReLU for hidden layers, raw logits for the last).
pub(crate) fn forward(layers: &[Dense], x: &[f32], batch: usize) -> Vec<Vec<f32>> {
    let mut outs: Vec<Vec<f32>> = Vec::with_capacity(layers.len());
    for (i, layer) in layers.iter().enumerate() {
        let input = if i == 0 { x } else { &outs[i - 1] };
        let mut y = layer.affine(input, batch);
        if i + 1 < layers.len() {
            y.iter_mut().for_each(|v| *v = v.max(0.0));
        }
        outs.push(y);
    }
    outs
}

/// Mean softmax cross-entropy over the rows of `logits` (one row per label) and its
/// gradient with respect to the logits, `(softmax − onehot) / batch`.
pub(crate) fn softmax_cross_entropy(logits: &[f32], labels: &[u8]) -> (f64, Vec<f32>) {
    let batch = labels.len();
    let classes = logits.len() / batch;
    let mut grad = vec![0.0f32; logits.len()];
    let mut loss = 0.0f64;
    for ((row, g), &label) in logits
        .chunks_exact(classes)
        .zip(grad.chunks_exact_mut(classes))
        .zip(labels)
    {
        let mut probs = vec![0.0f64; classes];
        let norm = linalg::softmax(row, &mut probs);
        loss += norm.sum.ln() - f64::from(row[usize::from(label)] - norm.max);
        for (j, (gj, p)) in g.iter_mut().zip(&probs).enumerate() {
            let onehot = if j == usize::from(label) { 1.0 } else { 0.0 };
            *gj = ((p - onehot) / batch as f64) as f32;
        }
    }
    (loss / batch as f64, grad)
}

/// Loss, gradients and logits of `layers` on a batch: forward, then the chain rule
/// backwards.
pub(crate) fn backprop(
    layers: &[Dense],
    x: &[f32],
    labels: &[u8],
    batch: usize,
) -> (f64, Vec<DenseGradient>, Vec<f32>) {
    let mut outs = forward(layers, x, batch);
    let (loss, mut delta) = softmax_cross_entropy(&outs[outs.len() - 1], labels);
    let mut grads = Vec::with_capacity(layers.len());
    for i in (0..layers.len()).rev() {
        let layer = &layers[i];
        let input = if i == 0 { x } else { &outs[i - 1] };
        let mut weight = vec![0.0; layer.weight.len()];
        linalg::at_b(
            &delta,
            input,
            layer.outputs,
            batch,
            layer.inputs,
            &mut weight,
        );
        let mut bias = vec![0.0f32; layer.outputs];
        for row in delta.chunks_exact(layer.outputs) {
            bias.iter_mut().zip(row).for_each(|(b, d)| *b += d);
        }
        grads.push(DenseGradient { weight, bias });
        if i > 0 {
            let mut back = vec![0.0; batch * layer.inputs];
            linalg::a_b(
                &delta,
                &layer.weight,
                batch,
                layer.outputs,
                layer.inputs,
                &mut back,
            );
            // ReLU derivative: pass where the hidden unit was active.
            back.iter_mut().zip(input).for_each(|(d, &a)| {
                if a <= 0.0 {
                    *d = 0.0;
                }
            });
            delta = back;
        }
    }
    grads.reverse();
    (loss, grads, outs.pop().unwrap_or_default())
}
