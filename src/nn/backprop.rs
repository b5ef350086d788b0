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
use crate::data::{Dataset, Shape};
use crate::rng;
use anyhow::{Context, Result, ensure};
use rand::RngExt;
use serde::{Deserialize, Serialize};
use std::time::Instant;

use crate::rng::{
    BACKPROP_NOISE_STREAM as NOISE_STREAM, BACKPROP_SHIFT_STREAM as SHIFT_STREAM,
    BACKPROP_SHUFFLE_STREAM as SHUFFLE_STREAM, TRAIN_FLIP_STREAM as FLIP_STREAM,
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
    /// Factor applied to the step size after every epoch, in `(0, 1]` (1 = constant), for
    /// the exponential schedule.
    pub learning_rate_decay: f32,
    /// How the step size changes from epoch to epoch.
    pub schedule: Schedule,
    /// L2 weight decay λ added to every parameter's gradient (`g + λ·θ`, PyTorch's
    /// `weight_decay` of SGD and Adam), ≥ 0; 0 disables it.
    pub weight_decay: f32,
    /// Weight noise injected in the forward and backward passes, redrawn every mini-batch
    /// (hardware-aware training); `None` trains on the exact weights.
    pub weight_noise: Option<WeightNoise>,
    /// Data augmentation: every training image is translated by a random whole number of
    /// pixels in `[-max_shift_px, max_shift_px]` along each axis (vacated pixels are 0;
    /// all channels of an image move together) each time it is used; 0 disables it.
    pub max_shift_px: usize,
    /// Data augmentation: every training image is mirrored left-right with probability
    /// 1/2 each time it is used (before the shift; all channels together), as the random
    /// horizontal flip of CIFAR training; false disables it.
    pub flip: bool,
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
            schedule: Schedule::Exponential,
            weight_decay: 0.0,
            weight_noise: None,
            max_shift_px: 0,
            flip: false,
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
        self.schedule
            .validate(self.learning_rate_decay)
            .context("training")?;
        let wd = self.weight_decay;
        ensure!(
            wd.is_finite() && wd >= 0.0,
            "training weight_decay = {wd} must be a finite number >= 0 (e.g. 5e-4)"
        );
        if let Some(noise) = &self.weight_noise {
            noise.validate()?;
        }
        Ok(())
    }

    /// The step size of every epoch under the schedule, from the optimiser's.
    fn learning_rates(&self) -> Vec<f32> {
        let lr0 = self.optimizer.learning_rate();
        (0..self.epochs)
            .map(|e| {
                self.schedule
                    .learning_rate(lr0, self.learning_rate_decay, e, self.epochs)
            })
            .collect()
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

/// How the step size changes over training (epoch `e` of `E`, initial step size η₀).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Schedule {
    /// `η₀·d^e` with `d = learning_rate_decay` (constant for d = 1).
    #[default]
    Exponential,
    /// `η₀·(1 + cos(π·e/E))/2`: PyTorch's `CosineAnnealingLR` with `T_max = E`, stepped
    /// once per epoch.
    Cosine,
    /// `η₀·factor^⌊e/every_epochs⌋`: PyTorch's `StepLR`.
    Step {
        /// Epochs between reductions, ≥ 1.
        every_epochs: usize,
        /// Factor of each reduction, in `(0, 1]`.
        factor: f32,
    },
}

impl Schedule {
    /// The step size of epoch `epoch` of `epochs` from the initial `lr0`; `decay` is the
    /// exponential schedule's factor per epoch (the product is accumulated epoch by epoch,
    /// so that every schedule gives `lr0` itself at epoch 0).
    pub fn learning_rate(&self, lr0: f32, decay: f32, epoch: usize, epochs: usize) -> f32 {
        match *self {
            Schedule::Exponential => (0..epoch).fold(lr0, |lr, _| lr * decay),
            Schedule::Cosine => {
                let phase = std::f64::consts::PI * epoch as f64 / epochs as f64;
                (f64::from(lr0) * 0.5 * (1.0 + phase.cos())) as f32
            }
            Schedule::Step {
                every_epochs,
                factor,
            } => lr0 * factor.powi((epoch / every_epochs) as i32),
        }
    }

    /// Check the schedule's fields and the exponential decay factor `decay` (1 for the
    /// other schedules), naming the offending one.
    pub fn validate(&self, decay: f32) -> Result<()> {
        ensure!(
            decay > 0.0 && decay <= 1.0,
            "learning_rate_decay = {decay} must lie in (0, 1] (1 keeps the rate constant)"
        );
        ensure!(
            decay == 1.0 || *self == Schedule::Exponential,
            "learning_rate_decay = {decay} applies to the exponential schedule only: remove \
             it or set schedule = \"exponential\""
        );
        if let Schedule::Step {
            every_epochs,
            factor,
        } = *self
        {
            ensure!(
                every_epochs >= 1,
                "schedule step.every_epochs = 0: reduce the step size every 1 or more \
                 epochs"
            );
            ensure!(
                factor > 0.0 && factor <= 1.0,
                "schedule step.factor = {factor} must lie in (0, 1] (e.g. 0.1)"
            );
        }
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

/// Augment the training mini-batch `x` (images of `shape`) in place: each image is
/// mirrored left-right with probability 1/2 if `config.flip` (draws from the stream
/// `(config.seed, [flip tag, epoch, batch])`), then translated by a random offset of up to
/// `config.max_shift_px` pixels per axis (draws from `(config.seed, [shift_tag, epoch,
/// batch])`); every channel of an image moves with it.
pub(crate) fn augment(
    x: &mut [f32],
    shape: Shape,
    config: &TrainConfig,
    shift_tag: u64,
    (epoch, batch): (usize, usize),
) {
    if config.max_shift_px == 0 && !config.flip {
        return;
    }
    let stream = |tag: u64| rng::stream(config.seed, &[tag, epoch as u64, batch as u64]);
    let (mut shifts, mut flips) = (stream(shift_tag), stream(FLIP_STREAM));
    let s = config.max_shift_px as i64;
    let [channels, rows, cols] = shape;
    let mut moved = vec![0.0f32; rows * cols];
    for image in x.chunks_exact_mut(channels * rows * cols) {
        let offset = if s > 0 {
            (shifts.random_range(-s..=s), shifts.random_range(-s..=s))
        } else {
            (0, 0)
        };
        let flip = config.flip && flips.random_bool(FLIP_PROBABILITY);
        for plane in image.chunks_exact_mut(rows * cols) {
            move_plane(plane, &mut moved, (rows, cols), offset, flip);
        }
    }
}

/// Probability that [`augment`] mirrors an image.
const FLIP_PROBABILITY: f64 = 0.5;

/// Replace the `rows x cols` `plane` by its mirror image (if `flip`) translated by
/// `(dy, dx)` pixels, vacated pixels 0; `scratch` holds `rows * cols` values.
fn move_plane(
    plane: &mut [f32],
    scratch: &mut [f32],
    (rows, cols): (usize, usize),
    (dy, dx): (i64, i64),
    flip: bool,
) {
    let (rows, cols) = (rows as i64, cols as i64);
    scratch.iter_mut().for_each(|p| *p = 0.0);
    for r in 0..rows {
        let src_r = r - dy;
        if src_r < 0 || src_r >= rows {
            continue;
        }
        for c in 0..cols {
            let shifted_c = c - dx;
            if shifted_c >= 0 && shifted_c < cols {
                let src_c = if flip {
                    cols - 1 - shifted_c
                } else {
                    shifted_c
                };
                scratch[(r * cols + c) as usize] = plane[(src_r * cols + src_c) as usize];
            }
        }
    }
    plane.copy_from_slice(scratch);
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
        let (opt, wd) = (&config.optimizer, config.weight_decay);
        for ((layer, grad), (sw, sb)) in mlp.layers_mut().iter_mut().zip(&grads).zip(&mut states) {
            sw.step_decayed(opt, lr, wd, layer.weight_mut(), &grad.weight);
            sb.step_decayed(opt, lr, wd, layer.bias_mut(), &grad.bias);
        }
        Ok((loss, logits))
    })
}

/// The epoch loop of the digital trainers (MLP and sequential networks), after checking
/// `config` and that `data` fits a network of `(inputs, classes)`: every epoch
/// visits the training set in the order of [`epoch_order`] in mini-batches of
/// `config.batch_size`, each augmented by [`augment`] (shifts from the stream `(seed,
/// [shift, epoch, batch])`, flips); `step(x, labels, epoch, batch, lr)` trains on one
/// mini-batch with the epoch's step size `lr` (from the schedule) and returns its mean loss
/// and logits (taken before the update) for the epoch's report, which `on_epoch` sees.
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
    let mut report = TrainReport::default();
    for (epoch, lr) in config.learning_rates().into_iter().enumerate() {
        let start = Instant::now();
        let order = epoch_order(data.len(), config.seed, epoch);
        let (mut loss_sum, mut correct) = (0.0, 0usize);
        for (b, indices) in order.chunks(config.batch_size).enumerate() {
            let (mut x, labels) = gather(data, indices);
            augment(&mut x, data.shape(), config, SHIFT_STREAM, (epoch, b));
            let (loss, logits) = step(&x, &labels, epoch, b, lr)?;
            correct += argmax_rows(&logits, classes)
                .iter()
                .zip(&labels)
                .filter(|&(&p, &l)| p == usize::from(l))
                .count();
            loss_sum += loss * labels.len() as f64;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Batches of `n` images of 3 channels of `side x side` pixels: channel `c` of an image is
    /// `c + 1` times its channel 0, whose pixels are distinct and positive.
    fn batch(n: usize, side: usize) -> Vec<f32> {
        (0..n)
            .flat_map(|k| {
                (0..3).flat_map(move |c| {
                    (0..side * side).map(move |i| (c + 1) as f32 * (1 + i + k * 1000) as f32)
                })
            })
            .collect()
    }

    #[test]
    fn every_channel_of_an_image_is_shifted_and_flipped_alike() {
        let (n, side) = (64, 5);
        let mut x = batch(n, side);
        let config = TrainConfig {
            max_shift_px: 2,
            flip: true,
            ..TrainConfig::default()
        };
        augment(&mut x, [3, side, side], &config, SHIFT_STREAM, (0, 0));
        let plane = side * side;
        let mut moved = 0;
        for image in x.chunks_exact(3 * plane) {
            for c in 1..3 {
                for i in 0..plane {
                    assert_eq!(image[c * plane + i], (c + 1) as f32 * image[i]);
                }
            }
            moved += usize::from(image[..plane] != batch(1, side)[..plane]);
        }
        assert!(moved > n / 2, "only {moved} of {n} images moved");
    }

    #[test]
    fn flips_mirror_rows_for_about_half_the_images() {
        let (n, side) = (400, 4);
        let original = batch(n, side);
        let mut x = original.clone();
        let config = TrainConfig {
            flip: true,
            ..TrainConfig::default()
        };
        augment(&mut x, [3, side, side], &config, SHIFT_STREAM, (1, 2));
        let mirror = |img: &[f32]| -> Vec<f32> {
            img.chunks_exact(side)
                .flat_map(|row| row.iter().rev().copied())
                .collect()
        };
        let mut flipped = 0;
        for (after, before) in x
            .chunks_exact(3 * side * side)
            .zip(original.chunks_exact(3 * side * side))
        {
            if after == before {
                continue;
            }
            assert_eq!(after, mirror(before).as_slice());
            flipped += 1;
        }
        // Binomial(400, 1/2): mean 200, standard deviation 10.
        assert!((150..=250).contains(&flipped), "{flipped} of {n} flipped");
        // Without flips and shifts nothing changes.
        let mut y = original.clone();
        augment(
            &mut y,
            [3, side, side],
            &TrainConfig::default(),
            SHIFT_STREAM,
            (1, 2),
        );
        assert_eq!(y, original);
    }

    /// The schedules give PyTorch's step sizes: `StepLR(step_size=2, gamma=0.1)` and
    /// `CosineAnnealingLR(T_max=4)` stepped once per epoch from η₀ = 0.1, and the
    /// exponential schedule η₀·dᵉ.
    #[test]
    fn schedules_give_pytorchs_step_sizes() {
        let rates = |schedule, learning_rate_decay| {
            TrainConfig {
                epochs: 4,
                optimizer: Optimizer::Sgd {
                    learning_rate: 0.1,
                    momentum: 0.9,
                },
                schedule,
                learning_rate_decay,
                ..TrainConfig::default()
            }
            .learning_rates()
        };
        let close = |got: Vec<f32>, want: [f32; 4]| {
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() < 1e-7, "{got:?} vs {want:?}");
            }
        };
        let step = Schedule::Step {
            every_epochs: 2,
            factor: 0.1,
        };
        close(rates(step, 1.0), [0.1, 0.1, 0.01, 0.01]);
        // η₀·(1 + cos(π·e/4))/2 for e = 0..4.
        close(
            rates(Schedule::Cosine, 1.0),
            [0.1, 0.085_355_34, 0.05, 0.014_644_66],
        );
        close(
            rates(Schedule::Exponential, 0.5),
            [0.1, 0.05, 0.025, 0.0125],
        );
        let both = TrainConfig {
            schedule: Schedule::Cosine,
            learning_rate_decay: 0.5,
            ..TrainConfig::default()
        };
        let e = format!("{:#}", both.validate().unwrap_err());
        assert!(
            e.contains("learning_rate_decay") && e.contains("exponential"),
            "{e}"
        );
    }
}
