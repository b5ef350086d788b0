//! Batch normalisation of NCHW activations (Ioffe & Szegedy 2015; PyTorch's
//! `nn.BatchNorm2d`), computed in the digital periphery.
//!
//! In training, every channel is normalised by the mean and (biased) variance of its values
//! over the batch and the image, `x̂ = (x − μ_B) / √(σ²_B + ε)`, then scaled and shifted,
//! `y = γ·x̂ + β`; the running statistics follow each batch with weight `momentum`
//! (the variance entering them unbiased, `σ²_B·n/(n−1)`, as PyTorch does). In inference the
//! running statistics replace the batch's, so the layer is one fixed per-channel affine map
//! `y = a·x + b` with `a = γ/√(σ²_run + ε)`, `b = β − a·μ_run` ([`BatchNorm::folded`]): on a
//! chip that is the digital scale and offset applied to each column after its ADC.

use anyhow::{Result, ensure};

/// One batch-norm layer over `channels` channels.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNorm {
    /// Learned scale γ per channel (PyTorch's `weight`).
    pub gamma: Vec<f32>,
    /// Learned shift β per channel (PyTorch's `bias`).
    pub beta: Vec<f32>,
    /// Running mean per channel (`running_mean`).
    pub running_mean: Vec<f32>,
    /// Running variance per channel (`running_var`).
    pub running_var: Vec<f32>,
    /// ε added to the variance.
    pub eps: f32,
    /// Weight of a new batch in the running statistics.
    pub momentum: f32,
    /// Training batches seen (`num_batches_tracked`).
    pub batches_tracked: u64,
}

/// What the backward pass of a training-mode batch norm needs: the normalised input and
/// `1/√(σ²_B + ε)` per channel.
#[derive(Clone, Debug)]
pub struct Normalized {
    /// `x̂`, NCHW like the input.
    pub x_hat: Vec<f32>,
    /// `1/√(σ²_B + ε)` per channel.
    pub inv_std: Vec<f32>,
}

/// Gradients of a batch norm's parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNormGradient {
    /// `∂L/∂γ`.
    pub gamma: Vec<f32>,
    /// `∂L/∂β`.
    pub beta: Vec<f32>,
}

impl BatchNorm {
    /// A fresh layer as PyTorch initialises it: γ = 1, β = 0, running mean 0 and variance 1.
    pub fn new(channels: usize, eps: f32, momentum: f32) -> Self {
        BatchNorm {
            gamma: vec![1.0; channels],
            beta: vec![0.0; channels],
            running_mean: vec![0.0; channels],
            running_var: vec![1.0; channels],
            eps,
            momentum,
            batches_tracked: 0,
        }
    }

    /// Channels.
    pub fn channels(&self) -> usize {
        self.gamma.len()
    }

    /// The inference-mode map as a per-channel scale `a` and offset `b`, `y = a·x + b`.
    pub fn folded(&self) -> (Vec<f32>, Vec<f32>) {
        (0..self.channels())
            .map(|c| {
                let a = self.gamma[c] / (self.running_var[c] + self.eps).sqrt();
                (a, self.beta[c] - a * self.running_mean[c])
            })
            .unzip()
    }

    /// Inference: `x` (`batch` NCHW images of `pixels` pixels per channel) through the
    /// running statistics.
    pub fn infer(&self, x: &[f32], pixels: usize) -> Vec<f32> {
        let (scale, offset) = self.folded();
        let mut y = x.to_vec();
        for image in y.chunks_mut(self.channels() * pixels) {
            for (c, plane) in image.chunks_mut(pixels).enumerate() {
                plane
                    .iter_mut()
                    .for_each(|v| *v = scale[c] * *v + offset[c]);
            }
        }
        y
    }

    /// Training: normalise `x` by the batch's statistics, update the running statistics,
    /// and return the output with what the backward pass needs. The batch must hold more
    /// than one value per channel (PyTorch refuses the same).
    pub fn train(&mut self, x: &[f32], pixels: usize) -> Result<(Vec<f32>, Normalized)> {
        let channels = self.channels();
        let n = x.len() / channels;
        ensure!(
            n > 1,
            "batch norm needs more than one value per channel in a training batch (got {n}): \
             use batches of at least 2 images"
        );
        let (mean, var) = channel_moments(x, channels, pixels);
        let inv_std: Vec<f32> = var
            .iter()
            .map(|&v| 1.0 / (v + f64::from(self.eps)).sqrt() as f32)
            .collect();
        let mut x_hat = x.to_vec();
        let mut y = x.to_vec();
        for (image, out) in x_hat
            .chunks_mut(channels * pixels)
            .zip(y.chunks_mut(channels * pixels))
        {
            for c in 0..channels {
                let plane = &mut image[c * pixels..(c + 1) * pixels];
                let target = &mut out[c * pixels..(c + 1) * pixels];
                for (h, o) in plane.iter_mut().zip(target) {
                    *h = (*h - mean[c] as f32) * inv_std[c];
                    *o = self.gamma[c] * *h + self.beta[c];
                }
            }
        }
        let unbias = n as f64 / (n - 1) as f64;
        let m = self.momentum;
        for c in 0..channels {
            self.running_mean[c] = (1.0 - m) * self.running_mean[c] + m * mean[c] as f32;
            self.running_var[c] = (1.0 - m) * self.running_var[c] + m * (var[c] * unbias) as f32;
        }
        self.batches_tracked += 1;
        Ok((y, Normalized { x_hat, inv_std }))
    }

    /// Backward pass of a training-mode forward: from `dy` the input gradient
    /// `dx = γ/(n·σ_B) · (n·dy − Σdy − x̂·Σ(dy·x̂))` (sums per channel over the `n` values of
    /// the batch) and the parameter gradients `∂L/∂γ = Σ dy·x̂`, `∂L/∂β = Σ dy`.
    pub fn backward(
        &self,
        saved: &Normalized,
        dy: &[f32],
        pixels: usize,
    ) -> (Vec<f32>, BatchNormGradient) {
        let channels = self.channels();
        let n = (dy.len() / channels) as f64;
        let (mut sum_dy, mut sum_dy_xhat) = (vec![0f64; channels], vec![0f64; channels]);
        for (image, hats) in dy
            .chunks(channels * pixels)
            .zip(saved.x_hat.chunks(channels * pixels))
        {
            for c in 0..channels {
                let range = c * pixels..(c + 1) * pixels;
                for (&d, &h) in image[range.clone()].iter().zip(&hats[range]) {
                    sum_dy[c] += f64::from(d);
                    sum_dy_xhat[c] += f64::from(d) * f64::from(h);
                }
            }
        }
        let mut dx = vec![0f32; dy.len()];
        for ((out, image), hats) in dx
            .chunks_mut(channels * pixels)
            .zip(dy.chunks(channels * pixels))
            .zip(saved.x_hat.chunks(channels * pixels))
        {
            for c in 0..channels {
                let k = f64::from(self.gamma[c]) * f64::from(saved.inv_std[c]) / n;
                let range = c * pixels..(c + 1) * pixels;
                for ((o, &d), &h) in out[range.clone()]
                    .iter_mut()
                    .zip(&image[range.clone()])
                    .zip(&hats[range])
                {
                    let v = n * f64::from(d) - sum_dy[c] - f64::from(h) * sum_dy_xhat[c];
                    *o = (k * v) as f32;
                }
            }
        }
        let grad = BatchNormGradient {
            gamma: sum_dy_xhat.iter().map(|&v| v as f32).collect(),
            beta: sum_dy.iter().map(|&v| v as f32).collect(),
        };
        (dx, grad)
    }
}

/// Mean and biased variance of every channel of NCHW `x` over the batch and the image,
/// accumulated in f64 in a fixed order.
fn channel_moments(x: &[f32], channels: usize, pixels: usize) -> (Vec<f64>, Vec<f64>) {
    let n = (x.len() / channels) as f64;
    let mut mean = vec![0f64; channels];
    for image in x.chunks(channels * pixels) {
        for (c, plane) in image.chunks(pixels).enumerate() {
            mean[c] += plane.iter().map(|&v| f64::from(v)).sum::<f64>();
        }
    }
    mean.iter_mut().for_each(|m| *m /= n);
    let mut var = vec![0f64; channels];
    for image in x.chunks(channels * pixels) {
        for (c, plane) in image.chunks(pixels).enumerate() {
            var[c] += plane
                .iter()
                .map(|&v| (f64::from(v) - mean[c]).powi(2))
                .sum::<f64>();
        }
    }
    var.iter_mut().for_each(|v| *v /= n);
    (mean, var)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Training output has zero mean and unit variance per channel before γ, β; the running
    /// statistics move by `momentum` towards the batch's (unbiased variance); inference
    /// with running statistics equal to a batch's reproduces the training output.
    #[test]
    fn training_normalises_and_inference_uses_running_statistics() {
        let pixels = 4;
        let x: Vec<f32> = (0..2 * 2 * pixels).map(|i| (i * i) as f32 * 0.1).collect();
        let mut bn = BatchNorm::new(2, 1e-5, 0.1);
        bn.gamma = vec![2.0, 0.5];
        bn.beta = vec![1.0, -1.0];
        let (y, saved) = bn.train(&x, pixels).unwrap();
        let (mean, var) = channel_moments(&saved.x_hat, 2, pixels);
        for c in 0..2 {
            assert!(
                mean[c].abs() < 1e-6 && (var[c] - 1.0).abs() < 1e-3,
                "{mean:?} {var:?}"
            );
        }
        let (m, v) = channel_moments(&x, 2, pixels);
        let n = 8.0;
        assert!((f64::from(bn.running_mean[0]) - 0.1 * m[0]).abs() < 1e-5);
        assert!((f64::from(bn.running_var[0]) - (0.9 + 0.1 * v[0] * n / (n - 1.0))).abs() < 1e-4);
        bn.running_mean = m.iter().map(|&v| v as f32).collect();
        bn.running_var = v.iter().map(|&v| v as f32).collect();
        let inferred = bn.infer(&x, pixels);
        for (a, b) in y.iter().zip(&inferred) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
        assert_eq!(bn.batches_tracked, 1);
    }

    /// A single value per channel cannot be normalised: refused with the fix.
    #[test]
    fn a_single_value_per_channel_is_refused() {
        let mut bn = BatchNorm::new(3, 1e-5, 0.1);
        let err = bn.train(&[1.0, 2.0, 3.0], 1).unwrap_err().to_string();
        assert!(err.contains("at least 2 images"), "{err}");
    }
}
