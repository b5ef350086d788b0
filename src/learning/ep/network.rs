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

use anyhow::{Context, Result, ensure};
use rand::RngExt;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::learning::rule::{LearningRule, LocalSignals, Phase, apply_change};
use crate::synapses::{DigitalSynapses, PlasticSynapses, SynapticLayer};

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
            Activation::HardSigmoid => u.clamp(0.0, 1.0),
            Activation::SteepSigmoid => 1.0 / (1.0 + (-STEEP_SIGMOID_GAIN * (u - 0.5)).exp()),
        }
    }
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

    /// What a learning rule sees of synaptic layer `layer`: the pre- and post-synaptic
    /// rates of both phases ([`Equilibria::phases`]), with the clamped input `x` below the
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
            phase: phase(first),
            error: None,
            second_phase: Some(phase(second)),
        })
    }

    /// The EP estimate of `−∂L/∂b_k` for neuron layer `layer` (batch mean of
    /// `L = ½‖s_L − y‖²`): `Σ_batch (s_k^a − s_k^b) / (Δβ · batch)`, `a` and `b` the two
    /// phases of [`Equilibria::phases`] and `Δβ` the difference of their nudging strengths.
    pub fn bias_estimate(&self, layer: usize) -> Result<Vec<f32>> {
        let [(b, beta_b), (a, beta_a)] = self.phases();
        ensure!(
            layer < a.len() && self.batch > 0,
            "neuron layer {layer} does not exist or the batch is empty"
        );
        let delta_beta = beta_a - beta_b;
        ensure!(delta_beta != 0.0, "EP needs a non-zero nudging strength β");
        let scale = 1.0 / (delta_beta * self.batch as f32);
        let n = a[layer].len() / self.batch;
        let mut bias = vec![0.0; n];
        for (row_a, row_b) in a[layer].chunks_exact(n).zip(b[layer].chunks_exact(n)) {
            for (acc, (p, q)) in bias.iter_mut().zip(row_a.iter().zip(row_b)) {
                *acc += p - q;
            }
        }
        bias.iter_mut().for_each(|v| *v *= scale);
        Ok(bias)
    }
}

/// A layered energy-based network on any [`SynapticLayer`]s.
#[derive(Clone, Debug)]
pub struct EpNetwork<S> {
    synapses: Vec<S>,
    biases: Vec<Vec<f32>>,
    activation: Activation,
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
        let mut synapses = Vec::new();
        let mut biases = Vec::new();
        for (k, pair) in sizes.windows(2).enumerate() {
            let stream = 2 * k as u64;
            synapses.push(
                DigitalSynapses::uniform_random(pair[0], pair[1], seed, stream)
                    .with_context(|| format!("synaptic layer {k} ({} -> {})", pair[0], pair[1]))?,
            );
            let bound = 1.0 / (pair[0] as f32).sqrt();
            let mut rng = crate::rng::stream(seed, &[stream + 1]);
            biases.push(
                (0..pair[1])
                    .map(|_| rng.random_range(-bound..bound))
                    .collect(),
            );
        }
        EpNetwork::new(synapses, biases, activation)
    }
}

impl<S: SynapticLayer> EpNetwork<S> {
    /// Assemble a network from its synaptic layers (input side first) and neuron biases.
    pub fn new(synapses: Vec<S>, biases: Vec<Vec<f32>>, activation: Activation) -> Result<Self> {
        ensure!(
            !synapses.is_empty(),
            "an EP network needs at least one synaptic layer"
        );
        ensure!(
            synapses.len() == biases.len(),
            "{} synaptic layers but {} bias vectors",
            synapses.len(),
            biases.len()
        );
        for (k, (syn, bias)) in synapses.iter().zip(&biases).enumerate() {
            ensure!(
                bias.len() == syn.outputs(),
                "layer {k}: {} biases for {} neurons",
                bias.len(),
                syn.outputs()
            );
            if k > 0 {
                ensure!(
                    syn.inputs() == synapses[k - 1].outputs(),
                    "synaptic layer {k} takes {} inputs but layer {} has {} neurons",
                    syn.inputs(),
                    k - 1,
                    synapses[k - 1].outputs()
                );
            }
        }
        Ok(EpNetwork {
            synapses,
            biases,
            activation,
        })
    }

    /// Layer sizes, input first.
    pub fn sizes(&self) -> Vec<usize> {
        let mut sizes = vec![self.synapses[0].inputs()];
        sizes.extend(self.synapses.iter().map(|s| s.outputs()));
        sizes
    }

    /// Number of input features.
    pub fn inputs(&self) -> usize {
        self.synapses[0].inputs()
    }

    /// Number of output neurons (classes).
    pub fn outputs(&self) -> usize {
        self.synapses[self.synapses.len() - 1].outputs()
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
        self.synapses
            .iter()
            .map(|s| vec![0.0; batch * s.outputs()])
            .collect()
    }

    /// The input drive `W_1 x` of the first neuron layer (`batch x n_1`). The input is
    /// clamped, so the drive is constant during every phase: computed once per batch, it
    /// leaves only the small layers to each relaxation step.
    pub fn input_drive(&mut self, x: &[f32], batch: usize) -> Result<Vec<f32>> {
        ensure!(
            x.len() == batch * self.inputs(),
            "input holds {} values, expected {batch} vectors of {}",
            x.len(),
            self.inputs()
        );
        let mut drive = vec![0.0; batch * self.synapses[0].outputs()];
        self.synapses[0]
            .forward(x, batch, &mut drive)
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
        let mut pre = self.zero_states(batch);
        let mut feedback: States = self
            .synapses
            .iter()
            .skip(1)
            .map(|s| vec![0.0; batch * s.inputs()])
            .collect();
        for _ in 0..steps {
            self.step(drive, batch, nudge, states, &mut pre, &mut feedback)?;
        }
        Ok(())
    }

    /// One synchronous step: every pre-activation from the previous states, then `ρ`.
    fn step(
        &mut self,
        drive: &[f32],
        batch: usize,
        nudge: Option<Nudge<'_>>,
        states: &mut States,
        pre: &mut States,
        feedback: &mut States,
    ) -> Result<()> {
        let last = self.synapses.len() - 1;
        for k in 0..=last {
            if k == 0 {
                pre[0].copy_from_slice(drive);
            } else {
                self.synapses[k]
                    .forward(&states[k - 1], batch, &mut pre[k])
                    .with_context(|| format!("forward read of synaptic layer {k}"))?;
            }
            if k < last {
                self.synapses[k + 1]
                    .transposed(&states[k + 1], batch, &mut feedback[k])
                    .with_context(|| format!("transposed read of synaptic layer {}", k + 1))?;
            }
        }
        for k in 0..=last {
            let n = self.biases[k].len();
            let rows_per_task = (ACTIVATION_CHUNK / n).max(1);
            let bias = &self.biases[k];
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
                        row.iter_mut().for_each(|u| *u = rho.apply(*u));
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
        for (k, (s, syn)) in states.iter().zip(&self.synapses).enumerate() {
            ensure!(
                s.len() == batch * syn.outputs(),
                "state layer {k} holds {} values, expected {batch} x {}",
                s.len(),
                syn.outputs()
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
            let n = self.synapses[k].outputs();
            let mut drive = vec![0.0; batch * n];
            self.synapses[k].forward(below, batch, &mut drive)?;
            for (b, e) in energy.iter_mut().enumerate() {
                for j in 0..n {
                    let s = f64::from(states[k][b * n + j]);
                    let u = f64::from(drive[b * n + j]) + f64::from(self.biases[k][j]);
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
    /// ([`Equilibria::signals`]) and [`apply_change`] applies it (programming pulses on a
    /// crossbar, an `f32` add on digital synapses); the biases, digital, take the EP step
    /// `b_k += η_k · `[`Equilibria::bias_estimate`] with `bias_learning_rates[k] = η_k`.
    pub fn learn<R: LearningRule + ?Sized>(
        &mut self,
        x: &[f32],
        eq: &Equilibria,
        rule: &mut R,
        bias_learning_rates: &[f32],
    ) -> Result<()> {
        ensure!(
            !rule.signals().error,
            "rule {} reads an error signal at the layers' outputs, which an EP network does not \
             provide: it offers the two phases' activities (SignalRequest::second_phase)",
            rule.name()
        );
        ensure!(
            bias_learning_rates.len() == self.synapses.len(),
            "{} bias learning rates for {} synaptic layers",
            bias_learning_rates.len(),
            self.synapses.len()
        );
        for (k, &learning_rate) in bias_learning_rates.iter().enumerate() {
            let change = rule.propose(&eq.signals(x, k)?)?;
            apply_change(&mut self.synapses[k], &change)
                .with_context(|| format!("weight update of synaptic layer {k}"))?;
            let estimate = eq.bias_estimate(k)?;
            self.biases[k]
                .iter_mut()
                .zip(&estimate)
                .for_each(|(b, d)| *b += learning_rate * d);
        }
        Ok(())
    }
}
