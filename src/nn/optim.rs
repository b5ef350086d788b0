//! Gradient-descent optimisers: SGD with momentum and Adam (Kingma & Ba, ICLR 2015).

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

impl Optimizer {
    /// Adam with the usual moments (β1 0.9, β2 0.999, ε 1e-8) and step size `learning_rate`.
    pub fn adam(learning_rate: f32) -> Optimizer {
        Optimizer::Adam {
            learning_rate,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
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

/// Per-tensor optimiser memory (momentum / Adam moments and the step count).
#[derive(Clone, Debug, Default)]
pub(crate) struct ParamState {
    first: Vec<f32>,
    second: Vec<f32>,
    steps: i32,
}

impl ParamState {
    /// One update of `params` from `grad` with step size `lr` (which may decay over
    /// training, overriding the optimiser's own).
    pub(crate) fn step(&mut self, opt: &Optimizer, lr: f32, params: &mut [f32], grad: &[f32]) {
        if self.first.len() != params.len() {
            self.first = vec![0.0; params.len()];
        }
        self.steps = self.steps.saturating_add(1);
        match *opt {
            Optimizer::Sgd { momentum, .. } => {
                for ((p, g), v) in params.iter_mut().zip(grad).zip(&mut self.first) {
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
                if self.second.len() != params.len() {
                    self.second = vec![0.0; params.len()];
                }
                let c1 = 1.0 - beta1.powi(self.steps);
                let c2 = 1.0 - beta2.powi(self.steps);
                let it = params
                    .iter_mut()
                    .zip(grad)
                    .zip(self.first.iter_mut().zip(&mut self.second));
                for ((p, &g), (m, v)) in it {
                    *m = beta1 * *m + (1.0 - beta1) * g;
                    *v = beta2 * *v + (1.0 - beta2) * g * g;
                    *p -= lr * (*m / c1) / ((*v / c2).sqrt() + epsilon);
                }
            }
        }
    }
}
