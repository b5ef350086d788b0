//! Bayesian neural networks whose weight samples come from memory devices.
//!
//! **Training.** A one-hidden-layer MLP with Gaussian weight posteriors
//! `q(w) = N(mu, sigma^2)`, `sigma = softplus(rho)`, trained by Bayes by backprop
//! (Blundell et al., ICML 2015): one reparameterised sample `w = mu + sigma eps` per
//! mini-batch, loss = mean cross-entropy + `kl_weight / N` x KL(q || N(0, prior_sigma^2))
//! (closed-form Gaussian KL), Adam; `kl_weight < 1` tempers the posterior (the default 0.1:
//! with a few thousand images the full KL term underfits). Biases are deterministic. The
//! same code with `sigma = 0` and no KL term trains the deterministic baseline.
//!
//! **Devices.** Each weight is stored on a differential device pair
//! ([`crate::synapses::DevicePairs`]: around the centre of the device's nominal window,
//! fabricated and programmed open loop, read with the model's Gaussian read noise), with
//! `w_max = max |mu| + weight_range_sigmas x sigma` per layer. One posterior sample is one
//! *copy* of the network in devices ([`crate::synapses::SampledSynapses`]; several device
//! copies per weight, as in Bonnet et al., Nature Communications 2023; Dalgaty et al.,
//! Nature Electronics 2021 use the programming variability of RRAM as the sampler). The
//! pair's own noise is part of the sample: the programmed target is
//! `mu + sqrt(max(sigma^2 - sigma_dev^2, 0)) eps`, where `sigma_dev` (programming plus read
//! noise of a pair, in weight units) is measured per layer on a sample of its weights, so
//! the total spread matches the posterior wherever `sigma >= sigma_dev` (the report gives
//! the fraction of weights below). The pairs' `noise_scale` multiplies every device
//! deviation to sweep the device noise.
//!
//! **Inference.** The predictive is the mean softmax of K copies, each read with its
//! devices' read noise (one stream per copy and batch of images). Digits
//! `0..in_distribution_classes` are in distribution; the other digits and uniform-noise
//! images are out of distribution, detected by predictive entropy or mutual information
//! (AUROC). The "digital MC" predictive samples `mu + sigma eps` exactly: the reference that
//! device sampling converges to.
//!
//! Everything here takes built objects (training images, a device model) and typed
//! parameters; the study that names the preset, loads MNIST, runs the sweeps and draws the
//! figures is `studies::bayesian_nn`.

use super::machine::argmax;
use super::metrics::{ReliabilityBin, auroc, entropy, expected_calibration_error};
use crate::data::Dataset;
use crate::linalg;
use crate::nn::optim::{Optimizer, ParamState};
use crate::rng::{self, stream};
use crate::synapses::{DevicePairs, SampledSynapses};
use anyhow::{Result, ensure};
use rand::RngExt;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

/// Weights per layer used to measure the device noise of a pair.
const DEVICE_NOISE_SAMPLE: usize = 2000;
/// Images per forward batch at inference.
const EVAL_BATCH: usize = 500;

/// One dense layer with a Gaussian posterior on its weights.
#[derive(Clone, Debug, PartialEq)]
pub struct GaussianLayer {
    /// Inputs.
    pub inputs: usize,
    /// Outputs.
    pub outputs: usize,
    /// Posterior means, `outputs x inputs` row-major.
    pub mu: Vec<f32>,
    /// Posterior standard deviations (0 for a deterministic layer).
    pub sigma: Vec<f32>,
    /// Deterministic biases.
    pub bias: Vec<f32>,
}

/// A trained (Bayesian or deterministic) MLP: hidden ReLU layers, softmax output.
#[derive(Clone, Debug, PartialEq)]
pub struct Posterior {
    /// Layers from input to output.
    pub layers: Vec<GaussianLayer>,
}

fn softplus(x: f32) -> f32 {
    if x > 20.0 { x } else { x.exp().ln_1p() }
}

fn inverse_softplus(y: f32) -> f32 {
    y.exp_m1().ln()
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Training of an MLP `features -> hidden -> classes` (Bayes by backprop or plain backprop).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MlpTraining {
    /// Hidden units.
    pub hidden: usize,
    /// Training epochs.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Standard deviation of the Gaussian prior on weights.
    pub prior_sigma: f64,
    /// Initial posterior standard deviation.
    pub init_sigma: f64,
    /// Multiplier of the KL term: 1 is the evidence lower bound; below 1 a tempered
    /// posterior (with ~4,000 training images, 1 underfits: 96.0 % vs 97.5 % at 0.1).
    pub kl_weight: f64,
}

impl Default for MlpTraining {
    fn default() -> Self {
        Self {
            hidden: 100,
            epochs: 30,
            batch_size: 100,
            learning_rate: 2e-3,
            prior_sigma: 0.1,
            init_sigma: 1e-3,
            kl_weight: 0.1,
        }
    }
}

impl MlpTraining {
    /// Check every field; `prefix` names the table in messages.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        for (field, v) in [
            ("hidden", self.hidden),
            ("epochs", self.epochs),
            ("batch_size", self.batch_size),
        ] {
            ensure!(v >= 1, "{prefix}.{field}: must be >= 1");
        }
        for (field, v) in [
            ("learning_rate", self.learning_rate),
            ("prior_sigma", self.prior_sigma),
            ("init_sigma", self.init_sigma),
        ] {
            ensure!(
                v.is_finite() && v > 0.0,
                "{prefix}.{field}: must be > 0 (got {v})"
            );
        }
        ensure!(
            self.kl_weight.is_finite() && self.kl_weight >= 0.0,
            "{prefix}.kl_weight: must be >= 0"
        );
        Ok(())
    }
}

/// Trainable state of one layer.
struct TrainLayer {
    inputs: usize,
    outputs: usize,
    mu: Vec<f32>,
    rho: Vec<f32>,
    bias: Vec<f32>,
    /// Adam memories of `mu`, `rho` and `bias`.
    adam: [ParamState; 3],
}

/// Softmax of each row of `z` (`rows x classes`) in place.
fn softmax_rows(z: &mut [f32], classes: usize) {
    for row in z.chunks_mut(classes) {
        linalg::softmax_in_place(row);
    }
}

/// Train an MLP `features -> hidden -> classes` on `(x, labels)`: Bayes by backprop when
/// `bayesian`, plain backprop otherwise, the initial weights, shuffles and weight samples
/// drawn from the streams of `seed`. Returns the posterior and the final epoch's mean
/// cross-entropy.
pub fn train_mlp(
    x: &[f32],
    labels: &[u8],
    features: usize,
    classes: usize,
    config: &MlpTraining,
    (seed, bayesian): (u64, bool),
) -> (Posterior, f64) {
    let n = labels.len();
    let sizes = [features, config.hidden, classes];
    let init_rho = inverse_softplus(config.init_sigma as f32);
    let tag = if bayesian {
        rng::BNN_BAYESIAN_TRAIN_STREAM
    } else {
        rng::BNN_DETERMINISTIC_TRAIN_STREAM
    };
    let mut layers: Vec<TrainLayer> = sizes
        .windows(2)
        .enumerate()
        .map(|(l, w)| {
            let (inputs, outputs) = (w[0], w[1]);
            let mut rng = stream(seed, &[tag, 0, l as u64]);
            let scale = (2.0 / inputs as f32).sqrt();
            let mu = (0..inputs * outputs)
                .map(|_| scale * rng.sample::<f32, _>(StandardNormal))
                .collect();
            TrainLayer {
                inputs,
                outputs,
                mu,
                rho: vec![init_rho; inputs * outputs],
                bias: vec![0.0; outputs],
                adam: Default::default(),
            }
        })
        .collect();
    let kl_scale = (config.kl_weight / n as f64) as f32;
    let prior_var = (config.prior_sigma * config.prior_sigma) as f32;
    let lr = config.learning_rate as f32;
    let adam = Optimizer::adam(lr);
    let mut order: Vec<usize> = (0..n).collect();
    let mut last_loss = f64::NAN;
    for epoch in 0..config.epochs {
        let mut rng = stream(seed, &[tag, 1, epoch as u64]);
        for i in (1..n).rev() {
            order.swap(i, rng.random_range(0..=i));
        }
        let mut loss_sum = 0.0;
        for (b, chunk) in order.chunks(config.batch_size).enumerate() {
            let mut eps_rng = stream(seed, &[tag, 2, epoch as u64, b as u64]);
            let batch = chunk.len();
            let mut xb = Vec::with_capacity(batch * features);
            for &i in chunk {
                xb.extend_from_slice(&x[i * features..(i + 1) * features]);
            }
            // Sample the weights.
            let eps: Vec<Vec<f32>> = layers
                .iter()
                .map(|l| {
                    if bayesian {
                        (0..l.mu.len())
                            .map(|_| eps_rng.sample::<f32, _>(StandardNormal))
                            .collect()
                    } else {
                        vec![0.0; l.mu.len()]
                    }
                })
                .collect();
            let weights: Vec<Vec<f32>> = layers
                .iter()
                .zip(&eps)
                .map(|(l, e)| {
                    l.mu.iter()
                        .zip(&l.rho)
                        .zip(e)
                        .map(|((&m, &r), &e)| if bayesian { m + softplus(r) * e } else { m })
                        .collect()
                })
                .collect();
            // Forward: ReLU on hidden layers, softmax on the output.
            let last = layers.len() - 1;
            let mut activations = vec![xb];
            let mut pre = Vec::new();
            for (l, (layer, w)) in layers.iter().zip(&weights).enumerate() {
                let input = activations.last().map_or(&[][..], |a| a.as_slice());
                let mut z = vec![0.0; batch * layer.outputs];
                linalg::sequential::a_bt(input, w, batch, layer.inputs, layer.outputs, &mut z);
                for row in z.chunks_mut(layer.outputs) {
                    row.iter_mut().zip(&layer.bias).for_each(|(v, b)| *v += b);
                }
                let mut a = z.clone();
                if l < last {
                    a.iter_mut().for_each(|v| *v = v.max(0.0));
                }
                pre.push(z);
                activations.push(a);
            }
            let probs = &mut activations[last + 1];
            softmax_rows(probs, classes);
            // Backward.
            let mut delta = probs.clone();
            for (r, &i) in chunk.iter().enumerate() {
                let y = usize::from(labels[i]);
                loss_sum -= f64::from(probs[r * classes + y].max(1e-30).ln());
                delta[r * classes + y] -= 1.0;
            }
            delta.iter_mut().for_each(|d| *d /= batch as f32);
            for l in (0..layers.len()).rev() {
                let (inputs, outputs) = (layers[l].inputs, layers[l].outputs);
                let mut g_w = vec![0.0; outputs * inputs];
                linalg::sequential::at_b(&delta, &activations[l], outputs, batch, inputs, &mut g_w);
                let g_b: Vec<f32> = (0..outputs)
                    .map(|o| delta.chunks(outputs).map(|row| row[o]).sum())
                    .collect();
                if l > 0 {
                    let mut back = vec![0.0; batch * inputs];
                    linalg::sequential::a_b(&delta, &weights[l], batch, outputs, inputs, &mut back);
                    back.iter_mut().zip(&pre[l - 1]).for_each(|(d, &z)| {
                        if z <= 0.0 {
                            *d = 0.0;
                        }
                    });
                    delta = back;
                }
                let layer = &mut layers[l];
                let mut g_mu = g_w.clone();
                let mut g_rho = vec![0.0; g_w.len()];
                if bayesian {
                    for j in 0..g_w.len() {
                        let sigma = softplus(layer.rho[j]);
                        g_mu[j] += kl_scale * layer.mu[j] / prior_var;
                        let g_sigma =
                            g_w[j] * eps[l][j] + kl_scale * (sigma / prior_var - 1.0 / sigma);
                        g_rho[j] = g_sigma * sigmoid(layer.rho[j]);
                    }
                }
                let [a_mu, a_rho, a_b] = &mut layer.adam;
                a_mu.step(&adam, lr, &mut layer.mu, &g_mu);
                if bayesian {
                    a_rho.step(&adam, lr, &mut layer.rho, &g_rho);
                }
                a_b.step(&adam, lr, &mut layer.bias, &g_b);
            }
        }
        last_loss = loss_sum / n as f64;
    }
    let posterior = Posterior {
        layers: layers
            .into_iter()
            .map(|l| GaussianLayer {
                inputs: l.inputs,
                outputs: l.outputs,
                sigma: if bayesian {
                    l.rho.iter().map(|&r| softplus(r)).collect()
                } else {
                    vec![0.0; l.mu.len()]
                },
                mu: l.mu,
                bias: l.bias,
            })
            .collect(),
    };
    (posterior, last_loss)
}

/// How posterior samples are drawn.
#[derive(Clone, Debug)]
pub enum Sampler {
    /// Exact digital Monte Carlo: `mu + sigma eps`.
    Digital,
    /// Device copies of the network.
    Device(Box<DeviceSampler>),
}

/// The posterior mapped onto device pairs ([`DevicePairs`]), layer by layer.
#[derive(Clone, Debug)]
pub struct DeviceSampler {
    /// The pairs that store every weight.
    pub pairs: DevicePairs,
    /// Per layer: half-range `w_max` of the mapping.
    pub w_max: Vec<f64>,
    /// Per layer: measured noise of a pair in weight units (programming and read).
    pub sigma_dev: Vec<f64>,
}

impl DeviceSampler {
    /// Map `posterior` onto `pairs`: each layer's range is `max |mu| + weight_range_sigmas x
    /// sigma`, and its pair noise is measured on up to `DEVICE_NOISE_SAMPLE` of its own
    /// weights.
    pub fn new(
        posterior: &Posterior,
        pairs: DevicePairs,
        weight_range_sigmas: f64,
        seed: u64,
    ) -> Self {
        let mut w_max = Vec::new();
        let mut sigma_dev = Vec::new();
        for (l, layer) in posterior.layers.iter().enumerate() {
            let range = layer
                .mu
                .iter()
                .zip(&layer.sigma)
                .map(|(&m, &s)| f64::from(m.abs()) + weight_range_sigmas * f64::from(s))
                .fold(0.0, f64::max)
                .max(f64::MIN_POSITIVE);
            let mut rng = stream(seed, &[rng::BNN_PAIR_NOISE_STREAM, l as u64]);
            let stride = (layer.mu.len() / DEVICE_NOISE_SAMPLE).max(1);
            let sample = layer.mu.iter().step_by(stride).map(|&m| f64::from(m));
            w_max.push(range);
            sigma_dev.push(pairs.noise_in_weight_units(sample, range, &mut rng));
        }
        Self {
            pairs,
            w_max,
            sigma_dev,
        }
    }

    /// Fraction of weights whose posterior deviation is below the device noise.
    pub fn fraction_below_device_noise(&self, posterior: &Posterior) -> f64 {
        let (mut below, mut total) = (0usize, 0usize);
        for (layer, &s_dev) in posterior.layers.iter().zip(&self.sigma_dev) {
            below += layer
                .sigma
                .iter()
                .filter(|&&s| f64::from(s) < s_dev)
                .count();
            total += layer.sigma.len();
        }
        below as f64 / total as f64
    }
}

/// One posterior sample of a layer: its synapses (one copy of the weights) and biases.
struct SampledLayer {
    synapses: SampledSynapses,
    bias: Vec<f32>,
}

fn sample_network(
    posterior: &Posterior,
    sampler: &Sampler,
    seed: u64,
    path: &[u64],
) -> Vec<SampledLayer> {
    posterior
        .layers
        .iter()
        .enumerate()
        .map(|(l, layer)| {
            let mut p = path.to_vec();
            p.push(l as u64);
            let mut rng = stream(seed, &p);
            let synapses = match sampler {
                Sampler::Digital => {
                    let w = layer
                        .mu
                        .iter()
                        .zip(&layer.sigma)
                        .map(|(&m, &s)| {
                            if s > 0.0 {
                                m + s * rng.sample::<f32, _>(StandardNormal)
                            } else {
                                m
                            }
                        })
                        .collect();
                    SampledSynapses::digital(layer.inputs, layer.outputs, w)
                }
                Sampler::Device(d) => {
                    // The pair adds its own noise (variance sigma_dev^2): program the rest
                    // of the posterior spread.
                    let s_dev = d.sigma_dev[l];
                    d.pairs.program_layer(
                        layer.inputs,
                        layer.outputs,
                        d.w_max[l],
                        &mut rng,
                        |j, rng| {
                            let s = f64::from(layer.sigma[j]);
                            let extra = (s.powi(2) - s_dev * s_dev).max(0.0).sqrt();
                            let z: f64 = if extra > 0.0 {
                                rng.sample(StandardNormal)
                            } else {
                                0.0
                            };
                            f64::from(layer.mu[j]) + extra * z
                        },
                    )
                }
            };
            SampledLayer {
                synapses,
                bias: layer.bias.clone(),
            }
        })
        .collect()
}

/// Class probabilities of `batch` inputs through one sampled network (read noise drawn
/// per output from `rng`).
fn forward(
    net: &[SampledLayer],
    x: &[f32],
    batch: usize,
    rng: &mut crate::rng::XbarRng,
) -> Vec<f32> {
    let mut a = x.to_vec();
    for (l, layer) in net.iter().enumerate() {
        let outputs = layer.synapses.outputs();
        let mut z = layer.synapses.forward(&a, batch, rng);
        for row in z.chunks_mut(outputs) {
            row.iter_mut().zip(&layer.bias).for_each(|(v, b)| *v += b);
        }
        if l + 1 < net.len() {
            z.iter_mut().for_each(|v| *v = v.max(0.0));
        } else {
            softmax_rows(&mut z, outputs);
        }
        a = z;
    }
    a
}

/// Running sums of the predictive over samples.
struct PredictiveSums {
    classes: usize,
    sum_p: Vec<f64>,
    sum_entropy: Vec<f64>,
    samples: usize,
}

impl PredictiveSums {
    fn mean(&self) -> Vec<f64> {
        self.sum_p.iter().map(|s| s / self.samples as f64).collect()
    }

    /// Predictive entropy and mutual information of every image.
    fn uncertainty(&self) -> (Vec<f64>, Vec<f64>) {
        let mean = self.mean();
        mean.chunks(self.classes)
            .zip(&self.sum_entropy)
            .map(|(p, &h)| {
                let total = entropy(p);
                (total, (total - h / self.samples as f64).max(0.0))
            })
            .unzip()
    }
}

/// Draw samples one after another (sample `k` from the streams `(seed, [stream_id, k, ..])`
/// of `(seed, stream_id)`) and call `at` after each count listed in `checkpoints`.
fn sample_predictive(
    posterior: &Posterior,
    sampler: &Sampler,
    x: &[f32],
    n: usize,
    checkpoints: &[usize],
    (seed, stream_id): (u64, u64),
    mut at: impl FnMut(usize, &PredictiveSums),
) {
    let classes = posterior.layers.last().map_or(0, |l| l.outputs);
    let features = posterior.layers[0].inputs;
    let mut sums = PredictiveSums {
        classes,
        sum_p: vec![0.0; n * classes],
        sum_entropy: vec![0.0; n],
        samples: 0,
    };
    let last = checkpoints.last().copied().unwrap_or(0);
    for k in 0..last {
        let net = sample_network(posterior, sampler, seed, &[stream_id, k as u64]);
        for start in (0..n).step_by(EVAL_BATCH) {
            let batch = EVAL_BATCH.min(n - start);
            let mut rng = stream(seed, &[stream_id, k as u64, u64::MAX, start as u64]);
            let p = forward(
                &net,
                &x[start * features..(start + batch) * features],
                batch,
                &mut rng,
            );
            for (i, row) in p.chunks(classes).enumerate() {
                let img = start + i;
                let row64: Vec<f64> = row.iter().map(|&v| f64::from(v)).collect();
                sums.sum_entropy[img] += entropy(&row64);
                for (acc, v) in sums.sum_p[img * classes..(img + 1) * classes]
                    .iter_mut()
                    .zip(&row64)
                {
                    *acc += v;
                }
            }
        }
        sums.samples = k + 1;
        if checkpoints.contains(&(k + 1)) {
            at(k + 1, &sums);
        }
    }
}

/// Mean predictive probabilities (`n x classes`) of `samples` posterior samples (streams
/// `(seed, [BNN_PREDICTIVE_STREAM, ..])`).
pub fn predictive_mean(
    posterior: &Posterior,
    sampler: &Sampler,
    x: &[f32],
    n: usize,
    samples: usize,
    seed: u64,
) -> Vec<f64> {
    let mut out = Vec::new();
    sample_predictive(
        posterior,
        sampler,
        x,
        n,
        &[samples],
        (seed, rng::BNN_PREDICTIVE_STREAM),
        |_, s| out = s.mean(),
    );
    out
}

/// Accuracy, calibration and out-of-distribution detection of one predictive.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UncertaintyMetrics {
    /// Posterior samples K.
    pub samples: usize,
    /// Device noise multiplier (NaN for digital sampling).
    pub noise_scale: f64,
    /// Accuracy on in-distribution test digits.
    pub accuracy: f64,
    /// Expected calibration error on in-distribution test digits.
    pub ece: f64,
    /// Mean negative log-likelihood on in-distribution test digits, nats.
    pub nll: f64,
    /// AUROC of predictive entropy: in-distribution vs out-of-distribution digits.
    pub auroc_entropy_digits: f64,
    /// AUROC of mutual information: in-distribution vs out-of-distribution digits.
    pub auroc_mi_digits: f64,
    /// AUROC of predictive entropy: in-distribution vs uniform-noise images.
    pub auroc_entropy_noise: f64,
    /// AUROC of mutual information: in-distribution vs uniform-noise images.
    pub auroc_mi_noise: f64,
}

/// Detail of one predictive for the figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PredictiveDetail {
    /// Reliability diagram on in-distribution digits.
    pub reliability: Vec<ReliabilityBin>,
    /// Predictive entropy of every in-distribution test image, nats.
    pub entropy_in: Vec<f64>,
    /// Predictive entropy of every out-of-distribution digit, nats.
    pub entropy_ood_digits: Vec<f64>,
    /// Predictive entropy of every noise image, nats.
    pub entropy_noise: Vec<f64>,
}

/// The evaluation images: in-distribution digits, other digits, noise.
pub struct EvalSet {
    x: Vec<f32>,
    labels: Vec<u8>,
    /// In-distribution test images.
    pub n_in: usize,
    /// Out-of-distribution digits.
    pub n_ood: usize,
    /// Uniform-noise images (from stream `(seed, [BNN_NOISE_IMAGES_STREAM])`).
    pub n_noise: usize,
}

impl EvalSet {
    /// Split `test` into digits below `id_classes` (in distribution) and the others, and add
    /// `noise_images` uniform-noise images.
    pub fn build(test: &Dataset, id_classes: u8, noise_images: usize, seed: u64) -> Self {
        let (mut x_in, mut x_ood, mut labels) = (Vec::new(), Vec::new(), Vec::new());
        for n in 0..test.len() {
            if test.labels[n] < id_classes {
                x_in.extend_from_slice(test.image(n));
                labels.push(test.labels[n]);
            } else {
                x_ood.extend_from_slice(test.image(n));
            }
        }
        let d = test.features();
        let (n_in, n_ood) = (labels.len(), x_ood.len() / d);
        let mut rng = stream(seed, &[rng::BNN_NOISE_IMAGES_STREAM]);
        let noise: Vec<f32> = (0..noise_images * d).map(|_| rng.random::<f32>()).collect();
        let x = [x_in, x_ood, noise].concat();
        Self {
            x,
            labels,
            n_in,
            n_ood,
            n_noise: noise_images,
        }
    }

    fn len(&self) -> usize {
        self.n_in + self.n_ood + self.n_noise
    }

    /// Metrics of the predictive of `posterior` drawn by `sampler` (sample `k` from the
    /// streams `(seed, [stream_id, k, ..])`) after each sample count in `checkpoints`, and
    /// the detail of the last one; `noise_scale` is reported as is.
    pub fn evaluate(
        &self,
        posterior: &Posterior,
        sampler: &Sampler,
        checkpoints: &[usize],
        (seed, stream_id): (u64, u64),
        noise_scale: f64,
        ece_bins: usize,
    ) -> (Vec<UncertaintyMetrics>, Option<PredictiveDetail>) {
        let mut out = Vec::new();
        let mut detail = None;
        sample_predictive(
            posterior,
            sampler,
            &self.x,
            self.len(),
            checkpoints,
            (seed, stream_id),
            |_, s| {
                let (m, d) = self.metrics(s, noise_scale, ece_bins);
                out.push(m);
                detail = Some(d);
            },
        );
        (out, detail)
    }

    fn metrics(
        &self,
        sums: &PredictiveSums,
        noise_scale: f64,
        bins: usize,
    ) -> (UncertaintyMetrics, PredictiveDetail) {
        let c = sums.classes;
        let mean = sums.mean();
        let (ent, mi) = sums.uncertainty();
        let (mut conf, mut correct, mut nll) = (Vec::new(), Vec::new(), 0.0);
        for (i, &label) in self.labels.iter().enumerate() {
            let p = &mean[i * c..(i + 1) * c];
            let pred = argmax(p);
            conf.push(p[pred]);
            correct.push(pred == usize::from(label));
            nll -= p[usize::from(label)].max(1e-300).ln();
        }
        let (ece, reliability) = expected_calibration_error(&conf, &correct, bins);
        let (a, b) = (self.n_in, self.n_in + self.n_ood);
        let metrics = UncertaintyMetrics {
            samples: sums.samples,
            noise_scale,
            accuracy: correct.iter().filter(|&&ok| ok).count() as f64 / a as f64,
            ece,
            nll: nll / a as f64,
            auroc_entropy_digits: auroc(&ent[a..b], &ent[..a]),
            auroc_mi_digits: auroc(&mi[a..b], &mi[..a]),
            auroc_entropy_noise: auroc(&ent[b..], &ent[..a]),
            auroc_mi_noise: auroc(&mi[b..], &mi[..a]),
        };
        let detail = PredictiveDetail {
            reliability,
            entropy_in: ent[..a].to_vec(),
            entropy_ood_digits: ent[a..b].to_vec(),
            entropy_noise: ent[b..].to_vec(),
        };
        (metrics, detail)
    }
}
