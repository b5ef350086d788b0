//! Digital training of sequential networks by backpropagation through convolutions
//! (im2col: the kernel gradient is one product of the output errors with the saved patches,
//! the input gradient the transposed read of the kernel matrix folded back by col2im),
//! pooling, ReLU and linear layers, with the optimisers, schedule, shuffles and shift
//! augmentation of `nn::backprop` (same `TrainConfig`, same random streams). Every product
//! comes from `crate::linalg`, so training is bit-identical for any thread count.

use super::{Saved, Sequential, Stage};
use crate::data::Dataset;
use crate::linalg;
use crate::nn::backprop::{EpochReport, TrainConfig, TrainReport, run_epochs};
use crate::nn::mlp::softmax_cross_entropy;
use crate::nn::network::Classifier;
use crate::nn::optim::ParamState;
use crate::synapses::{DigitalSynapses, SynapticLayer};
use anyhow::{Context, Result, ensure};

/// The gradient of a weighted stage: kernel or weight matrix (`outputs x inputs`) and bias.
#[derive(Clone, Debug, PartialEq)]
pub struct StageGradient {
    /// `∂L/∂W`, row-major like the weights.
    pub weight: Vec<f32>,
    /// `∂L/∂b`.
    pub bias: Vec<f32>,
}

impl Sequential<DigitalSynapses> {
    /// Mean softmax cross-entropy of a batch and its gradient for every stage (`None` for
    /// stages without parameters), with the batch's logits.
    pub fn gradients(
        &mut self,
        x: &[f32],
        labels: &[u8],
    ) -> Result<(f64, Vec<Option<StageGradient>>, Vec<f32>)> {
        let batch = labels.len();
        self.check_inputs(x, batch)?;
        let (logits, saved) = self.forward(x, batch, true)?;
        let (loss, mut dy) = softmax_cross_entropy(&logits, labels);
        let mut grads = vec![None; self.stages.len()];
        for i in (0..self.stages.len()).rev() {
            let (dx, grad) = backward_stage(&mut self.stages[i], &saved[i], &dy, batch, i > 0)
                .with_context(|| format!("backward pass of stage {i}"))?;
            grads[i] = grad;
            dy = dx;
        }
        Ok((loss, grads, logits))
    }
}

/// One stage's backward pass: the gradient with respect to its input (when `need_dx`) and
/// to its parameters.
fn backward_stage<S: SynapticLayer>(
    stage: &mut Stage<S>,
    saved: &Saved,
    dy: &[f32],
    batch: usize,
    need_dx: bool,
) -> Result<(Vec<f32>, Option<StageGradient>)> {
    Ok(match (stage, saved) {
        (
            Stage::Conv {
                geometry, synapses, ..
            },
            Saved::Patches(cols),
        ) => {
            let rows = geometry.channels_to_pixels(dy, batch);
            let reads = batch * geometry.pixels();
            let grad = weight_gradient(
                &rows,
                cols,
                reads,
                geometry.out_channels,
                geometry.patch_len(),
            );
            let dx = if need_dx {
                let mut dcols = vec![0f32; reads * geometry.patch_len()];
                synapses.transposed(&rows, reads, &mut dcols)?;
                geometry.col2im(&dcols, batch)
            } else {
                Vec::new()
            };
            (dx, Some(grad))
        }
        (Stage::Linear { synapses, .. }, Saved::Input(input)) => {
            let (n, m) = (synapses.inputs(), synapses.outputs());
            let grad = weight_gradient(dy, input, batch, m, n);
            let mut dx = vec![0f32; if need_dx { batch * n } else { 0 }];
            if need_dx {
                synapses.transposed(dy, batch, &mut dx)?;
            }
            (dx, Some(grad))
        }
        (Stage::Relu, Saved::Input(input)) => (
            dy.iter()
                .zip(input)
                .map(|(&d, &v)| if v > 0.0 { d } else { 0.0 })
                .collect(),
            None,
        ),
        (Stage::Pool(g), Saved::Input(input)) => (g.backward(input, dy), None),
        (Stage::Flatten, _) => (dy.to_vec(), None),
        _ => anyhow::bail!("the forward pass did not save what this stage needs"),
    })
}

/// `∂L/∂W = dyᵀ · inputs` (`outputs x inputs`) and `∂L/∂b = Σ_rows dy`, from `rows` rows of
/// output errors `dy` and inputs.
fn weight_gradient(
    dy: &[f32],
    inputs: &[f32],
    rows: usize,
    outputs: usize,
    n_in: usize,
) -> StageGradient {
    let mut weight = vec![0f32; outputs * n_in];
    linalg::at_b(dy, inputs, outputs, rows, n_in, &mut weight);
    let mut bias = vec![0f32; outputs];
    for row in dy.chunks(outputs) {
        bias.iter_mut().zip(row).for_each(|(b, d)| *b += d);
    }
    StageGradient { weight, bias }
}

/// Train `net` on `data` in place (inputs `1 x rows x cols`) with `config`: shuffled
/// mini-batches, the optimiser with per-epoch learning-rate decay, optional random shifts;
/// `on_epoch` sees each finished epoch. Hardware-aware weight noise is not supported for
/// sequential networks yet.
pub fn train(
    net: &mut Sequential<DigitalSynapses>,
    data: &Dataset,
    config: &TrainConfig,
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<TrainReport> {
    ensure!(
        config.weight_noise.is_none(),
        "train.weight_noise is not supported for sequential networks yet: remove it"
    );
    let shape = (net.inputs(), net.classes());
    let mut states: Vec<(ParamState, ParamState)> = vec![Default::default(); net.stages.len()];
    run_epochs(data, config, shape, on_epoch, |x, labels, _, _, lr| {
        let (loss, grads, logits) = net.gradients(x, labels)?;
        for ((stage, grad), (sw, sb)) in net.stages.iter_mut().zip(&grads).zip(&mut states) {
            if let (Some(grad), Some((w, bias))) = (grad, parameters(stage)) {
                sw.step(&config.optimizer, lr, w.weight_mut(), &grad.weight);
                sb.step(&config.optimizer, lr, bias, &grad.bias);
            }
        }
        Ok((loss, logits))
    })
}

/// A weighted stage's weights and biases, mutable.
fn parameters(stage: &mut Stage<DigitalSynapses>) -> Option<(&mut DigitalSynapses, &mut Vec<f32>)> {
    match stage {
        Stage::Conv { synapses, bias, .. } | Stage::Linear { synapses, bias } => {
            Some((synapses, bias))
        }
        _ => None,
    }
}
