//! Device-sampled synapses: weights stored on differential device pairs and read with the
//! device's noise, one programmed *copy* at a time (the weight samples of a Bayesian
//! network, Dalgaty et al., Nature Electronics 2021; Bonnet et al., Nature Communications
//! 2023).
//!
//! **Mapping.** A weight `w` of a layer with half-range `w_max` is a pair around the centre
//! `g_c` of the device's nominal window: `G+- = g_c +- (g_max - g_min) w / (2 w_max)`
//! (clipped to the window). Each cell of a pair is fabricated and programmed open loop (the
//! model's programming noise, window spread, clipping and faults) and read at `t_read_s`
//! after programming (drift, relaxation); the stored weight is
//! `(G+ - G-) w_max / (g_max - g_min)`, and every read adds the two cells' Gaussian read
//! noise. [`DevicePairs::program`] programs one pair; `noise_scale` multiplies every device
//! deviation (programming error and read noise) to sweep the device noise.
//!
//! **Reading.** A [`SampledSynapses`] layer holds one programmed copy of a weight matrix:
//! the stored weights and, on devices, each pair's read-noise variance. Its forward read
//! `y = x · Wᵀ` draws the read noise per output (column current variance
//! `sum_i x_i^2 var_ij`: exact in distribution for independent Gaussian read noise) from the
//! caller's stream, so a caller that keys one stream per batch gets results independent of
//! the order of batches. A copy is read-only: a new sample is a new copy
//! ([`SampledSynapses::from_pairs`] wraps pairs programmed elsewhere, e.g. the rows of the
//! MCMC sampler of `bayes::mcmc`).

use crate::device::{AnyDevice, Device};
use crate::linalg;
use crate::rng::XbarRng;
use rand::RngExt;
use rand_distr::StandardNormal;

/// Weights stored on differential pairs of one device model.
#[derive(Clone, Debug)]
pub struct DevicePairs {
    /// The device model of every cell.
    pub device: AnyDevice,
    /// Multiplier of every device deviation (programming error and read noise).
    pub noise_scale: f64,
    /// Time between programming and reading, seconds.
    pub t_read_s: f64,
}

/// One programmed pair as a weight: the stored value and its read-noise variance, both in
/// weight units.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PairWeight {
    /// The stored weight `(G+ - G-) w_max / (g_max - g_min)`.
    pub weight: f64,
    /// Variance of one read's noise.
    pub read_var: f64,
}

impl DevicePairs {
    /// Fabricate and program the pair of weight `w` with half-range `w_max` (cells drawn from
    /// `rng`, the plus cell first).
    pub fn program(&self, w: f64, w_max: f64, rng: &mut XbarRng) -> PairWeight {
        let device = &self.device;
        let (g_min, g_max) = device.nominal_window();
        let span = g_max - g_min;
        let g_c = 0.5 * (g_min + g_max);
        let dg = 0.5 * span * (w / w_max).clamp(-1.0, 1.0);
        let mut cell = |target: f64| {
            let mut state = device.fabricate(rng);
            device.program(&mut state, target, rng);
            let g = device.conductance_at(&state, self.t_read_s);
            let sigma = device.read_noise_sigma(&state, self.t_read_s);
            (
                target + self.noise_scale * (g - target),
                self.noise_scale * sigma,
            )
        };
        let (g_plus, s_plus) = cell(g_c + dg);
        let (g_minus, s_minus) = cell(g_c - dg);
        let to_w = w_max / span;
        PairWeight {
            weight: (g_plus - g_minus) * to_w,
            read_var: (s_plus * s_plus + s_minus * s_minus) * to_w * to_w,
        }
    }

    /// Root-mean-square deviation of one read from the intended weight (programming error
    /// and read noise), weight units, measured by programming one pair for each of
    /// `weights` (half-range `w_max`, cells drawn from `rng`).
    pub fn noise_in_weight_units(
        &self,
        weights: impl IntoIterator<Item = f64>,
        w_max: f64,
        rng: &mut XbarRng,
    ) -> f64 {
        let (mut sum, mut count) = (0.0, 0.0);
        for w in weights {
            let pair = self.program(w, w_max, rng);
            sum += (pair.weight - w).powi(2) + pair.read_var;
            count += 1.0;
        }
        (sum / count).sqrt()
    }

    /// Program one copy of a weight matrix (`outputs x inputs`, row-major, half-range
    /// `w_max`): weight `j` is the pair of `target(j, rng)`, the target drawn just before its
    /// pair's cells from the same `rng`.
    pub fn program_layer(
        &self,
        inputs: usize,
        outputs: usize,
        w_max: f64,
        rng: &mut XbarRng,
        mut target: impl FnMut(usize, &mut XbarRng) -> f64,
    ) -> SampledSynapses {
        let n = inputs * outputs;
        let mut weight = Vec::with_capacity(n);
        let mut read_var = Vec::with_capacity(n);
        for j in 0..n {
            let w = target(j, rng);
            let pair = self.program(w, w_max, rng);
            weight.push(pair.weight as f32);
            read_var.push(pair.read_var as f32);
        }
        SampledSynapses {
            inputs,
            outputs,
            weight,
            read_var: Some(read_var),
        }
    }
}

/// One copy of a weight matrix (`outputs x inputs`, row-major): the stored weights and, on
/// devices, each weight's read-noise variance.
#[derive(Clone, Debug, PartialEq)]
pub struct SampledSynapses {
    inputs: usize,
    outputs: usize,
    weight: Vec<f32>,
    read_var: Option<Vec<f32>>,
}

impl SampledSynapses {
    /// An exact digital copy: the weights as given, read without noise.
    pub fn digital(inputs: usize, outputs: usize, weight: Vec<f32>) -> Self {
        assert_eq!(
            weight.len(),
            inputs * outputs,
            "a {outputs} x {inputs} layer needs as many weights"
        );
        Self {
            inputs,
            outputs,
            weight,
            read_var: None,
        }
    }

    /// A copy held by already programmed pairs (`outputs x inputs`, row-major): their stored
    /// weights, read with their read noise.
    pub fn from_pairs(inputs: usize, outputs: usize, pairs: &[PairWeight]) -> Self {
        assert_eq!(
            pairs.len(),
            inputs * outputs,
            "a {outputs} x {inputs} layer needs as many pairs"
        );
        Self {
            inputs,
            outputs,
            weight: pairs.iter().map(|p| p.weight as f32).collect(),
            read_var: Some(pairs.iter().map(|p| p.read_var as f32).collect()),
        }
    }

    /// Length of each input vector.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Length of each output vector.
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// The stored weights, row-major `outputs x inputs`.
    pub fn weight(&self) -> &[f32] {
        &self.weight
    }

    /// Forward read `y = x · Wᵀ` of a batch (`x`: `batch x inputs`; returns
    /// `batch x outputs`), with each output's read noise drawn from `rng` on devices.
    pub fn forward(&self, x: &[f32], batch: usize, rng: &mut XbarRng) -> Vec<f32> {
        let mut z = vec![0.0; batch * self.outputs];
        linalg::sequential::a_bt(x, &self.weight, batch, self.inputs, self.outputs, &mut z);
        if let Some(var) = &self.read_var {
            let x2: Vec<f32> = x.iter().map(|v| v * v).collect();
            let mut v = vec![0.0; batch * self.outputs];
            linalg::sequential::a_bt(&x2, var, batch, self.inputs, self.outputs, &mut v);
            for (zi, vi) in z.iter_mut().zip(&v) {
                *zi += vi.max(0.0).sqrt() * rng.sample::<f32, _>(StandardNormal);
            }
        }
        z
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::ideal::{Ideal, IdealParams};
    use crate::rng::stream;

    fn ideal_pairs() -> DevicePairs {
        DevicePairs {
            device: AnyDevice::Ideal(Ideal::new(IdealParams {
                g_min_s: 1e-6,
                g_max_s: 101e-6,
                levels: 100,
                pulse_amplitude_v: 1.0,
                pulse_width_s: 1e-9,
            })),
            noise_scale: 1.0,
            t_read_s: 0.0,
        }
    }

    #[test]
    fn noise_free_pairs_store_the_weight_clipped_to_the_range() {
        let pairs = ideal_pairs();
        let mut rng = stream(1, &[]);
        for (w, stored) in [
            (0.3, 0.3),
            (-0.45, -0.45),
            (0.0, 0.0),
            (0.7, 0.5),
            (-2.0, -0.5),
        ] {
            let pair = pairs.program(w, 0.5, &mut rng);
            assert!((pair.weight - stored).abs() < 1e-12, "{w}: {pair:?}");
            assert_eq!(pair.read_var, 0.0);
        }
        assert!(pairs.noise_in_weight_units([0.1, -0.2, 0.4], 0.5, &mut rng) < 1e-12);
        let layer = pairs.program_layer(3, 2, 0.5, &mut rng, |j, _| 0.1 * j as f64);
        let mut y = layer.forward(&[1.0, 0.0, 2.0], 1, &mut rng);
        y.iter_mut().for_each(|v| *v = (*v * 1e4).round() / 1e4);
        assert_eq!(y, vec![0.4, 1.3]);
    }

    /// Column `j`'s read is Gaussian around `x · w_j` with variance `sum_i x_i^2 var_ij`.
    #[test]
    fn read_noise_has_the_column_variance() {
        let layer = SampledSynapses {
            inputs: 2,
            outputs: 2,
            weight: vec![1.0, -1.0, 0.5, 0.5],
            read_var: Some(vec![0.04, 0.01, 0.0, 0.09]),
        };
        let x = [2.0, 1.0];
        let (mean, var) = ([1.0, 1.5], [4.0 * 0.04 + 0.01, 0.09]);
        let reads = 20_000;
        let mut rng = stream(2, &[]);
        let (mut sum, mut sum_sq) = ([0.0f64; 2], [0.0f64; 2]);
        for _ in 0..reads {
            let y = layer.forward(&x, 1, &mut rng);
            for j in 0..2 {
                sum[j] += f64::from(y[j]);
                sum_sq[j] += f64::from(y[j]).powi(2);
            }
        }
        for j in 0..2 {
            let m = sum[j] / reads as f64;
            let v = sum_sq[j] / reads as f64 - m * m;
            // Standard errors: sqrt(var / n) for the mean, var sqrt(2 / n) for the variance.
            assert!(
                (m - mean[j]).abs() < 5.0 * (var[j] / reads as f64).sqrt(),
                "{j}: {m}"
            );
            assert!(
                (v / var[j] - 1.0).abs() < 5.0 * (2.0 / reads as f64).sqrt(),
                "{j}: {v}"
            );
        }
        let digital = SampledSynapses::digital(2, 2, layer.weight().to_vec());
        assert_eq!(digital.forward(&x, 1, &mut rng), vec![1.0, 1.5]);
    }
}
