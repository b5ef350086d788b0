//! The metaplastic Adam update of Laborieux et al. (Nature Communications 12, 2549, 2021).
//!
//! Adam (Kingma & Ba, ICLR 2015) proposes for each hidden weight `W_h` the step
//! `δ = −η·(√(1 − β2ᵗ)/(1 − β1ᵗ))·m / (√v + ε)` (PyTorch's form of the bias correction, as
//! in the authors' code). Metaplasticity scales the step by
//! `f_meta = 1 − tanh²(m·|W_h|)` when it would move `W_h` towards zero — i.e. when
//! `sign(W_h)·δ < 0`, the authors' condition `sign(W_h)·m_Adam > 0` — and leaves steps that
//! move `W_h` away from zero unchanged. A hidden weight that has grown large is thus hard
//! to push back across zero, which protects its binary weight `sign(W_h)`: the binary
//! weights that matter for past tasks are consolidated. With `m = 0`, `f_meta = 1` and
//! the rule is plain Adam on the hidden weights (a standard binarized network).
//!
//! [`MetaplasticAdam`] is this rule behind the learning-rule API ([`LearningRule`]): it
//! keeps every layer's hidden weights and Adam moments, reads the backpropagated error at
//! the layer's pre-batch-norm outputs and the layer's inputs, takes the modulated Adam step
//! and proposes the change of the binary weights, `ΔW_b = sign(W_h') − sign(W_h)`: `±2`
//! where the sign flipped, 0 elsewhere — so a 2T2R layer
//! ([`crate::synapses::BinarySynapses`]) re-programs exactly the flipped pairs.

use crate::learning::rule::{LearningRule, LocalSignals, SignalRequest, WeightChange};
use crate::linalg;
use crate::nn::optim::{AdamHyper, AdamMoments, adam_delta};
use crate::synapses::pairs::binary_weight;
use anyhow::{Context, Result, ensure};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Hidden weights per parallel work item of the Adam step.
const STEP_CHUNK: usize = 8192;

/// The paper's Adam settings; the update itself is [`crate::nn::optim`]'s (PyTorch's form,
/// [`AdamMoments::step`]).
impl AdamHyper {
    /// The paper's settings (Laborieux et al. 2021): η = 0.005, β = (0.9, 0.999),
    /// ε = 1e-8, λ = 1e-7.
    pub fn paper() -> Self {
        AdamHyper {
            learning_rate: 0.005,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            weight_decay: 1e-7,
        }
    }
}

/// How hidden-weight steps are modulated.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MetaRule {
    /// Plain Adam on the hidden weights: the metaplastic factor is never computed.
    Plain,
    /// Steps towards zero are scaled by `f_meta = 1 − tanh²(m·|W_h|)`.
    Metaplastic {
        /// Metaplasticity strength m (dimensionless, ≥ 0).
        m: f32,
    },
}

/// The metaplastic factor `f_meta = 1 − tanh²(m·W_h)` (even in `W_h`, exactly 1 at
/// `m·W_h = 0`, falling to 0 once `|W_h| ≫ 1/m`), evaluated as the equal
/// `sech²x = 4e/(1 + e)²` with `e = exp(−2|x|)`, `x = m·W_h` (relative error < 1e-6;
/// branch-free so that the weight update vectorises).
#[inline]
pub fn f_meta(m: f32, w_h: f32) -> f32 {
    let e = exp_neg(2.0 * (m * w_h).abs());
    4.0 * e / ((1.0 + e) * (1.0 + e))
}

/// `e^{−y}` for `y ≥ 0`, branch-free: `y·log₂e = n + r` with integer `n` and `r ∈ [0, 1)`,
/// `2^{−r} = e^{−r·ln 2}` by its Taylor series to the 8th power (truncation error below
/// 1.1e-7 relative for `r·ln 2 < 0.7`), `2^{−n}` from the exponent bits; flushed to
/// `2^{−126}` (≈ 1e-38) for `y > 87`. Exactly 1 at `y = 0`.
#[inline]
fn exp_neg(y: f32) -> f32 {
    let t = (y * std::f32::consts::LOG2_E).min(126.0);
    let n = t as i32; // t ≥ 0: truncation is the floor
    let z = (t - n as f32) * std::f32::consts::LN_2;
    let mut p = 1.0 / 40320.0;
    for c in [
        -1.0 / 5040.0,
        1.0 / 720.0,
        -1.0 / 120.0,
        1.0 / 24.0,
        -1.0 / 6.0,
        0.5,
        -1.0,
        1.0,
    ] {
        p = p * z + c;
    }
    p * f32::from_bits(((127 - n) as u32) << 23)
}

/// The step actually applied to hidden weight `w_h` when Adam proposes `delta`: scaled by
/// [`f_meta`] if it moves `w_h` towards zero (`sign(w_h)·delta < 0`), unchanged otherwise
/// (and always unchanged under [`MetaRule::Plain`]).
#[inline]
pub fn modulate(rule: MetaRule, w_h: f32, delta: f32) -> f32 {
    match rule {
        MetaRule::Plain => delta,
        MetaRule::Metaplastic { m } => modulate_meta(m, w_h, delta),
    }
}

/// [`modulate`] for strength `m`, written without branches (a select) so loops vectorise.
#[inline]
fn modulate_meta(m: f32, w_h: f32, delta: f32) -> f32 {
    let towards_zero = w_h * delta < 0.0;
    let f = f_meta(m, w_h);
    delta * if towards_zero { f } else { 1.0 }
}

/// The hidden weights of one layer and their Adam memory.
#[derive(Clone, Debug)]
struct HiddenLayer {
    weights: Vec<f32>,
    moments: AdamMoments,
}

impl HiddenLayer {
    /// Take the modulated Adam step from the ascent direction `ascent = −∂L/∂W_b` and
    /// overwrite `ascent` with the change of the binary weights.
    fn step(&mut self, hyper: &AdamHyper, meta: MetaRule, ascent: &mut [f32]) {
        let step_size = self.moments.advance(hyper);
        let c = STEP_CHUNK;
        self.weights
            .par_chunks_mut(c)
            .zip(ascent.par_chunks_mut(c))
            .zip(self.moments.first.par_chunks_mut(c))
            .zip(self.moments.second.par_chunks_mut(c))
            .for_each(|(((w, d), m), v)| {
                // Adam's proposals first, in a branch-free loop the compiler vectorises.
                let moments = m.iter_mut().zip(v.iter_mut());
                for ((di, &wi), (mi, vi)) in d.iter_mut().zip(&*w).zip(moments) {
                    *di = adam_delta(hyper, step_size, wi, -*di, mi, vi);
                }
                // Then the modulated step and the change of the binary weight.
                match meta {
                    MetaRule::Plain => {
                        for (wi, di) in w.iter_mut().zip(d.iter_mut()) {
                            let old = *wi;
                            *wi += *di;
                            *di = binary_weight(*wi) - binary_weight(old);
                        }
                    }
                    MetaRule::Metaplastic { m } => {
                        for (wi, di) in w.iter_mut().zip(d.iter_mut()) {
                            let old = *wi;
                            *wi += modulate_meta(m, old, *di);
                            *di = binary_weight(*wi) - binary_weight(old);
                        }
                    }
                }
            });
    }
}

/// The metaplastic Adam rule of a binarized network as a [`LearningRule`]: it owns the
/// hidden weights `W_h` and Adam moments of every layer, and proposes for layer `k` the
/// dense change of its binary weights, `sign(W_h') − sign(W_h)` (`±2` where the sign
/// flipped, 0 elsewhere).
///
/// It requests the error at the layer's outputs — for a binarized layer followed by batch
/// norm, the backpropagated `−∂L/∂a` at the pre-batch-norm sums `a = W_b·x` — and forms the
/// gradient of the binary weights `∂L/∂W_b = −Σ_batch error ⊗ input`, which is used as the
/// gradient of `W_h` (straight-through), as in Courbariaux, Hubara et al. 2016.
#[derive(Clone, Debug)]
pub struct MetaplasticAdam {
    hyper: AdamHyper,
    meta: MetaRule,
    layers: Vec<HiddenLayer>,
}

impl MetaplasticAdam {
    /// The rule for layers with initial hidden weights `hidden[k]` (`outputs x inputs`,
    /// row-major), with fresh Adam moments.
    pub fn new(hidden: Vec<Vec<f32>>, hyper: AdamHyper, meta: MetaRule) -> Result<Self> {
        hyper.validate().context("metaplastic Adam")?;
        if let MetaRule::Metaplastic { m } = meta {
            ensure!(
                m.is_finite() && m >= 0.0,
                "metaplasticity m = {m} must be finite and >= 0"
            );
        }
        let layers = hidden
            .into_iter()
            .map(|weights| HiddenLayer {
                moments: AdamMoments::new(weights.len()),
                weights,
            })
            .collect();
        Ok(MetaplasticAdam {
            hyper,
            meta,
            layers,
        })
    }

    /// Hidden weights of layer `layer` (`outputs x inputs`, row-major).
    pub fn hidden_weights(&self, layer: usize) -> Option<&[f32]> {
        self.layers.get(layer).map(|l| l.weights.as_slice())
    }

    /// Forget the Adam moments of every layer (the paper starts fresh ones for every
    /// task); the hidden weights are kept.
    pub fn reset_moments(&mut self) {
        for l in &mut self.layers {
            l.moments = AdamMoments::new(l.weights.len());
        }
    }
}

impl LearningRule for MetaplasticAdam {
    fn name(&self) -> &str {
        "metaplastic_adam"
    }

    fn signals(&self) -> SignalRequest {
        SignalRequest {
            error: true,
            second_phase: false,
        }
    }

    fn propose(&mut self, signals: &LocalSignals<'_>) -> Result<WeightChange> {
        let error = signals.require_error(self.name())?;
        let (batch, x) = (signals.batch, signals.phase.inputs);
        let depth = self.layers.len();
        let layer = self.layers.get_mut(signals.layer).with_context(|| {
            format!(
                "metaplastic Adam holds hidden weights of {depth} layers, not of layer {}",
                signals.layer
            )
        })?;
        ensure!(
            batch > 0 && error.len() % batch == 0 && x.len() % batch == 0,
            "metaplastic Adam: {} error and {} input values do not split into {batch} samples",
            error.len(),
            x.len()
        );
        let (outputs, inputs) = (error.len() / batch, x.len() / batch);
        ensure!(
            outputs * inputs == layer.weights.len(),
            "metaplastic Adam: layer {} has {} hidden weights, the signals {outputs} outputs x \
             {inputs} inputs",
            signals.layer,
            layer.weights.len()
        );
        let mut change = vec![0.0; outputs * inputs];
        linalg::at_b(error, x, outputs, batch, inputs, &mut change);
        layer.step(&self.hyper, self.meta, &mut change);
        Ok(WeightChange::Dense(change))
    }
}
