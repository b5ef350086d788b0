//! The device-sampled Bayesian network study (Dalgaty et al., Nature Electronics 2021; Bonnet
//! et al., Nature Communications 2023; the model is [`crate::bayes::bnn`]): Bayes by backprop
//! on MNIST-10k digits, posterior samples drawn by programming and reading a device preset,
//! accuracy, calibration and out-of-distribution detection versus the number of samples and
//! the device noise, against a deterministic network on the same devices.
//!
//! The configuration names the preset; the driver [`run_bnn`] loads it and the data, trains
//! both networks, runs the sweeps and returns a report with every number, and [`plot_bnn`]
//! draws the figures.

use super::mram_rng::unit_histogram;
use super::validate::{require, require_positive};
use crate::bayes::bnn::{
    DeviceSampler, EvalSet, MlpTraining, Posterior, PredictiveDetail, Sampler, UncertaintyMetrics,
    train_mlp,
};
use crate::data::{Dataset, mnist10k};
use crate::device::preset;
use crate::output::plot::{Figure, Series, Style, save};
use crate::rng;
use crate::synapses::DevicePairs;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Bins of the entropy histograms.
const ENTROPY_BINS: usize = 30;

/// The Bayesian-network experiment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BnnConfig {
    /// Master seed of every random stream.
    pub seed: u64,
    /// Digits `0..in_distribution_classes` are in distribution.
    pub in_distribution_classes: u8,
    /// Training images read from the training set (only in-distribution digits are used).
    pub train_images: usize,
    /// Test images read from the test set (split into in- and out-of-distribution).
    pub test_images: usize,
    /// Uniform-noise out-of-distribution images.
    pub noise_images: usize,
    /// Training of both networks (the `[bayesian_nn.training]` table).
    pub training: MlpTraining,
    /// Device preset name or file.
    pub device: String,
    /// Preset parameter overrides.
    pub overrides: toml::Table,
    /// Half-range of a layer's weights in posterior standard deviations beyond max |mu|.
    pub weight_range_sigmas: f64,
    /// Time between programming and reading, seconds (drift, relaxation).
    pub t_read_s: f64,
    /// Posterior samples K (device copies), increasing.
    pub samples: Vec<usize>,
    /// Multipliers of the device noise for the noise sweep.
    pub noise_scales: Vec<f64>,
    /// Samples K of the noise sweep.
    pub noise_sweep_samples: usize,
    /// Bins of the expected calibration error.
    pub ece_bins: usize,
}

impl Default for BnnConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            in_distribution_classes: 5,
            train_images: 8000,
            test_images: 2000,
            noise_images: 1000,
            training: MlpTraining::default(),
            device: "rram_hfo2".to_string(),
            overrides: toml::Table::new(),
            weight_range_sigmas: 3.0,
            t_read_s: 0.0,
            samples: vec![1, 2, 4, 8, 16, 32],
            noise_scales: vec![0.0, 0.5, 1.0, 2.0, 4.0],
            noise_sweep_samples: 16,
            ece_bins: 15,
        }
    }
}

impl BnnConfig {
    /// Check every field.
    pub fn validate(&self) -> Result<()> {
        require(
            (1..10).contains(&self.in_distribution_classes),
            "in_distribution_classes",
            "must be in 1..=9 (digits below it are in distribution)",
        )?;
        for (field, v) in [
            ("train_images", self.train_images),
            ("test_images", self.test_images),
            ("noise_images", self.noise_images),
            ("noise_sweep_samples", self.noise_sweep_samples),
            ("ece_bins", self.ece_bins),
        ] {
            require(v >= 1, field, "must be >= 1")?;
        }
        self.training.validate("training")?;
        require_positive("weight_range_sigmas", self.weight_range_sigmas)?;
        require(
            self.t_read_s.is_finite() && self.t_read_s >= 0.0,
            "t_read_s",
            "must be >= 0",
        )?;
        require(!self.samples.is_empty(), "samples", "must not be empty")?;
        require(
            self.samples[0] >= 1 && self.samples.windows(2).all(|w| w[0] < w[1]),
            "samples",
            "must be >= 1 and strictly increasing",
        )?;
        require(
            !self.noise_scales.is_empty(),
            "noise_scales",
            "must not be empty",
        )?;
        for &s in &self.noise_scales {
            require(s.is_finite() && s >= 0.0, "noise_scales", "must be >= 0")?;
        }
        Ok(())
    }
}

/// Everything the Bayesian-network figures need.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BnnReport {
    /// Number of in-distribution classes.
    pub classes: usize,
    /// Training images (in-distribution digits).
    pub train_images: usize,
    /// In-distribution, out-of-distribution-digit and noise test images.
    pub test_counts: [usize; 3],
    /// Final training cross-entropy of the Bayesian and the deterministic network.
    pub train_loss: [f64; 2],
    /// Mean posterior standard deviation per layer.
    pub mean_posterior_sigma: Vec<f64>,
    /// Per layer: mapping half-range `w_max` (device noise scale 1).
    pub w_max: Vec<f64>,
    /// Per layer: noise of a device pair in weight units (noise scale 1).
    pub device_sigma: Vec<f64>,
    /// Fraction of weights whose posterior deviation is below the device noise (scale 1).
    pub fraction_below_device_noise: f64,
    /// Bayesian network, device samples, versus K (noise scale 1).
    pub bnn_device_vs_k: Vec<UncertaintyMetrics>,
    /// Bayesian network, exact digital Monte Carlo, versus K.
    pub bnn_digital_vs_k: Vec<UncertaintyMetrics>,
    /// Deterministic network on devices, K device copies averaged, versus K.
    pub deterministic_device_vs_k: Vec<UncertaintyMetrics>,
    /// Deterministic network, digital.
    pub deterministic_digital: UncertaintyMetrics,
    /// Bayesian network on devices versus noise scale (K = noise_sweep_samples).
    pub bnn_device_vs_noise: Vec<UncertaintyMetrics>,
    /// Deterministic network on devices versus noise scale (one copy).
    pub deterministic_device_vs_noise: Vec<UncertaintyMetrics>,
    /// Bayesian network on devices at the largest K.
    pub bnn_detail: PredictiveDetail,
    /// Deterministic network on devices (one copy).
    pub deterministic_detail: PredictiveDetail,
}

/// In-distribution training images and labels.
fn in_distribution(data: &Dataset, id_classes: u8) -> (Vec<f32>, Vec<u8>) {
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for n in 0..data.len() {
        if data.labels[n] < id_classes {
            x.extend_from_slice(data.image(n));
            y.push(data.labels[n]);
        }
    }
    (x, y)
}

/// Run the Bayesian-network experiment on MNIST-10k.
pub fn run_bnn(config: &BnnConfig) -> Result<BnnReport> {
    config.validate()?;
    let split = mnist10k()?;
    run_bnn_on(
        config,
        &split.train.take(config.train_images),
        &split.test.take(config.test_images),
    )
}

/// Run the Bayesian-network experiment on the given training and test sets.
pub fn run_bnn_on(config: &BnnConfig, train: &Dataset, test: &Dataset) -> Result<BnnReport> {
    config.validate()?;
    let device = preset::load(&config.device, &config.overrides).context("device")?;
    let id = config.in_distribution_classes;
    let classes = usize::from(id);
    let features = train.features();
    let (x, y) = in_distribution(train, id);
    require(
        !y.is_empty(),
        "train_images",
        "no in-distribution digit among the training images",
    )?;
    let training = &config.training;
    let (bnn, bnn_loss) = train_mlp(&x, &y, features, classes, training, (config.seed, true));
    let (det, det_loss) = train_mlp(&x, &y, features, classes, training, (config.seed, false));
    let eval = EvalSet::build(test, id, config.noise_images, config.seed);
    require(
        eval.n_in > 0 && eval.n_ood > 0,
        "test_images",
        "need in- and out-of-distribution digits",
    )?;
    let device_map = |posterior: &Posterior, noise_scale: f64| {
        let pairs = DevicePairs {
            device: device.clone(),
            noise_scale,
            t_read_s: config.t_read_s,
        };
        DeviceSampler::new(posterior, pairs, config.weight_range_sigmas, config.seed)
    };
    let device_sampler =
        |posterior: &Posterior, scale: f64| Sampler::Device(Box::new(device_map(posterior, scale)));
    let sweep =
        |posterior: &Posterior, sampler: &Sampler, checkpoints: &[usize], id: u64, scale: f64| {
            eval.evaluate(
                posterior,
                sampler,
                checkpoints,
                (config.seed, id),
                scale,
                config.ece_bins,
            )
        };
    let bnn_map = device_map(&bnn, 1.0);
    let bnn_sampler = Sampler::Device(Box::new(bnn_map.clone()));
    let (bnn_device_vs_k, bnn_detail) = sweep(
        &bnn,
        &bnn_sampler,
        &config.samples,
        rng::BNN_DEVICE_VS_K_STREAM,
        1.0,
    );
    let (bnn_digital_vs_k, _) = sweep(
        &bnn,
        &Sampler::Digital,
        &config.samples,
        rng::BNN_DIGITAL_VS_K_STREAM,
        f64::NAN,
    );
    let det_sampler = device_sampler(&det, 1.0);
    let (deterministic_device_vs_k, _) = sweep(
        &det,
        &det_sampler,
        &config.samples,
        rng::BNN_DETERMINISTIC_DEVICE_VS_K_STREAM,
        1.0,
    );
    let (det_digital, _) = sweep(
        &det,
        &Sampler::Digital,
        &[1],
        rng::BNN_DETERMINISTIC_DIGITAL_STREAM,
        f64::NAN,
    );
    let (_, det_one_detail) = sweep(
        &det,
        &det_sampler,
        &[1],
        rng::BNN_DETERMINISTIC_ONE_COPY_STREAM,
        1.0,
    );
    let mut bnn_device_vs_noise = Vec::new();
    let mut deterministic_device_vs_noise = Vec::new();
    for (i, &scale) in config.noise_scales.iter().enumerate() {
        let id = rng::BNN_NOISE_SWEEP_STREAM + 2 * i as u64;
        let (m, _) = sweep(
            &bnn,
            &device_sampler(&bnn, scale),
            &[config.noise_sweep_samples],
            id,
            scale,
        );
        bnn_device_vs_noise.extend(m);
        let (m, _) = sweep(&det, &device_sampler(&det, scale), &[1], id + 1, scale);
        deterministic_device_vs_noise.extend(m);
    }
    let missing = || anyhow::anyhow!("no posterior sample was drawn (samples is empty)");
    Ok(BnnReport {
        classes,
        train_images: y.len(),
        test_counts: [eval.n_in, eval.n_ood, eval.n_noise],
        train_loss: [bnn_loss, det_loss],
        mean_posterior_sigma: bnn
            .layers
            .iter()
            .map(|l| l.sigma.iter().map(|&s| f64::from(s)).sum::<f64>() / l.sigma.len() as f64)
            .collect(),
        w_max: bnn_map.w_max.clone(),
        device_sigma: bnn_map.sigma_dev.clone(),
        fraction_below_device_noise: bnn_map.fraction_below_device_noise(&bnn),
        bnn_device_vs_k,
        bnn_digital_vs_k,
        deterministic_device_vs_k,
        deterministic_digital: det_digital.into_iter().next().ok_or_else(missing)?,
        bnn_device_vs_noise,
        deterministic_device_vs_noise,
        bnn_detail: bnn_detail.ok_or_else(missing)?,
        deterministic_detail: det_one_detail.ok_or_else(missing)?,
    })
}

/// Draw the Bayesian-network figures into `dir`: `bnn_vs_samples` (accuracy, ECE and AUROCs
/// versus K), `bnn_vs_noise` (versus device noise), `bnn_reliability` (reliability
/// diagram) and `bnn_uncertainty` (histograms of predictive entropy).
pub fn plot_bnn(report: &BnnReport, dir: &Path) -> Result<()> {
    let k_series = |label: &str,
                    pts: &[UncertaintyMetrics],
                    f: &dyn Fn(&UncertaintyMetrics) -> f64,
                    color,
                    x_noise: bool| {
        Series::new(
            label,
            pts.iter()
                .map(|m| {
                    (
                        if x_noise {
                            m.noise_scale
                        } else {
                            m.samples as f64
                        },
                        f(m),
                    )
                })
                .collect(),
            Style::LinePoints,
            color,
        )
    };
    let panel = |title: &str, y: &str, f: &dyn Fn(&UncertaintyMetrics) -> f64, x_noise: bool| {
        let x_label = if x_noise {
            "device noise scale (x preset)"
        } else {
            "posterior samples K"
        };
        let mut fig = Figure::new(title, x_label, y);
        fig.log_x = !x_noise;
        if x_noise {
            fig.series = vec![
                k_series("BNN on devices", &report.bnn_device_vs_noise, f, 0, true),
                k_series(
                    "deterministic on devices",
                    &report.deterministic_device_vs_noise,
                    f,
                    1,
                    true,
                ),
            ];
        } else {
            fig.series = vec![
                k_series("BNN on devices", &report.bnn_device_vs_k, f, 0, false),
                k_series("BNN digital MC", &report.bnn_digital_vs_k, f, 2, false),
                k_series(
                    "deterministic on devices",
                    &report.deterministic_device_vs_k,
                    f,
                    1,
                    false,
                ),
            ];
        }
        fig
    };
    for (x_noise, stem) in [(false, "bnn_vs_samples"), (true, "bnn_vs_noise")] {
        let figs = [
            panel("Accuracy, digits 0-4", "accuracy", &|m| m.accuracy, x_noise),
            panel("Expected calibration error", "ECE", &|m| m.ece, x_noise),
            panel(
                "OOD digits 5-9: AUROC",
                "AUROC (entropy)",
                &|m| m.auroc_entropy_digits,
                x_noise,
            ),
            panel(
                "Noise images: AUROC",
                "AUROC (entropy)",
                &|m| m.auroc_entropy_noise,
                x_noise,
            ),
        ];
        crate::output::plot::save_panels(&figs, 2, &dir.join(stem))?;
    }

    let mut rel = Figure::new("Reliability diagram (digits 0-4)", "confidence", "accuracy");
    rel.y_range = Some((0.0, 1.0));
    let bins = |detail: &PredictiveDetail| -> Vec<(f64, f64)> {
        detail
            .reliability
            .iter()
            .filter(|b| b.count > 0)
            .map(|b| (b.confidence, b.accuracy))
            .collect()
    };
    let k_max = report.bnn_device_vs_k.last().map_or(0, |m| m.samples);
    rel.series = vec![
        Series::new(
            "perfect calibration",
            vec![(0.0, 0.0), (1.0, 1.0)],
            Style::Line,
            8,
        ),
        Series::new(
            format!("BNN on devices, K = {k_max}"),
            bins(&report.bnn_detail),
            Style::LinePoints,
            0,
        ),
        Series::new(
            "deterministic on devices",
            bins(&report.deterministic_detail),
            Style::LinePoints,
            1,
        ),
    ];
    save(&rel, &dir.join("bnn_reliability"))?;

    let max_entropy = (report.classes as f64).ln();
    let hist = |values: &[f64]| -> Vec<(f64, f64)> {
        let scaled: Vec<f64> = values.iter().map(|v| v / max_entropy).collect();
        let total = values.len() as f64;
        unit_histogram(&scaled, ENTROPY_BINS)
            .into_iter()
            .map(|(x, c)| (x * max_entropy, c / total))
            .collect()
    };
    let width = max_entropy / ENTROPY_BINS as f64;
    let entropy_fig = |title: &str, d: &PredictiveDetail| {
        let mut fig = Figure::new(title, "predictive entropy (nats)", "fraction of images");
        fig.series = vec![
            Series::new(
                "digits 0-4 (in distribution)",
                hist(&d.entropy_in),
                Style::Bars { bin_width: width },
                0,
            ),
            Series::new(
                "digits 5-9",
                hist(&d.entropy_ood_digits),
                Style::Bars { bin_width: width },
                1,
            ),
            Series::new(
                "uniform noise",
                hist(&d.entropy_noise),
                Style::Bars { bin_width: width },
                2,
            ),
        ];
        fig
    };
    crate::output::plot::save_panels(
        &[
            entropy_fig(&format!("BNN on devices, K = {k_max}"), &report.bnn_detail),
            entropy_fig(
                "Deterministic network on devices",
                &report.deterministic_detail,
            ),
        ],
        2,
        &dir.join("bnn_uncertainty"),
    )
}
