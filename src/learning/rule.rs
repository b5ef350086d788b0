//! The learning-rule API: one trait to try a new on-chip rule on any synaptic layer.
//!
//! A rule sees, for one synaptic layer and one mini-batch, the layer's inputs
//! (pre-synaptic activity) and outputs (post-synaptic activity), plus the local signals it
//! asks for ([`SignalRequest`]): an error signal at the outputs (from backpropagation, a
//! target, or a feedback pathway) and the activities of a second phase (e.g. the nudged
//! phase of a contrastive rule). It proposes a [`WeightChange`] — a sum of outer products
//! (what crossbars apply in parallel with coincident pulse trains) or a dense `ΔW` (applied
//! device by device) — and [`apply_change`] hands it to the layer. On a
//! [`CrossbarSynapses`](crate::synapses::CrossbarSynapses) layer every change becomes programming pulses with all device
//! non-idealities; on [`DigitalSynapses`](crate::synapses::DigitalSynapses) it is a floating-point add, the reference.
//!
//! Every on-chip rule of xbar is a rule of this API: the analog SGD baseline
//! ([`super::sgd::Sgd`], error signal), equilibrium propagation
//! ([`super::ep::EquilibriumPropagation`], second phase) and the metaplastic rule of
//! binarized networks. `docs/LEARNING_RULES.md` shows a complete new rule in about fifty
//! lines.

use anyhow::{Context, Result};

use crate::synapses::{OuterProductUpdate, PlasticSynapses};

/// Which local signals a rule needs beyond the layer's inputs and outputs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SignalRequest {
    /// An error signal at the layer's outputs (`batch x outputs`).
    pub error: bool,
    /// The layer's inputs and outputs in a second phase.
    pub second_phase: bool,
}

/// Activities of one layer in one phase.
#[derive(Clone, Copy, Debug)]
pub struct Phase<'a> {
    /// Pre-synaptic activity, `rows x inputs`, row-major (see [`LocalSignals::rows`]).
    pub inputs: &'a [f32],
    /// Post-synaptic activity, `rows x outputs`, row-major.
    pub outputs: &'a [f32],
    /// Nudging strength `β` of the output towards the target under which these activities
    /// settled (0 for a free or feed-forward phase): a contrastive rule divides the
    /// difference of two phases by the difference of their `β`.
    pub beta: f32,
}

/// What a rule sees of one synaptic layer for one mini-batch.
#[derive(Clone, Copy, Debug)]
pub struct LocalSignals<'a> {
    /// Index of the synaptic layer (input side first).
    pub layer: usize,
    /// Samples in the mini-batch (a rule averages its change over them).
    pub batch: usize,
    /// Rows of the phases' `inputs` and `outputs` (and of the error): `batch` for a fully
    /// connected layer; `batch × output pixels` for a convolution, whose every output pixel
    /// is one read of the kernel matrix with its input patch (so a weight's change sums
    /// over the pixels of each sample).
    pub rows: usize,
    /// Activities of the (first) phase: the forward pass of a feed-forward network, or the
    /// reference phase of a contrastive rule (the free phase, or the `−β` phase of
    /// symmetric nudging).
    pub phase: Phase<'a>,
    /// Error at the outputs, `batch x outputs` (when requested): the direction in which the
    /// outputs' pre-activations should move, e.g. `-∂L/∂u` for backprop.
    pub error: Option<&'a [f32]>,
    /// Activities of the second phase (when requested), e.g. the `+β` nudged phase.
    pub second_phase: Option<Phase<'a>>,
}

impl<'a> LocalSignals<'a> {
    /// The error signal, or an error naming the rule that forgot to request it.
    pub fn require_error(&self, rule: &str) -> Result<&'a [f32]> {
        self.error.with_context(|| {
            format!("rule {rule} reads an error signal: request it in LearningRule::signals")
        })
    }

    /// The second phase, or an error naming the rule that forgot to request it.
    pub fn require_second_phase(&self, rule: &str) -> Result<Phase<'a>> {
        self.second_phase.with_context(|| {
            format!("rule {rule} reads a second phase: request it in LearningRule::signals")
        })
    }
}

/// A proposed weight change of one layer (`outputs x inputs`).
#[derive(Clone, Debug, PartialEq)]
pub enum WeightChange {
    /// Leave the weights alone.
    None,
    /// `ΔW = scale · Σ_r post_r ⊗ pre_r`: applied by coincident pulse trains on a crossbar.
    OuterProduct(OuterProductUpdate),
    /// A dense `ΔW`, row-major `outputs x inputs`: applied device by device.
    Dense(Vec<f32>),
}

/// A learning rule that runs on the chip: it proposes weight changes from local signals.
pub trait LearningRule {
    /// Short name, for reports and error messages.
    fn name(&self) -> &str;

    /// The local signals the rule reads (none beyond inputs and outputs by default).
    fn signals(&self) -> SignalRequest {
        SignalRequest::default()
    }

    /// Propose the weight change of one layer for one mini-batch.
    fn propose(&mut self, signals: &LocalSignals<'_>) -> Result<WeightChange>;
}

/// Apply a rule's proposed change to a layer.
pub fn apply_change<L: PlasticSynapses + ?Sized>(
    layer: &mut L,
    change: &WeightChange,
) -> Result<()> {
    match change {
        WeightChange::None => Ok(()),
        WeightChange::OuterProduct(update) => layer.apply_update(update),
        WeightChange::Dense(delta_w) => layer.apply_dense(delta_w),
    }
}
