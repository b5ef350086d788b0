//! Equilibrium propagation's weight update as a [`LearningRule`]: the local contrast of
//! two equilibria, divided by the difference of their nudging strengths.
//!
//! For synaptic layer `k` (`s_{k-1}` pre-synaptic, `s_k` post-synaptic) and two phases `a`
//! (second, e.g. nudged with `+β`) and `b` (first: free, or nudged with `−β`), the rule
//! proposes
//!
//! `ΔW_k = η_k / (Δβ · batch) · Σ_rows (ρ(s_k^a) ρ(s_{k-1}^a)ᵀ − ρ(s_k^b) ρ(s_{k-1}^b)ᵀ)`,
//!
//! `Δβ = β_a − β_b` (`β` one-sided, `2β` symmetric), the EP estimate of `−η_k ∂L/∂W_k`
//! (Scellier & Bengio, Front. Comput. Neurosci. 2017; Laborieux et al., Front. Neurosci.
//! 2021); the rows are the samples of the batch, or for a convolution every output pixel
//! of every sample (its input patch and the unpooled rates above it). The states are
//! already rates (outputs of `ρ`). The change is a sum of outer
//! products, so a crossbar applies it with coincident pulse trains; when the pre-synaptic
//! activity is the same in both phases (the clamped input of the first layer) the two
//! products share a factor and one product per sample, `(s_k^a − s_k^b) xᵀ`, is proposed.

use anyhow::{Context, Result, ensure};

use crate::learning::rule::{LearningRule, LocalSignals, SignalRequest, WeightChange};
use crate::synapses::OuterProductUpdate;

/// The equilibrium-propagation rule with one learning rate per synaptic layer.
#[derive(Clone, Debug, PartialEq)]
pub struct EquilibriumPropagation {
    /// Learning rate `η_k` of each synaptic layer, input side first.
    pub learning_rates: Vec<f32>,
}

impl LearningRule for EquilibriumPropagation {
    fn name(&self) -> &str {
        "equilibrium_propagation"
    }

    fn signals(&self) -> SignalRequest {
        SignalRequest {
            error: false,
            second_phase: true,
        }
    }

    fn propose(&mut self, signals: &LocalSignals<'_>) -> Result<WeightChange> {
        let (a, b) = (signals.require_second_phase(self.name())?, signals.phase);
        let learning_rate = *self.learning_rates.get(signals.layer).with_context(|| {
            format!(
                "the EP rule has {} learning rates but was asked to update synaptic layer {}: \
                 give one learning rate per layer",
                self.learning_rates.len(),
                signals.layer
            )
        })?;
        let delta_beta = a.beta - b.beta;
        ensure!(
            delta_beta != 0.0,
            "EP needs a non-zero nudging strength β: both phases settled with β = {}",
            a.beta
        );
        let scale = 1.0 / (delta_beta * signals.batch as f32) * learning_rate;
        let update = if a.inputs == b.inputs {
            OuterProductUpdate {
                post: a
                    .outputs
                    .iter()
                    .zip(b.outputs)
                    .map(|(p, q)| p - q)
                    .collect(),
                pre: a.inputs.to_vec(),
                rows: signals.rows,
                scale,
            }
        } else {
            let post = stack(a.outputs, b.outputs.iter().map(|v| -v));
            let pre = stack(a.inputs, b.inputs.iter().copied());
            OuterProductUpdate {
                post,
                pre,
                rows: 2 * signals.rows,
                scale,
            }
        };
        Ok(WeightChange::OuterProduct(update))
    }
}

/// The rows of `first` then those of `second`, allocated once.
fn stack(first: &[f32], second: impl ExactSizeIterator<Item = f32>) -> Vec<f32> {
    let mut rows = Vec::with_capacity(first.len() + second.len());
    rows.extend_from_slice(first);
    rows.extend(second);
    rows
}
