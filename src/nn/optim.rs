//! Gradient-descent optimisers: SGD with momentum and Adam (Kingma & Ba, ICLR 2015) — the
//! one Adam implementation ([`AdamMoments`]), used by the digital and binary networks, the
//! Bayesian MLP and the metaplastic BNN.

use anyhow::{Result, ensure};
use serde::{Deserialize, Serialize};

/// An optimiser and its hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Optimizer {
    /// `v ← μ·v + g; θ ← θ − η·v` (PyTorch's SGD with momentum).
    Sgd {
        /// Step size η.
        learning_rate: f32,
        /// Momentum μ in `[0, 1)`; 0 gives plain SGD.
        momentum: f32,
    },
    /// Adam with bias-corrected first and second moments.
    Adam {
        /// Step size η.
        learning_rate: f32,
        /// Decay of the first-moment estimate, in `[0, 1)` (usually 0.9).
        beta1: f32,
        /// Decay of the second-moment estimate, in `[0, 1)` (usually 0.999).
        beta2: f32,
        /// Denominator floor ε (usually 1e-8).
        epsilon: f32,
    },
}

/// Adam's usual first-moment decay β1 (Kingma & Ba, ICLR 2015, Algorithm 1).
pub const ADAM_BETA1: f32 = 0.9;
/// Adam's usual second-moment decay β2 (Kingma & Ba 2015).
pub const ADAM_BETA2: f32 = 0.999;
/// Adam's usual denominator floor ε (Kingma & Ba 2015).
pub const ADAM_EPSILON: f32 = 1e-8;

impl Optimizer {
    /// Adam with the usual moments ([`ADAM_BETA1`], [`ADAM_BETA2`], [`ADAM_EPSILON`]) and
    /// step size `learning_rate`.
    pub fn adam(learning_rate: f32) -> Optimizer {
        Optimizer::Adam {
            learning_rate,
            beta1: ADAM_BETA1,
            beta2: ADAM_BETA2,
            epsilon: ADAM_EPSILON,
        }
    }

    /// The step size η.
    pub fn learning_rate(&self) -> f32 {
        match *self {
            Optimizer::Sgd { learning_rate, .. } | Optimizer::Adam { learning_rate, .. } => {
                learning_rate
            }
        }
    }

    /// Check every hyper-parameter's range, naming the offending one.
    pub fn validate(&self) -> Result<()> {
        let lr = self.learning_rate();
        ensure!(
            lr.is_finite() && lr > 0.0,
            "optimizer learning_rate = {lr} must be a finite number > 0"
        );
        let unit = |name: &str, v: f32| -> Result<()> {
            ensure!(
                (0.0..1.0).contains(&v),
                "optimizer {name} = {v} must lie in [0, 1)"
            );
            Ok(())
        };
        match *self {
            Optimizer::Sgd { momentum, .. } => unit("momentum", momentum)?,
            Optimizer::Adam {
                beta1,
                beta2,
                epsilon,
                ..
            } => {
                unit("beta1", beta1)?;
                unit("beta2", beta2)?;
                ensure!(
                    epsilon.is_finite() && epsilon > 0.0,
                    "optimizer epsilon = {epsilon} must be > 0"
                );
            }
        }
        Ok(())
    }
}

/// Per-tensor memory of an [`Optimizer`]: the SGD velocity or Adam's moments.
#[derive(Clone, Debug, Default)]
pub(crate) struct ParamState {
    velocity: Vec<f32>,
    adam: AdamMoments,
}

impl ParamState {
    /// One update of `params` from `grad` with step size `lr` (which may decay over
    /// training, overriding the optimiser's own).
    pub(crate) fn step(&mut self, opt: &Optimizer, lr: f32, params: &mut [f32], grad: &[f32]) {
        match *opt {
            Optimizer::Sgd { momentum, .. } => {
                if self.velocity.len() != params.len() {
                    self.velocity = vec![0.0; params.len()];
                }
                for ((p, g), v) in params.iter_mut().zip(grad).zip(&mut self.velocity) {
                    *v = momentum * *v + g;
                    *p -= lr * *v;
                }
            }
            Optimizer::Adam {
                beta1,
                beta2,
                epsilon,
                ..
            } => {
                if self.adam.first.len() != params.len() {
                    self.adam = AdamMoments::new(params.len());
                }
                self.adam
                    .step_corrected_moments(beta1, beta2, epsilon, lr, params, grad);
            }
        }
    }

    /// [`ParamState::step`] with L2 weight decay: the gradient is `grad + weight_decay·θ`
    /// (PyTorch's coupled `weight_decay`); `weight_decay = 0` is exactly `step`.
    pub(crate) fn step_decayed(
        &mut self,
        opt: &Optimizer,
        lr: f32,
        weight_decay: f32,
        params: &mut [f32],
        grad: &[f32],
    ) {
        if weight_decay == 0.0 {
            return self.step(opt, lr, params, grad);
        }
        let decayed: Vec<f32> = grad
            .iter()
            .zip(params.iter())
            .map(|(&g, &p)| with_weight_decay(g, p, weight_decay))
            .collect();
        self.step(opt, lr, params, &decayed);
    }
}

/// Hyper-parameters of Adam in PyTorch's form with L2 weight decay (see
/// [`AdamMoments::step`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamHyper {
    /// Step size η.
    pub learning_rate: f32,
    /// Decay of the first-moment estimate, in `[0, 1)`.
    pub beta1: f32,
    /// Decay of the second-moment estimate, in `[0, 1)`.
    pub beta2: f32,
    /// Denominator floor ε, > 0.
    pub epsilon: f32,
    /// L2 weight decay λ added to every gradient (`g + λ·θ`), ≥ 0.
    pub weight_decay: f32,
}

impl AdamHyper {
    /// Check every field's range, naming the offending one.
    pub fn validate(&self) -> Result<()> {
        let lr = self.learning_rate;
        ensure!(
            lr.is_finite() && lr > 0.0,
            "learning_rate = {lr} must be finite and > 0"
        );
        for (name, v) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            ensure!((0.0..1.0).contains(&v), "{name} = {v} must lie in [0, 1)");
        }
        let eps = self.epsilon;
        ensure!(
            eps.is_finite() && eps > 0.0,
            "epsilon = {eps} must be finite and > 0"
        );
        let wd = self.weight_decay;
        ensure!(
            wd.is_finite() && wd >= 0.0,
            "weight_decay = {wd} must be finite and >= 0"
        );
        Ok(())
    }
}

/// Adam's memory for one tensor: first and second moments and the step count.
///
/// The one Adam of xbar, in the two forms its users need (each keeps its own arithmetic):
/// [`Optimizer::Adam`] (digital MLPs, binary networks, the Bayesian MLP) bias-corrects the
/// moments as in Kingma & Ba's Algorithm 1, `θ ← θ − η·m̂/(√v̂ + ε)`; [`AdamMoments::step`]
/// (the metaplastic BNN) is PyTorch's form with the correction folded into the step size
/// and ε added to the uncorrected `√v`, plus L2 weight decay. Both update the moments with
/// the same `update_moments`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AdamMoments {
    /// First-moment estimate m, one per parameter.
    pub first: Vec<f32>,
    /// Second-moment estimate v, one per parameter.
    pub second: Vec<f32>,
    /// Steps taken.
    pub steps: i32,
}

impl AdamMoments {
    /// Zeroed moments for `len` parameters.
    pub fn new(len: usize) -> Self {
        AdamMoments {
            first: vec![0.0; len],
            second: vec![0.0; len],
            steps: 0,
        }
    }

    /// Count one more step and return the bias corrections `(1 − β1ᵗ, 1 − β2ᵗ)`.
    fn bias_corrections(&mut self, beta1: f32, beta2: f32) -> (f32, f32) {
        self.steps = self.steps.saturating_add(1);
        (1.0 - beta1.powi(self.steps), 1.0 - beta2.powi(self.steps))
    }

    /// One step of Kingma & Ba's Adam with step size `lr`:
    /// `θ ← θ − lr·(m/(1 − β1ᵗ))/(√(v/(1 − β2ᵗ)) + ε)`.
    fn step_corrected_moments(
        &mut self,
        beta1: f32,
        beta2: f32,
        epsilon: f32,
        lr: f32,
        params: &mut [f32],
        grad: &[f32],
    ) {
        let (c1, c2) = self.bias_corrections(beta1, beta2);
        let it = params
            .iter_mut()
            .zip(grad)
            .zip(self.first.iter_mut().zip(&mut self.second));
        for ((p, &g), (m, v)) in it {
            update_moments(beta1, beta2, g, m, v);
            *p -= lr * (*m / c1) / ((*v / c2).sqrt() + epsilon);
        }
    }

    /// Count one more step and return PyTorch's bias-corrected step size
    /// `η·√(1 − β2ᵗ)/(1 − β1ᵗ)` (for [`adam_delta`]).
    pub fn advance(&mut self, hyper: &AdamHyper) -> f32 {
        let (c1, c2) = self.bias_corrections(hyper.beta1, hyper.beta2);
        hyper.learning_rate * c2.sqrt() / c1
    }

    /// One step of PyTorch's Adam with weight decay on `params` from `grad`:
    /// `θ ← θ + `[`adam_delta`].
    pub fn step(&mut self, hyper: &AdamHyper, params: &mut [f32], grad: &[f32]) {
        let step_size = self.advance(hyper);
        let it = params
            .iter_mut()
            .zip(grad)
            .zip(self.first.iter_mut().zip(&mut self.second));
        for ((p, &g), (m, v)) in it {
            *p += adam_delta(hyper, step_size, *p, g, m, v);
        }
    }
}

/// The gradient `g` of parameter `p` with coupled L2 weight decay λ: `g + λ·p` (PyTorch's
/// `weight_decay` of SGD and Adam).
#[inline]
fn with_weight_decay(g: f32, p: f32, weight_decay: f32) -> f32 {
    g + weight_decay * p
}

/// Adam's moment recursions for one parameter with gradient `g`:
/// `m ← β1·m + (1 − β1)·g`, `v ← β2·v + (1 − β2)·g²`.
#[inline]
fn update_moments(beta1: f32, beta2: f32, g: f32, m: &mut f32, v: &mut f32) {
    *m = beta1 * *m + (1.0 - beta1) * g;
    *v = beta2 * *v + (1.0 - beta2) * g * g;
}

/// PyTorch's Adam for one parameter `p`: update its moments from gradient `g` plus weight
/// decay and return the proposed step `−step_size·m/(√v + ε)` (`step_size` from
/// [`AdamMoments::advance`]).
#[inline]
pub fn adam_delta(
    hyper: &AdamHyper,
    step_size: f32,
    p: f32,
    g: f32,
    m: &mut f32,
    v: &mut f32,
) -> f32 {
    let g = with_weight_decay(g, p, hyper.weight_decay);
    update_moments(hyper.beta1, hyper.beta2, g, m, v);
    -step_size * *m / (v.sqrt() + hyper.epsilon)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Coupled weight decay: one plain SGD step is `θ ← θ − η·(g + λ·θ)` (PyTorch's
    /// `SGD(weight_decay=λ)`), and λ = 0 is exactly the undecayed step.
    #[test]
    fn weight_decay_adds_lambda_theta_to_the_gradient() {
        let sgd = Optimizer::Sgd {
            learning_rate: 0.5,
            momentum: 0.0,
        };
        let mut params = vec![2.0f32, -4.0];
        ParamState::default().step_decayed(&sgd, 0.5, 0.1, &mut params, &[1.0, 1.0]);
        assert_eq!(params, vec![2.0 - 0.5 * 1.2, -4.0 - 0.5 * 0.6]);
        let (mut a, mut b) = (vec![2.0f32, -4.0], vec![2.0f32, -4.0]);
        let adam = Optimizer::adam(1e-2);
        ParamState::default().step_decayed(&adam, 1e-2, 0.0, &mut a, &[0.3, -0.7]);
        ParamState::default().step(&adam, 1e-2, &mut b, &[0.3, -0.7]);
        assert_eq!(a, b);
    }
}
