//! How equilibrium propagation's proposed steps become weight and bias changes: plain SGD
//! (the on-chip update, applied exactly as the rule proposes it), SGD with momentum, or
//! Adam — the optimisers of the reference code (Laborieux-Axel/Equilibrium-Propagation,
//! `--optim sgd --mmt μ` or `--optim adam`, one learning rate per layer for weights and
//! biases alike), with the step size of each epoch from a [`Schedule`](crate::nn::Schedule).
//!
//! The rule proposes `ΔW_k = η_k·ĝ_k`, `ĝ_k` the EP estimate of `−∂L/∂W_k` and `η_k` the
//! layer's scheduled rate ([`EpConfig::rule_at`]). Plain SGD applies it as proposed: an
//! outer product that a crossbar programs with coincident pulse trains. Momentum and Adam
//! need the gradient itself, `g = −ΔW_k/η_k`, and the optimiser's memory; their change is
//! dense (device by device on a crossbar), computed with the one implementation of each
//! optimiser ([`crate::nn::optim`]), so `g` takes exactly PyTorch's `SGD(momentum=μ)` or
//! `Adam` step with step size `η_k`.

use anyhow::{Result, ensure};
use serde::{Deserialize, Serialize};

use super::EpConfig;
use crate::learning::rule::WeightChange;
use crate::nn::optim::{ADAM_BETA1, ADAM_BETA2, ADAM_EPSILON, Optimizer, ParamState};

/// The optimiser of EP training (`[rule.ep] optimizer = { kind = ... }`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum EpOptimizer {
    /// SGD; with `momentum = 0` (the default) the rule's proposed change is applied as it
    /// is, with `momentum = μ > 0` PyTorch's `v ← μ·v + g; θ ← θ − η·v`.
    Sgd {
        /// Momentum μ in `[0, 1)`.
        #[serde(default)]
        momentum: f32,
    },
    /// Adam (Kingma & Ba, ICLR 2015) with bias-corrected moments.
    Adam {
        /// Decay of the first-moment estimate, in `[0, 1)`.
        #[serde(default = "default_beta1")]
        beta1: f32,
        /// Decay of the second-moment estimate, in `[0, 1)`.
        #[serde(default = "default_beta2")]
        beta2: f32,
        /// Denominator floor ε, > 0.
        #[serde(default = "default_epsilon")]
        epsilon: f32,
    },
}

fn default_beta1() -> f32 {
    ADAM_BETA1
}

fn default_beta2() -> f32 {
    ADAM_BETA2
}

fn default_epsilon() -> f32 {
    ADAM_EPSILON
}

impl Default for EpOptimizer {
    fn default() -> Self {
        EpOptimizer::Sgd { momentum: 0.0 }
    }
}

impl EpOptimizer {
    /// Plain SGD: the proposed changes are applied as they are, with no memory.
    pub fn is_plain(&self) -> bool {
        matches!(*self, EpOptimizer::Sgd { momentum } if momentum == 0.0)
    }

    /// The [`Optimizer`] that takes the steps, with step size `learning_rate`.
    fn with_rate(&self, learning_rate: f32) -> Optimizer {
        match *self {
            EpOptimizer::Sgd { momentum } => Optimizer::Sgd {
                learning_rate,
                momentum,
            },
            EpOptimizer::Adam {
                beta1,
                beta2,
                epsilon,
            } => Optimizer::Adam {
                learning_rate,
                beta1,
                beta2,
                epsilon,
            },
        }
    }

    /// Check every hyper-parameter's range, naming the offending one.
    pub fn validate(&self) -> Result<()> {
        // Any positive rate: the step size is checked with the learning rates.
        self.with_rate(1.0).validate()
    }
}

/// An EP training run's optimiser with its memory (velocities or Adam moments of every
/// layer's weights and biases) and the step sizes of the current epoch.
#[derive(Clone, Debug)]
pub struct EpOptimizerState {
    optimizer: EpOptimizer,
    learning_rates: Vec<f32>,
    weights: Vec<ParamState>,
    biases: Vec<ParamState>,
}

impl EpOptimizerState {
    /// A fresh optimiser for `config` (zero memory), at the step sizes of epoch 0.
    pub fn new(config: &EpConfig) -> Self {
        let layers = config.learning_rates.len();
        EpOptimizerState {
            optimizer: config.optimizer,
            learning_rates: config.learning_rates_at(0),
            weights: vec![ParamState::default(); layers],
            biases: vec![ParamState::default(); layers],
        }
    }

    /// Take the step sizes of epoch `epoch` of `config`'s schedule.
    pub fn start_epoch(&mut self, config: &EpConfig, epoch: usize) {
        self.learning_rates = config.learning_rates_at(epoch);
    }

    /// The step size of each synaptic layer in the current epoch, input side first.
    pub fn learning_rates(&self) -> &[f32] {
        &self.learning_rates
    }

    fn rate(&self, layer: usize) -> Result<f32> {
        self.learning_rates.get(layer).copied().ok_or_else(|| {
            anyhow::anyhow!(
                "the EP optimiser has {} learning rates but was asked to step synaptic layer \
                 {layer}: give one learning rate per layer",
                self.learning_rates.len()
            )
        })
    }

    /// The change to apply to layer `layer` (`outputs x inputs`) for the rule's proposed
    /// `change` (`η_k·ĝ_k`): the proposal itself for plain SGD, the optimiser's dense step
    /// otherwise.
    pub fn weight_change(
        &mut self,
        layer: usize,
        change: WeightChange,
        outputs: usize,
        inputs: usize,
    ) -> Result<WeightChange> {
        if self.optimizer.is_plain() {
            return Ok(change);
        }
        let rate = self.rate(layer)?;
        if rate == 0.0 {
            return Ok(WeightChange::None);
        }
        let proposed = match change {
            WeightChange::None => vec![0.0; outputs * inputs],
            WeightChange::OuterProduct(update) => update.dense(),
            WeightChange::Dense(delta) => delta,
        };
        ensure!(
            proposed.len() == outputs * inputs,
            "the rule proposed {} weight changes for synaptic layer {layer} of {outputs} x \
             {inputs} weights",
            proposed.len()
        );
        let mut gradient = proposed;
        gradient.iter_mut().for_each(|d| *d = -*d / rate);
        let mut step = vec![0.0; gradient.len()];
        self.weights[layer].step(&self.optimizer.with_rate(rate), rate, &mut step, &gradient);
        Ok(WeightChange::Dense(step))
    }

    /// Step the digital biases of layer `layer` along the EP estimate `estimate` of
    /// `−∂L/∂b`: `b += η_k·estimate` for plain SGD, the optimiser's step otherwise.
    pub fn step_biases(
        &mut self,
        layer: usize,
        biases: &mut [f32],
        estimate: &[f32],
    ) -> Result<()> {
        let rate = self.rate(layer)?;
        ensure!(
            biases.len() == estimate.len(),
            "{} bias estimates for the {} biases of synaptic layer {layer}",
            estimate.len(),
            biases.len()
        );
        if self.optimizer.is_plain() {
            biases
                .iter_mut()
                .zip(estimate)
                .for_each(|(b, d)| *b += rate * d);
        } else if rate > 0.0 {
            let gradient: Vec<f32> = estimate.iter().map(|d| -d).collect();
            self.biases[layer].step(&self.optimizer.with_rate(rate), rate, biases, &gradient);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synapses::OuterProductUpdate;

    fn config(optimizer: EpOptimizer) -> EpConfig {
        EpConfig {
            learning_rates: vec![0.5],
            optimizer,
            ..EpConfig::default()
        }
    }

    /// One rank-1 proposal `η·ĝ` with `ĝ = post ⊗ pre` for a 2 x 2 layer.
    fn proposal(rate: f32) -> WeightChange {
        WeightChange::OuterProduct(OuterProductUpdate {
            post: vec![1.0, -2.0],
            pre: vec![0.5, 0.25],
            rows: 1,
            scale: rate,
        })
    }

    fn dense(change: WeightChange) -> Vec<f32> {
        match change {
            WeightChange::Dense(d) => d,
            other => panic!("expected a dense change, got {other:?}"),
        }
    }

    /// Plain SGD passes the proposal through untouched (the crossbar still programs an
    /// outer product) and steps the biases by `η·estimate`.
    #[test]
    fn plain_sgd_applies_the_proposal_as_it_is() {
        let mut state = EpOptimizerState::new(&config(EpOptimizer::default()));
        let change = state.weight_change(0, proposal(0.5), 2, 2).unwrap();
        assert_eq!(change, proposal(0.5));
        let mut b = vec![1.0, 2.0];
        state.step_biases(0, &mut b, &[0.25, -1.0]).unwrap();
        assert_eq!(b, vec![1.125, 1.5]);
    }

    /// Momentum μ: the second of two equal proposals moves the weights by
    /// `η·(μ·g + g)·(−1)`, i.e. `(1 + μ)` times the first (PyTorch's SGD with momentum).
    #[test]
    fn momentum_accumulates_the_gradient() {
        let mut state = EpOptimizerState::new(&config(EpOptimizer::Sgd { momentum: 0.9 }));
        let first = dense(state.weight_change(0, proposal(0.5), 2, 2).unwrap());
        let second = dense(state.weight_change(0, proposal(0.5), 2, 2).unwrap());
        let expected = [0.25, 0.125, -0.5, -0.25];
        for ((f, s), e) in first.iter().zip(&second).zip(expected) {
            assert!((f - e).abs() < 1e-6, "{f} vs {e}");
            assert!((s - 1.9 * e).abs() < 1e-6, "{s} vs {}", 1.9 * e);
        }
    }

    /// Adam's first bias-corrected step is `η·sign(g)` (m̂ = g, v̂ = g², ε negligible)
    /// whatever the gradient's scale (Kingma & Ba 2015, section 2.1), on weights and biases.
    #[test]
    fn adam_first_step_is_the_rate_times_the_sign() {
        let adam = EpOptimizer::Adam {
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
        };
        let mut state = EpOptimizerState::new(&config(adam));
        let step = dense(state.weight_change(0, proposal(0.5), 2, 2).unwrap());
        for (s, e) in step.iter().zip([0.5, 0.5, -0.5, -0.5]) {
            assert!((s - e).abs() < 1e-6, "{s} vs {e}");
        }
        let mut b = vec![0.0, 0.0];
        state.step_biases(0, &mut b, &[1e-3, -7.0]).unwrap();
        assert!(
            (b[0] - 0.5).abs() < 1e-5 && (b[1] + 0.5).abs() < 1e-6,
            "{b:?}"
        );
    }

    #[test]
    fn out_of_range_hyper_parameters_are_named() {
        let err = EpOptimizer::Sgd { momentum: 1.0 }.validate().unwrap_err();
        assert!(err.to_string().contains("momentum"), "{err}");
        let err = EpOptimizer::Adam {
            beta1: 0.9,
            beta2: 1.5,
            epsilon: 1e-8,
        }
        .validate()
        .unwrap_err();
        assert!(err.to_string().contains("beta2"), "{err}");
    }
}
