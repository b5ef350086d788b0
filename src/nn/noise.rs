//! Gaussian weight noise: the model of programming / read variability used for
//! hardware-aware training (noise redrawn every mini-batch) and for measuring how much
//! accuracy a trained network keeps when its weights are perturbed.

use anyhow::{Result, ensure};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// How the noise scales with the weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoiseKind {
    /// `w ← w · (1 + σ_rel · ε)`: spread proportional to each weight (conductance-
    /// proportional device spread).
    Multiplicative,
    /// `w ← w + σ_rel · max|W| · ε`: the same spread for every weight of a layer, relative
    /// to the layer's largest weight (which maps to the largest conductance `g_max`; the
    /// convention of aihwkit's inference noise models).
    Additive,
}

/// Gaussian weight noise with a relative standard deviation `relative_sigma`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightNoise {
    /// Scaling of the noise with the weights.
    pub kind: NoiseKind,
    /// Standard deviation relative to the weight (multiplicative) or to the layer's
    /// largest absolute weight (additive); dimensionless, `≥ 0`.
    pub relative_sigma: f32,
}

impl WeightNoise {
    /// Check that the relative sigma is finite and non-negative.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.relative_sigma.is_finite() && self.relative_sigma >= 0.0,
            "weight noise relative_sigma = {} must be a finite number ≥ 0 (e.g. 0.05 for 5 %)",
            self.relative_sigma
        );
        Ok(())
    }

    /// Add one draw of the noise to `weights` (one layer), in order, from `rng`.
    pub fn perturb<R: Rng + ?Sized>(&self, weights: &mut [f32], rng: &mut R) {
        let sigma = f64::from(self.relative_sigma);
        match self.kind {
            NoiseKind::Multiplicative => {
                for w in weights.iter_mut() {
                    let z: f64 = StandardNormal.sample(rng);
                    *w = (f64::from(*w) * (1.0 + sigma * z)) as f32;
                }
            }
            NoiseKind::Additive => {
                let w_max = weights.iter().fold(0.0f32, |m, w| m.max(w.abs()));
                let s = sigma * f64::from(w_max);
                for w in weights.iter_mut() {
                    let z: f64 = StandardNormal.sample(rng);
                    *w = (f64::from(*w) + s * z) as f32;
                }
            }
        }
    }
}
