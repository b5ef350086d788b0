//! Digital training of sequential networks by backpropagation through convolutions
//! (im2col: the kernel gradient is one product of the output errors with the saved patches,
//! the input gradient the transposed read of the kernel matrix folded back by col2im),
//! pooling, ReLU, batch norm (batch statistics, running statistics updated as PyTorch does),
//! residual blocks (the error of the sum flows into both branches) and linear layers, with
//! the optimisers, schedules, weight decay, weight noise, shuffles and augmentation of
//! `nn::backprop` (same `TrainConfig`, same random streams). Gradients are keyed by the
//! network's PyTorch `state_dict` names. Every product comes from `crate::linalg`, so
//! training is bit-identical for any thread count.
//!
//! Binary and ternary stages are trained as binarized networks are (Courbariaux, Hubara
//! et al. 2016; `nn::binary`): the forward and backward passes use the quantised weights,
//! their gradient passes straight through to the hidden real weights, which the optimiser
//! steps and clips to `[−1, 1]`; the sign/ternary activations pass their error where
//! `|input| ≤ 1` (hardtanh straight-through estimator).

use super::state_dict::{RUNNING_STATISTICS, tensors_mut};
use super::{Pass, Saved, Sequential, Site, Stage, quantize_weights, visit_stages_mut};
use crate::data::Dataset;
use crate::linalg;
use crate::linalg::conv::ConvGeometry;
use crate::nn::backprop::{EpochReport, TrainConfig, TrainReport, run_epochs};
use crate::nn::binary;
use crate::nn::mlp::softmax_cross_entropy;
use crate::nn::network::Classifier;
use crate::nn::noise::WeightNoise;
use crate::nn::optim::ParamState;
use crate::rng;
use crate::synapses::{DigitalSynapses, Fold, SynapticLayer, column_block};
use anyhow::{Context, Result};
use std::collections::BTreeMap;

/// Gradients of the loss by parameter key, named as in the network's PyTorch `state_dict`
/// (`0.weight`, `0.bias`, `5.conv1.weight`, `1.weight` of a batch norm = `∂L/∂γ`, ...).
pub type Gradients = BTreeMap<String, Vec<f32>>;

impl Sequential<DigitalSynapses> {
    /// Mean softmax cross-entropy of a training batch (batch norms on the batch's
    /// statistics, their running statistics updated), its gradient for every parameter, and
    /// the batch's logits.
    pub fn gradients(&mut self, x: &[f32], labels: &[u8]) -> Result<(f64, Gradients, Vec<f32>)> {
        let batch = labels.len();
        self.check_inputs(x, batch)?;
        let (logits, saved) = self.forward(x, batch, Pass::Train)?;
        let (loss, dy) = softmax_cross_entropy(&logits, labels);
        let mut grads = Gradients::new();
        backward_stages(
            &mut self.stages,
            &saved,
            dy,
            (batch, false),
            &Site::top,
            &mut grads,
        )?;
        Ok((loss, grads, logits))
    }
}

/// The backward pass through `stages` (the site of stage `i` is `site_of(i)`), from the
/// output errors `dy`, adding every parameter gradient to `grads`; the input errors (empty
/// when `need_dx` is false: the network's input needs none).
fn backward_stages<S: SynapticLayer>(
    stages: &mut [Stage<S>],
    saved: &[Saved],
    mut dy: Vec<f32>,
    (batch, need_dx): (usize, bool),
    site_of: &dyn Fn(usize) -> Site,
    grads: &mut Gradients,
) -> Result<Vec<f32>> {
    for i in (0..stages.len()).rev() {
        let site = site_of(i);
        let need = need_dx || i > 0;
        dy = backward_stage(&mut stages[i], &saved[i], &dy, (batch, need), &site, grads)
            .with_context(|| format!("backward pass of stage {}", site.key))?;
    }
    Ok(dy)
}

/// One stage's backward pass: its parameter gradients into `grads` and the gradient with
/// respect to its input (when `need_dx`).
fn backward_stage<S: SynapticLayer>(
    stage: &mut Stage<S>,
    saved: &Saved,
    dy: &[f32],
    (batch, need_dx): (usize, bool),
    site: &Site,
    grads: &mut Gradients,
) -> Result<Vec<f32>> {
    let key = |name: &str| format!("{}.{name}", site.key);
    Ok(match (stage, saved) {
        (
            Stage::Conv {
                geometry,
                synapses,
                bias,
                ..
            },
            Saved::Patches(cols),
        ) => {
            let rows = geometry.channels_to_pixels(dy, batch);
            let reads = batch * geometry.pixels();
            let c_out = geometry.out_channels;
            grads.insert(key("weight"), kernel_gradient(geometry, &rows, cols, reads));
            if bias.is_some() {
                grads.insert(key("bias"), bias_gradient(&rows, c_out));
            }
            if need_dx {
                let mut dx = vec![0f32; batch * geometry.input_len()];
                // Errors routed back through max pooling and ReLU: mostly zeros.
                let fold = Fold {
                    rows: geometry.pixels(),
                    out: &mut dx,
                    each: &|patches, image| geometry.col2im_image(patches, image),
                    scratch: &mut Vec::new(),
                };
                synapses.transposed_sparse_folded(&rows, reads, fold)?;
                dx
            } else {
                Vec::new()
            }
        }
        (Stage::Linear { synapses, bias, .. }, Saved::Input(input)) => {
            let (n, m) = (synapses.inputs(), synapses.outputs());
            grads.insert(key("weight"), weight_gradient(dy, input, batch, m, n));
            if bias.is_some() {
                grads.insert(key("bias"), bias_gradient(dy, m));
            }
            let mut dx = vec![0f32; if need_dx { batch * n } else { 0 }];
            if need_dx {
                synapses.transposed(dy, batch, &mut dx)?;
            }
            dx
        }
        (Stage::BatchNorm { norm, pixels }, Saved::Normalized(normalized)) => {
            let (dx, grad) = norm.backward(normalized, dy, *pixels);
            grads.insert(key("weight"), grad.gamma);
            grads.insert(key("bias"), grad.beta);
            dx
        }
        (Stage::Relu, Saved::Input(input)) => relu_backward(dy, input),
        (Stage::Step(_), Saved::Input(input)) => {
            let mut dx = dy.to_vec();
            binary::straight_through(&mut dx, input);
            dx
        }
        (Stage::Pool(g), Saved::Input(input)) => g.backward(input, dy),
        (Stage::Flatten, _) => dy.to_vec(),
        (
            Stage::Residual(block),
            Saved::Block {
                body,
                shortcut,
                sum,
            },
        ) => {
            let ds = relu_backward(dy, sum);
            let n = block.body.len();
            let mut dx = backward_stages(
                &mut block.body,
                body,
                ds.clone(),
                (batch, true),
                &|j| site.child(j, n),
                grads,
            )?;
            let d_short = backward_stages(
                &mut block.shortcut,
                shortcut,
                ds,
                (batch, true),
                &|j| site.child(n + j, n),
                grads,
            )?;
            dx.iter_mut().zip(&d_short).for_each(|(a, b)| *a += b);
            dx
        }
        _ => anyhow::bail!("the forward pass did not save what this stage needs"),
    })
}

/// `dy` where the ReLU's input was positive, 0 elsewhere.
fn relu_backward(dy: &[f32], input: &[f32]) -> Vec<f32> {
    dy.iter()
        .zip(input)
        .map(|(&d, &v)| if v > 0.0 { d } else { 0.0 })
        .collect()
}

/// `∂L/∂W = dyᵀ · inputs` (`outputs x inputs`) from `rows` rows of output errors `dy` and
/// inputs.
fn weight_gradient(
    dy: &[f32],
    inputs: &[f32],
    rows: usize,
    outputs: usize,
    n_in: usize,
) -> Vec<f32> {
    let mut weight = vec![0f32; outputs * n_in];
    linalg::at_b(dy, inputs, outputs, rows, n_in, &mut weight);
    weight
}

/// `∂L/∂W` of a convolution's kernel matrix from the output errors `rows`
/// (`reads x C_out`) and the patches `cols` (`reads x C_in·k·k`); a grouped convolution's
/// only for its diagonal blocks, stacked as its weights are.
fn kernel_gradient(geometry: &ConvGeometry, rows: &[f32], cols: &[f32], reads: usize) -> Vec<f32> {
    let (m, n) = (geometry.block_outputs(), geometry.block_inputs());
    let mut grad = vec![0f32; geometry.groups * m * n];
    for (g, block) in grad.chunks_exact_mut(m * n).enumerate() {
        let (dy, x) = (
            column_block(rows, reads, m, g),
            column_block(cols, reads, n, g),
        );
        linalg::at_b(&dy, &x, m, reads, n, block);
    }
    grad
}

/// `∂L/∂b = Σ_rows dy` from rows of `outputs` output errors.
fn bias_gradient(dy: &[f32], outputs: usize) -> Vec<f32> {
    let mut bias = vec![0f32; outputs];
    for row in dy.chunks(outputs) {
        bias.iter_mut().zip(row).for_each(|(b, d)| *b += d);
    }
    bias
}

/// Train `net` on `data` in place (inputs of the network's shape) with `config`: shuffled
/// mini-batches, the optimiser with its learning-rate schedule and weight decay, random
/// shifts and flips, and hardware-aware weight noise (every weighted stage's weights
/// perturbed for the forward and backward pass of each mini-batch, the update applied to
/// the clean weights; the weighted stage `l` in visiting order draws from
/// `(seed, [noise, epoch, batch, l])`, as the MLP's layer `l` does). `on_epoch` sees each
/// finished epoch.
pub fn train(
    net: &mut Sequential<DigitalSynapses>,
    data: &Dataset,
    config: &TrainConfig,
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<TrainReport> {
    let shape = (net.inputs(), net.classes());
    let mut states = BTreeMap::new();
    run_epochs(data, config, shape, on_epoch, |x, labels, epoch, b, lr| {
        training_step(net, &mut states, config, x, labels, (epoch, b, lr))
    })
}

/// [`train`], testing the network on `test` after every epoch: the test accuracy of each
/// epoch (a learning curve; binary and ternary stages tested with their quantised weights,
/// [`Sequential::quantized`]), with the training report.
pub fn train_tested(
    net: &mut Sequential<DigitalSynapses>,
    data: &Dataset,
    test: &Dataset,
    config: &TrainConfig,
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<(TrainReport, Vec<f64>)> {
    let shape = (net.inputs(), net.classes());
    let net = std::cell::RefCell::new(net);
    let mut states = BTreeMap::new();
    let mut tests = Vec::new();
    let mut tested = |report: &EpochReport| {
        on_epoch(report);
        tests.push(crate::nn::evaluate(&mut net.borrow().quantized(), test));
    };
    let report = run_epochs(
        data,
        config,
        shape,
        &mut tested,
        |x, labels, epoch, b, lr| {
            training_step(
                &mut net.borrow_mut(),
                &mut states,
                config,
                x,
                labels,
                (epoch, b, lr),
            )
        },
    )?;
    let tests = tests
        .into_iter()
        .enumerate()
        .map(|(e, t)| t.with_context(|| format!("testing after epoch {}", e + 1)))
        .collect::<Result<_>>()?;
    Ok((report, tests))
}

/// One optimiser step of every parameter of `net` on the mini-batch `x`, `labels`
/// (mini-batch `b` of epoch `epoch`, step size `lr`); `states` holds the optimiser's
/// memory by parameter key. Returns the batch's loss and logits.
fn training_step(
    net: &mut Sequential<DigitalSynapses>,
    states: &mut BTreeMap<String, ParamState>,
    config: &TrainConfig,
    x: &[f32],
    labels: &[u8],
    (epoch, b, lr): (usize, usize, f32),
) -> Result<(f64, Vec<f32>)> {
    let hidden = quantize_weights(net);
    let clean = config
        .weight_noise
        .map(|noise| perturb_weights(net, &noise, config.seed, (epoch, b)));
    let (loss, grads, logits) = net.gradients(x, labels)?;
    if let Some(clean) = clean {
        restore_weights(net, clean, &|_| true);
    }
    restore_weights(net, hidden, &|stage| stage.quantization().is_some());
    visit_stages_mut(&mut net.stages, &mut |site, stage| {
        let quantized = stage.quantization().is_some();
        for (name, params) in parameters(stage) {
            let key = format!("{}.{name}", site.key);
            if let Some(grad) = grads.get(&key) {
                let state = states.entry(key).or_default();
                state.step_decayed(&config.optimizer, lr, config.weight_decay, params, grad);
            }
            if quantized && name == "weight" {
                binary::clip_hidden(params);
            }
        }
    });
    Ok((loss, logits))
}

/// A stage's own trainable tensors by PyTorch name (`weight`, `bias`), mutable: its
/// [`tensors_mut`] without the running statistics.
fn parameters(stage: &mut Stage<DigitalSynapses>) -> Vec<(&'static str, &mut [f32])> {
    tensors_mut(stage)
        .into_iter()
        .filter(|(name, _)| !RUNNING_STATISTICS.contains(name))
        .collect()
}

/// Perturb every weighted stage's weights with one draw of `noise` for mini-batch
/// `(epoch, batch)`; the clean weights, in visiting order.
fn perturb_weights(
    net: &mut Sequential<DigitalSynapses>,
    noise: &WeightNoise,
    seed: u64,
    (epoch, batch): (usize, usize),
) -> Vec<Vec<f32>> {
    let mut clean = Vec::new();
    visit_stages_mut(&mut net.stages, &mut |_, stage| {
        if let Stage::Conv { synapses, .. } | Stage::Linear { synapses, .. } = stage {
            let path = [
                rng::BACKPROP_NOISE_STREAM,
                epoch as u64,
                batch as u64,
                clean.len() as u64,
            ];
            clean.push(synapses.weight().to_vec());
            noise.perturb(synapses.weight_mut(), &mut rng::stream(seed, &path));
        }
    });
    clean
}

/// Put back the weights [`perturb_weights`] (every weighted stage) or
/// [`quantize_weights`] (the binary and ternary stages) returned: `weights` in visiting
/// order of the weighted stages that `selected` picks.
fn restore_weights(
    net: &mut Sequential<DigitalSynapses>,
    weights: Vec<Vec<f32>>,
    selected: &dyn Fn(&Stage<DigitalSynapses>) -> bool,
) {
    let mut weights = weights.into_iter();
    visit_stages_mut(&mut net.stages, &mut |_, stage| {
        let pick = selected(stage);
        if let (true, Stage::Conv { synapses, .. } | Stage::Linear { synapses, .. }) = (pick, stage)
        {
            let w = weights.next().expect("one saved copy per selected stage");
            synapses.weight_mut().copy_from_slice(&w);
        }
    });
}
