//! Mini-batch training of the digital MLP by backpropagation, with optional
//! hardware-aware weight-noise injection.
//!
//! Every random draw comes from `xbar::rng::stream(seed, path)`: the shuffle of epoch `e`
//! from `[SHUFFLE_STREAM, e]`, the weight noise of mini-batch `b` of epoch `e` in layer `l`
//! from `[NOISE_STREAM, e, b, l]`. With the thread-count-independent products of
//! the `gemm` module, the trained weights are bit-identical for any number of threads.

use super::mlp::{Mlp, backprop};
use super::network::{Classifier, argmax_rows, check_data_fits};
use super::noise::WeightNoise;
use super::optim::{Optimizer, ParamState};
use crate::data::Dataset;
use crate::rng;
use anyhow::{Result, ensure};
use rand::RngExt;
use serde::{Deserialize, Serialize};
use std::time::Instant;

use crate::rng::{
    BACKPROP_NOISE_STREAM as NOISE_STREAM, BACKPROP_SHIFT_STREAM as SHIFT_STREAM,
    BACKPROP_SHUFFLE_STREAM as SHUFFLE_STREAM,
};

/// How to train a network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Images per mini-batch (the last batch of an epoch may be smaller).
    pub batch_size: usize,
    /// The optimiser and its step size.
    pub optimizer: Optimizer,
    /// Factor applied to the step size after every epoch, in `(0, 1]` (1 = constant).
    pub learning_rate_decay: f32,
    /// Weight noise injected in the forward and backward passes, redrawn every mini-batch
    /// (hardware-aware training); `None` trains on the exact weights.
    pub weight_noise: Option<WeightNoise>,
    /// Data augmentation: every training image is translated by a random whole number of
    /// pixels in `[-max_shift_px, max_shift_px]` along each axis (vacated pixels are 0)
    /// each time it is used; 0 disables it.
    pub max_shift_px: usize,
    /// Seed of the shuffles and noise streams (the initial weights have their own seed).
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            batch_size: 64,
            optimizer: Optimizer::adam(1e-3),
            learning_rate_decay: 1.0,
            weight_noise: None,
            max_shift_px: 0,
            seed: 0,
        }
    }
}

impl TrainConfig {
    /// Check every field's range, naming the offending one.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.epochs > 0,
            "training epochs = 0: train for at least one epoch"
        );
        ensure!(
            self.batch_size > 0,
            "training batch_size = 0: use at least one image per batch"
        );
        self.optimizer.validate()?;
        let d = self.learning_rate_decay;
        ensure!(
            d > 0.0 && d <= 1.0,
            "training learning_rate_decay = {d} must lie in (0, 1]"
        );
        if let Some(noise) = &self.weight_noise {
            noise.validate()?;
        }
        Ok(())
    }

    /// Check that the random shifts leave most of an image of `data` in view: a shift of
    /// half the image side or more moves the digit out of the frame.
    pub fn check_shift_fits(&self, data: &Dataset) -> Result<()> {
        let side = data.rows.min(data.cols);
        ensure!(
            2 * self.max_shift_px < side,
            "training max_shift_px = {} would shift the {}x{} images out of view: use less than \
             half the image side (at most {} here; 2 is the usual augmentation)",
            self.max_shift_px,
            data.rows,
            data.cols,
            side.saturating_sub(1) / 2
        );
        Ok(())
    }
}

/// What happened in one epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochReport {
    /// Epoch index, from 0.
    pub epoch: usize,
    /// Mean training loss over the epoch's mini-batches (weighted by batch size).
    pub loss: f64,
    /// Fraction of training images classified correctly during the epoch (before each
    /// batch's update).
    pub train_accuracy: f64,
    /// Wall time of the epoch, seconds.
    pub seconds: f64,
}

/// The per-epoch history of a training run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    /// One entry per epoch.
    pub epochs: Vec<EpochReport>,
}

impl TrainReport {
    /// Total training wall time, seconds.
    pub fn seconds(&self) -> f64 {
        self.epochs.iter().map(|e| e.seconds).sum()
    }
}

/// The order in which epoch `epoch` visits the `n` training images (Fisher–Yates).
pub(crate) fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut r = rng::stream(seed, &[SHUFFLE_STREAM, epoch as u64]);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = r.random_range(0..=i);
        order.swap(i, j);
    }
    order
}

/// Copy the images and labels at `indices` into contiguous batch buffers.
pub(crate) fn gather(data: &Dataset, indices: &[usize]) -> (Vec<f32>, Vec<u8>) {
    let mut x = Vec::with_capacity(indices.len() * data.features());
    for &i in indices {
        x.extend_from_slice(data.image(i));
    }
    (x, indices.iter().map(|&i| data.labels[i]).collect())
}

/// Translate each `rows x cols` image of the batch `x` in place by a random offset of up
/// to `max_shift` pixels per axis, drawn from `rng`.
pub(crate) fn random_shifts<R: rand::Rng>(
    x: &mut [f32],
    rows: usize,
    cols: usize,
    max_shift: usize,
    rng: &mut R,
) {
    if max_shift == 0 {
        return;
    }
    let s = max_shift as i64;
    let mut shifted = vec![0.0f32; rows * cols];
    for image in x.chunks_exact_mut(rows * cols) {
        let (dy, dx) = (rng.random_range(-s..=s), rng.random_range(-s..=s));
        shifted.iter_mut().for_each(|p| *p = 0.0);
        for r in 0..rows as i64 {
            let src_r = r - dy;
            if src_r < 0 || src_r >= rows as i64 {
                continue;
            }
            for c in 0..cols as i64 {
                let src_c = c - dx;
                if src_c >= 0 && src_c < cols as i64 {
                    shifted[(r * cols as i64 + c) as usize] =
                        image[(src_r * cols as i64 + src_c) as usize];
                }
            }
        }
        image.copy_from_slice(&shifted);
    }
}

/// Train `mlp` on `data` in place and return the per-epoch history.
pub fn train(mlp: &mut Mlp, data: &Dataset, config: &TrainConfig) -> Result<TrainReport> {
    train_observed(mlp, data, config, &mut |_| {})
}

/// [`train`], calling `on_epoch` with each finished epoch's report (for progress display).
pub fn train_observed(
    mlp: &mut Mlp,
    data: &Dataset,
    config: &TrainConfig,
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<TrainReport> {
    let shape = (mlp.inputs(), mlp.classes());
    let mut states: Vec<(ParamState, ParamState)> = vec![Default::default(); mlp.layers().len()];
    run_epochs(data, config, shape, on_epoch, |x, labels, epoch, b, lr| {
        let noisy;
        let layers = match &config.weight_noise {
            Some(noise) => {
                let path = |l: usize| [NOISE_STREAM, epoch as u64, b as u64, l as u64];
                let mut copy = mlp.layers().to_vec();
                for (l, layer) in copy.iter_mut().enumerate() {
                    noise.perturb(layer.weight_mut(), &mut rng::stream(config.seed, &path(l)));
                }
                noisy = copy;
                &noisy[..]
            }
            None => mlp.layers(),
        };
        let (loss, grads, logits) = backprop(layers, x, labels, labels.len());
        for ((layer, grad), (sw, sb)) in mlp.layers_mut().iter_mut().zip(&grads).zip(&mut states) {
            sw.step(&config.optimizer, lr, layer.weight_mut(), &grad.weight);
            sb.step(&config.optimizer, lr, layer.bias_mut(), &grad.bias);
        }
        Ok((loss, logits))
    })
}

/// The epoch loop of the digital trainers (MLP and sequential networks), after checking
/// `config` and that `data` fits a network of `(inputs, classes)`: every epoch
/// visits the training set in the order of [`epoch_order`] in mini-batches of
/// `config.batch_size`, each translated by [`random_shifts`] (stream `(seed, [shift, epoch,
/// batch])`); `step(x, labels, epoch, batch, lr)` trains on one mini-batch with step size
/// `lr` (decayed after every epoch) and returns its mean loss and logits (taken before the
/// update) for the epoch's report, which `on_epoch` sees.
pub(crate) fn run_epochs(
    data: &Dataset,
    config: &TrainConfig,
    (inputs, classes): (usize, usize),
    on_epoch: &mut dyn FnMut(&EpochReport),
    mut step: impl FnMut(&[f32], &[u8], usize, usize, f32) -> Result<(f64, Vec<f32>)>,
) -> Result<TrainReport> {
    config.validate()?;
    config.check_shift_fits(data)?;
    check_data_fits(inputs, classes, data)?;
    ensure!(!data.is_empty(), "cannot train on an empty data set");
    let mut lr = config.optimizer.learning_rate();
    let mut report = TrainReport::default();
    for epoch in 0..config.epochs {
        let start = Instant::now();
        let order = epoch_order(data.len(), config.seed, epoch);
        let (mut loss_sum, mut correct) = (0.0, 0usize);
        for (b, indices) in order.chunks(config.batch_size).enumerate() {
            let (mut x, labels) = gather(data, indices);
            let mut shift_rng = rng::stream(config.seed, &[SHIFT_STREAM, epoch as u64, b as u64]);
            random_shifts(
                &mut x,
                data.rows,
                data.cols,
                config.max_shift_px,
                &mut shift_rng,
            );
            let (loss, logits) = step(&x, &labels, epoch, b, lr)?;
            correct += argmax_rows(&logits, classes)
                .iter()
                .zip(&labels)
                .filter(|&(&p, &l)| p == usize::from(l))
                .count();
            loss_sum += loss * labels.len() as f64;
        }
        lr *= config.learning_rate_decay;
        let epoch_report = EpochReport {
            epoch,
            loss: loss_sum / data.len() as f64,
            train_accuracy: correct as f64 / data.len() as f64,
            seconds: start.elapsed().as_secs_f64(),
        };
        on_epoch(&epoch_report);
        report.epochs.push(epoch_report);
    }
    Ok(report)
}
