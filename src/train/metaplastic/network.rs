//! A binarized MLP with hidden weights, batch norm and binary weights on 2T2R device
//! pairs, trained by the metaplastic Adam rule (see [`super::rule`]).
//!
//! Architecture as in Laborieux et al. 2021 (after Courbariaux, Hubara et al. 2016):
//! fully connected layers without bias whose weights are `W_b = sign(W_h)`; every layer is
//! followed by batch norm with learned scale γ and shift β that normalises with the
//! statistics of the current mini-batch, in training *and* at test (the paper's
//! `track_running_stats = False`); hidden neurons output `sign(y)`, whose gradient passes
//! where `|y| ≤ 1` (straight-through estimator); the first layer sees the real pixels;
//! the output layer's batch-normed values are the logits of a softmax cross-entropy.
//! Hidden weights are not clipped (metaplasticity needs them to grow).
//!
//! Every random draw comes from `xbar::rng::stream(seed, path)` and every product from
//! the thread-count-independent blocks of [`crate::linalg`], so training is bit-identical
//! for any number of threads.

use super::rule::{AdamHyper, AdamMoments, MetaRule, adam_delta, modulate_meta};
use super::synapses::{WriteTally, program_pair, stored_bit};
use crate::device::{AnyDevice, AnyState, Device};
use crate::linalg;
use crate::nn::binary::{batch_norm_backward, column_moments};
use crate::rng;
use anyhow::{Result, ensure};
use rand::RngExt;
use rayon::prelude::*;

/// Batch-norm variance floor ε (PyTorch's default).
const BN_EPSILON: f32 = 1e-5;
/// Width of the straight-through window: the sign's gradient passes where `|y| ≤ 1`.
const STE_WINDOW: f32 = 1.0;
/// Hidden weights per parallel work item of the weight update (fixed, so the device
/// random streams do not depend on the thread count).
const UPDATE_CHUNK: usize = 8192;
/// Stream index of the hidden-weight and batch-norm initialisation.
const INIT_STREAM: u64 = 0x3E7A_0001;
/// Stream index of device fabrication (one stream per layer and weight chunk).
const FABRICATION_STREAM: u64 = 0x3E7A_0002;
/// Stream index of device programming (one per write phase, layer and weight chunk).
const PROGRAM_STREAM: u64 = 0x3E7A_0003;

/// One layer: hidden weights, forward weights, batch norm, 2T2R cells.
#[derive(Clone, Debug)]
struct BnnLayer {
    inputs: usize,
    outputs: usize,
    /// Hidden weights `W_h`, `outputs x inputs`, row-major.
    hidden: Vec<f32>,
    /// Forward weights ±1: `sign(W_h)`, or the bits the device pairs store.
    forward: Vec<f32>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
    plus: Vec<AnyState>,
    minus: Vec<AnyState>,
}

/// Batch-norm scale γ and shift β of every layer (one snapshot per task in the paper).
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNormParams {
    /// γ of each layer.
    pub gamma: Vec<Vec<f32>>,
    /// β of each layer.
    pub beta: Vec<Vec<f32>>,
}

/// Adam memories of every layer (hidden weights, γ, β); the paper starts fresh ones for
/// every task.
#[derive(Clone, Debug)]
pub struct BnnOptimizer {
    layers: Vec<[AdamMoments; 3]>,
}

/// What one training step did.
#[derive(Clone, Debug, PartialEq)]
pub struct StepReport {
    /// Mean softmax cross-entropy of the batch, nats.
    pub loss: f64,
    /// Sign flips of the hidden weights (= 2T2R synapse writes) per layer.
    pub flips_per_layer: Vec<u64>,
    /// Programming cost of those writes.
    pub writes: WriteTally,
}

/// A binarized MLP whose binary weights live on 2T2R pairs of one device model.
#[derive(Clone, Debug)]
pub struct MetaplasticBnn {
    layers: Vec<BnnLayer>,
    device: AnyDevice,
    device_bits: bool,
    seed: u64,
}

/// Per-layer values the backward pass needs.
struct Cache {
    input: Vec<f32>,
    xhat: Vec<f32>,
    inv_std: Vec<f32>,
    y: Vec<f32>,
}

impl MetaplasticBnn {
    /// A network of layer sizes `sizes` (input first): hidden weights uniform in
    /// `±init_width/2` (the authors' `--init uniform --init-width`), γ uniform in [0, 1)
    /// (PyTorch 1.1's batch-norm initialisation, the version the paper used), β = 0.
    /// Every synapse gets a fabricated pair of `device` cells, programmed to `sign(W_h)`
    /// (see [`MetaplasticBnn::program_all`]). With `device_bits`, the forward pass uses
    /// the bits the pairs store (device bit errors) instead of `sign(W_h)`.
    pub fn new(
        sizes: &[usize],
        init_width: f32,
        device: AnyDevice,
        device_bits: bool,
        seed: u64,
    ) -> Result<Self> {
        ensure!(
            sizes.len() >= 2,
            "layer sizes {sizes:?}: give at least input and output"
        );
        ensure!(
            sizes.iter().all(|&s| s > 0),
            "layer sizes {sizes:?} must all be >= 1"
        );
        ensure!(
            init_width.is_finite() && init_width > 0.0,
            "init_width = {init_width} must be finite and > 0"
        );
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(l, s)| {
                let (inputs, outputs) = (s[0], s[1]);
                let mut r = rng::stream(seed, &[INIT_STREAM, l as u64]);
                let half = init_width / 2.0;
                let hidden: Vec<f32> = (0..inputs * outputs)
                    .map(|_| r.random_range(-half..half))
                    .collect();
                let gamma = (0..outputs).map(|_| r.random_range(0.0..1.0)).collect();
                let (plus, minus) = fabricate(&device, seed, l, inputs * outputs);
                BnnLayer {
                    inputs,
                    outputs,
                    forward: hidden.iter().map(|&w| sign(w)).collect(),
                    hidden,
                    gamma,
                    beta: vec![0.0; outputs],
                    plus,
                    minus,
                }
            })
            .collect();
        Ok(MetaplasticBnn {
            layers,
            device,
            device_bits,
            seed,
        })
    }

    /// Program every pair to the sign of its hidden weight (the initial write of the
    /// arrays); returns its cost.
    pub fn program_all(&mut self) -> WriteTally {
        let (device, device_bits, seed) = (&self.device, self.device_bits, self.seed);
        let mut total = WriteTally::default();
        for (l, layer) in self.layers.iter_mut().enumerate() {
            let tallies: Vec<WriteTally> = layer
                .hidden
                .par_chunks(UPDATE_CHUNK)
                .zip(layer.forward.par_chunks_mut(UPDATE_CHUNK))
                .zip(layer.plus.par_chunks_mut(UPDATE_CHUNK))
                .zip(layer.minus.par_chunks_mut(UPDATE_CHUNK))
                .enumerate()
                .map(|(c, (((w, q), plus), minus))| {
                    let mut r = rng::stream(seed, &[PROGRAM_STREAM, u64::MAX, l as u64, c as u64]);
                    let mut t = WriteTally::default();
                    for i in 0..w.len() {
                        let bit = program_pair(
                            device,
                            &mut plus[i],
                            &mut minus[i],
                            w[i] >= 0.0,
                            &mut t,
                            &mut r,
                        );
                        if device_bits {
                            q[i] = if bit { 1.0 } else { -1.0 };
                        }
                    }
                    t
                })
                .collect();
            tallies.into_iter().for_each(|t| total += t);
        }
        total
    }

    /// Layer sizes, input first.
    pub fn sizes(&self) -> Vec<usize> {
        std::iter::once(self.layers[0].inputs)
            .chain(self.layers.iter().map(|l| l.outputs))
            .collect()
    }

    /// Number of layers.
    pub fn depth(&self) -> usize {
        self.layers.len()
    }

    /// Hidden weights of layer `layer` (`outputs x inputs`, row-major).
    pub fn hidden_weights(&self, layer: usize) -> Option<&[f32]> {
        self.layers.get(layer).map(|l| l.hidden.as_slice())
    }

    /// Forward (±1) weights of layer `layer` as used by the network.
    pub fn forward_weights(&self, layer: usize) -> Option<&[f32]> {
        self.layers.get(layer).map(|l| l.forward.as_slice())
    }

    /// Fraction of weights of layer `layer` whose 2T2R pair stores a bit other than
    /// `sign(W_h)` (stuck cells, overlapping LRS/HRS distributions).
    pub fn device_bit_error_rate(&self, layer: usize) -> Option<f64> {
        let l = self.layers.get(layer)?;
        let wrong = l
            .hidden
            .iter()
            .zip(l.plus.iter().zip(&l.minus))
            .filter(|(w, (p, m))| (**w >= 0.0) != stored_bit(&self.device, p, m))
            .count();
        Some(wrong as f64 / l.hidden.len() as f64)
    }

    /// A copy of every layer's batch-norm γ and β.
    pub fn batch_norm(&self) -> BatchNormParams {
        BatchNormParams {
            gamma: self.layers.iter().map(|l| l.gamma.clone()).collect(),
            beta: self.layers.iter().map(|l| l.beta.clone()).collect(),
        }
    }

    /// Restore batch-norm parameters taken by [`MetaplasticBnn::batch_norm`].
    pub fn set_batch_norm(&mut self, bn: &BatchNormParams) -> Result<()> {
        ensure!(
            bn.gamma.len() == self.layers.len() && bn.beta.len() == self.layers.len(),
            "batch-norm snapshot has {} layers, the network {}",
            bn.gamma.len(),
            self.layers.len()
        );
        for ((l, g), b) in self.layers.iter_mut().zip(&bn.gamma).zip(&bn.beta) {
            ensure!(
                g.len() == l.outputs && b.len() == l.outputs,
                "batch-norm snapshot does not match a layer of {} neurons",
                l.outputs
            );
            l.gamma.clone_from(g);
            l.beta.clone_from(b);
        }
        Ok(())
    }

    /// Fresh (zeroed) Adam memories for this network.
    pub fn optimizer(&self) -> BnnOptimizer {
        BnnOptimizer {
            layers: self
                .layers
                .iter()
                .map(|l| {
                    [
                        AdamMoments::new(l.hidden.len()),
                        AdamMoments::new(l.outputs),
                        AdamMoments::new(l.outputs),
                    ]
                })
                .collect(),
        }
    }

    /// Logits of a batch of `batch` images (`x` holds `batch x inputs` values), with
    /// batch norm on this batch's statistics.
    pub fn logits(&self, x: &[f32], batch: usize) -> Result<Vec<f32>> {
        self.check_batch(x, batch)?;
        let mut caches = self.forward(x, batch);
        Ok(caches.pop().map(|c| c.y).unwrap_or_default())
    }

    fn check_batch(&self, x: &[f32], batch: usize) -> Result<()> {
        let inputs = self.layers[0].inputs;
        ensure!(
            batch >= 2,
            "batch norm needs at least 2 images, got {batch}"
        );
        ensure!(
            x.len() == batch * inputs,
            "input holds {} values, expected {batch} images of {inputs}",
            x.len()
        );
        Ok(())
    }

    /// One training step on a batch: forward with batch statistics, backward with the
    /// straight-through estimator, Adam on γ and β, the metaplastic rule `rule` on the
    /// hidden weights, and a 2T2R write for every hidden weight whose sign flips.
    /// `phase` (e.g. `[task, step]`) names the step's device random streams.
    pub fn train_step(
        &mut self,
        x: &[f32],
        labels: &[u8],
        optimizer: &mut BnnOptimizer,
        hyper: &AdamHyper,
        rule: MetaRule,
        phase: [u64; 2],
    ) -> Result<StepReport> {
        let batch = labels.len();
        self.check_batch(x, batch)?;
        let classes = self.layers[self.layers.len() - 1].outputs;
        ensure!(
            labels.iter().all(|&l| usize::from(l) < classes),
            "a label is >= the {classes} outputs of the network"
        );
        ensure!(
            optimizer.layers.len() == self.layers.len(),
            "the optimizer belongs to another network"
        );
        let caches = self.forward(x, batch);
        let (loss, mut dy) = softmax_cross_entropy(&caches[caches.len() - 1].y, labels, classes);
        let mut report = StepReport {
            loss,
            flips_per_layer: vec![0; self.layers.len()],
            writes: WriteTally::default(),
        };
        for l in (0..self.layers.len()).rev() {
            let cache = &caches[l];
            let layer = &self.layers[l];
            let n = layer.outputs;
            if l + 1 < self.layers.len() {
                for (d, &y) in dy.iter_mut().zip(&cache.y) {
                    if y.abs() > STE_WINDOW {
                        *d = 0.0;
                    }
                }
            }
            let (da, dgamma, dbeta) =
                batch_norm_backward(&dy, &cache.xhat, &cache.inv_std, &layer.gamma, n);
            let mut dw = vec![0.0; layer.hidden.len()];
            linalg::at_b(&da, &cache.input, n, batch, layer.inputs, &mut dw);
            if l > 0 {
                let mut dx = vec![0.0; batch * layer.inputs];
                linalg::a_b(&da, &layer.forward, batch, n, layer.inputs, &mut dx);
                dy = dx;
            }
            let [sw, sg, sb] = &mut optimizer.layers[l];
            let (flips, tally) = self.update_weights(l, &dw, sw, hyper, rule, phase);
            report.flips_per_layer[l] = flips;
            report.writes += tally;
            let layer = &mut self.layers[l];
            sg.step(hyper, &mut layer.gamma, &dgamma);
            sb.step(hyper, &mut layer.beta, &dbeta);
        }
        Ok(report)
    }

    /// Apply the metaplastic Adam step to layer `l`'s hidden weights and re-program the
    /// pairs of the weights whose sign flipped; returns the flips and their cost.
    fn update_weights(
        &mut self,
        l: usize,
        grad: &[f32],
        moments: &mut AdamMoments,
        hyper: &AdamHyper,
        rule: MetaRule,
        phase: [u64; 2],
    ) -> (u64, WriteTally) {
        let step_size = moments.advance(hyper);
        let (device, device_bits, seed) = (&self.device, self.device_bits, self.seed);
        let layer = &mut self.layers[l];
        let c = UPDATE_CHUNK;
        let results: Vec<(u64, WriteTally)> = layer
            .hidden
            .par_chunks_mut(c)
            .zip(grad.par_chunks(c))
            .zip(moments.first.par_chunks_mut(c))
            .zip(moments.second.par_chunks_mut(c))
            .zip(layer.forward.par_chunks_mut(c))
            .zip(layer.plus.par_chunks_mut(c))
            .zip(layer.minus.par_chunks_mut(c))
            .enumerate()
            .map(|(ci, ((((((w, g), m), v), q), plus), minus))| {
                let mut flips = 0u64;
                let mut tally = WriteTally::default();
                // Adam's proposals first, in a branch-free loop the compiler vectorises.
                let mut delta = vec![0.0f32; w.len()];
                let moments = m.iter_mut().zip(v.iter_mut());
                for (((d, &wi), &gi), (mi, vi)) in delta.iter_mut().zip(&*w).zip(g).zip(moments) {
                    *d = adam_delta(hyper, step_size, wi, gi, mi, vi);
                }
                // Then the modulated step, keeping the old weights in `delta`'s place.
                match rule {
                    MetaRule::Plain => {
                        for (wi, d) in w.iter_mut().zip(delta.iter_mut()) {
                            (*wi, *d) = (*wi + *d, *wi);
                        }
                    }
                    MetaRule::Metaplastic { m } => {
                        for (wi, d) in w.iter_mut().zip(delta.iter_mut()) {
                            (*wi, *d) = (*wi + modulate_meta(m, *wi, *d), *wi);
                        }
                    }
                }
                let mut r = None;
                for (i, (&old, &new)) in delta.iter().zip(&*w).enumerate() {
                    let after = new >= 0.0;
                    if (old >= 0.0) != after {
                        flips += 1;
                        let path = [PROGRAM_STREAM, phase[0], phase[1], l as u64, ci as u64];
                        let r = r.get_or_insert_with(|| rng::stream(seed, &path));
                        let bit =
                            program_pair(device, &mut plus[i], &mut minus[i], after, &mut tally, r);
                        let stored = if device_bits { bit } else { after };
                        q[i] = if stored { 1.0 } else { -1.0 };
                    }
                }
                (flips, tally)
            })
            .collect();
        let mut total = (0, WriteTally::default());
        for (f, t) in results {
            total.0 += f;
            total.1 += t;
        }
        total
    }

    /// Forward pass with batch statistics.
    fn forward(&self, x: &[f32], batch: usize) -> Vec<Cache> {
        let mut act = x.to_vec();
        let last = self.layers.len() - 1;
        let mut caches = Vec::with_capacity(self.layers.len());
        for (l, layer) in self.layers.iter().enumerate() {
            let n = layer.outputs;
            let mut a = vec![0.0; batch * n];
            linalg::a_bt(&act, &layer.forward, batch, layer.inputs, n, &mut a);
            let (mean, var) = column_moments(&a, n);
            let inv_std: Vec<f32> = var.iter().map(|v| 1.0 / (v + BN_EPSILON).sqrt()).collect();
            let mut xhat = a;
            for row in xhat.chunks_exact_mut(n) {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = (*v - mean[j]) * inv_std[j];
                }
            }
            let y: Vec<f32> = xhat
                .iter()
                .enumerate()
                .map(|(i, &h)| layer.gamma[i % n] * h + layer.beta[i % n])
                .collect();
            let next = if l == last {
                Vec::new()
            } else {
                y.iter().map(|&v| sign(v)).collect()
            };
            caches.push(Cache {
                input: std::mem::replace(&mut act, next),
                xhat,
                inv_std,
                y,
            });
        }
        caches
    }
}

/// `+1` for `w ≥ 0`, else `−1`.
fn sign(w: f32) -> f32 {
    if w >= 0.0 { 1.0 } else { -1.0 }
}

/// Fabricate the plus and minus cells of `count` synapses of layer `layer`, chunk by chunk
/// from streams `(seed, [FABRICATION_STREAM, layer, chunk])`.
fn fabricate(
    device: &AnyDevice,
    seed: u64,
    layer: usize,
    count: usize,
) -> (Vec<AnyState>, Vec<AnyState>) {
    let chunks: Vec<(Vec<AnyState>, Vec<AnyState>)> = (0..count.div_ceil(UPDATE_CHUNK))
        .into_par_iter()
        .map(|c| {
            let len = UPDATE_CHUNK.min(count - c * UPDATE_CHUNK);
            let mut r = rng::stream(seed, &[FABRICATION_STREAM, layer as u64, c as u64]);
            (0..len)
                .map(|_| (device.fabricate(&mut r), device.fabricate(&mut r)))
                .unzip()
        })
        .collect();
    let mut plus = Vec::with_capacity(count);
    let mut minus = Vec::with_capacity(count);
    for (p, m) in chunks {
        plus.extend(p);
        minus.extend(m);
    }
    (plus, minus)
}

/// Mean softmax cross-entropy of `logits` (`batch x classes`) and its gradient.
fn softmax_cross_entropy(logits: &[f32], labels: &[u8], classes: usize) -> (f64, Vec<f32>) {
    let batch = labels.len();
    let mut grad = vec![0.0f32; logits.len()];
    let mut loss = 0.0f64;
    for ((row, g), &label) in logits
        .chunks_exact(classes)
        .zip(grad.chunks_exact_mut(classes))
        .zip(labels)
    {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = row.iter().map(|&z| (z - max).exp()).sum();
        let label = usize::from(label);
        loss += f64::from(sum.ln() + max - row[label]);
        for (k, (gk, &z)) in g.iter_mut().zip(row).enumerate() {
            let p = (z - max).exp() / sum;
            *gk = (p - if k == label { 1.0 } else { 0.0 }) / batch as f32;
        }
    }
    (loss / batch as f64, grad)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Batch norm's analytic input gradient matches central finite differences of
    /// `L = Σ c ⊙ BN(a)` (Ioffe & Szegedy's backward formula).
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
                    let s = (v + f64::from(BN_EPSILON)).sqrt();
                    total += c[r * n + j] * f64::from(gamma[j]) * (col[r] - m) / s;
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
                "a[{i}]: {numeric} vs {}",
                da[i]
            );
        }
    }
}
