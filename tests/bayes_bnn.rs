//! The Bayesian network model (`bayes::bnn`, library API): the predictive of device-sampled
//! weight copies converges to the exact (digital Monte Carlo) predictive. The study built on
//! it is tested in `study_bayesian_nn.rs`.

use rand::RngExt;
use rand_distr::StandardNormal;
use xbar::bayes::bnn::{DeviceSampler, GaussianLayer, Posterior, Sampler, predictive_mean};
use xbar::rng::stream;
use xbar::synapses::DevicePairs;

const FEATURES: usize = 16;
const HIDDEN: usize = 16;
const CLASSES: usize = 3;
const INPUTS: usize = 40;
/// Posterior standard deviation of every weight: above the device noise of a pair.
const POSTERIOR_SIGMA: f32 = 0.2;

fn layer(inputs: usize, outputs: usize, seed: u64) -> GaussianLayer {
    let mut rng = stream(seed, &[]);
    GaussianLayer {
        inputs,
        outputs,
        mu: (0..inputs * outputs)
            .map(|_| 0.4 * rng.sample::<f32, _>(StandardNormal))
            .collect(),
        sigma: vec![POSTERIOR_SIGMA; inputs * outputs],
        bias: (0..outputs)
            .map(|_| 0.1 * rng.sample::<f32, _>(StandardNormal))
            .collect(),
    }
}

fn rram_without_faults() -> xbar::device::AnyDevice {
    let mut overrides = toml::Table::new();
    for name in ["p_stuck_lrs", "p_stuck_hrs", "d2d_window_sigma"] {
        overrides.insert(name.to_string(), toml::Value::Float(0.0));
    }
    xbar::device::preset::load("rram_hfo2", &overrides).unwrap()
}

/// Pairs of `device` read right after programming, device noise times `noise_scale`.
fn pairs(device: xbar::device::AnyDevice, noise_scale: f64) -> DevicePairs {
    DevicePairs {
        device,
        noise_scale,
        t_read_s: 0.0,
    }
}

fn mean_and_max_abs_difference(a: &[f64], b: &[f64]) -> (f64, f64) {
    let diffs: Vec<f64> = a.iter().zip(b).map(|(x, y)| (x - y).abs()).collect();
    (
        diffs.iter().sum::<f64>() / diffs.len() as f64,
        diffs.iter().copied().fold(0.0, f64::max),
    )
}

/// Each device copy programs `mu + sqrt(sigma^2 - sigma_dev^2) eps` and the pair adds its own
/// programming and read noise of variance sigma_dev^2, so a weight sample is N(mu, sigma^2)
/// as in the digital posterior (variances of independent Gaussians add). The mean softmax
/// over K samples then converges to the same predictive; with device noise far above the
/// posterior spread it must not.
#[test]
fn device_sampled_predictive_matches_digital_monte_carlo() {
    let posterior = Posterior {
        layers: vec![layer(FEATURES, HIDDEN, 1), layer(HIDDEN, CLASSES, 2)],
    };
    let mut rng = stream(3, &[]);
    let x: Vec<f32> = (0..INPUTS * FEATURES)
        .map(|_| rng.random::<f32>())
        .collect();
    let samples = 3000;
    let exact = predictive_mean(&posterior, &Sampler::Digital, &x, INPUTS, samples, 10);
    let device = rram_without_faults();
    let matched = DeviceSampler::new(&posterior, pairs(device.clone(), 1.0), 3.0, 11);
    for &s in &matched.sigma_dev {
        assert!(
            s < 0.5 * f64::from(POSTERIOR_SIGMA),
            "device noise {s} too large for the test"
        );
    }
    assert_eq!(matched.fraction_below_device_noise(&posterior), 0.0);
    let sampled = predictive_mean(
        &posterior,
        &Sampler::Device(Box::new(matched)),
        &x,
        INPUTS,
        samples,
        12,
    );
    let (mean_diff, max_diff) = mean_and_max_abs_difference(&exact, &sampled);
    // Monte Carlo error of a mean of 3000 softmax outputs: sd <= 0.5 / sqrt(3000) = 0.009
    // per estimate, so differences of two estimates stay below ~0.05 (4.5 sd of a difference
    // is 0.058); the mean absolute difference is about 0.8 sd.
    assert!(
        mean_diff < 0.01 && max_diff < 0.05,
        "mean {mean_diff}, max {max_diff}"
    );

    let noisy = DeviceSampler::new(&posterior, pairs(device, 12.0), 3.0, 11);
    assert!(noisy.fraction_below_device_noise(&posterior) > 0.9);
    let too_wide = predictive_mean(
        &posterior,
        &Sampler::Device(Box::new(noisy)),
        &x,
        INPUTS,
        samples,
        12,
    );
    let (bad_mean, _) = mean_and_max_abs_difference(&exact, &too_wide);
    assert!(
        bad_mean > 3.0 * mean_diff,
        "excess device noise should show: {bad_mean} vs {mean_diff}"
    );
}
