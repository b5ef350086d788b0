//! The device-sampled Bayesian network study (`studies::bayesian_nn`): the driver measures
//! accuracy, calibration and out-of-distribution detection and draws the figures, and its
//! configuration errors name the field. The model is tested in `bayes_bnn.rs`.

use xbar::bayes::bnn::MlpTraining;
use xbar::studies::bayesian_nn::{BnnConfig, plot_bnn, run_bnn_on};

/// End to end on a small problem: Bayes by backprop learns digits 0-4, predictive
/// uncertainty separates uniform-noise images from digits, every sweep point is reported,
/// and the figures are written.
#[test]
fn driver_measures_accuracy_calibration_and_ood_detection() {
    let split = xbar::data::mnist10k().unwrap();
    let config = BnnConfig {
        training: MlpTraining {
            hidden: 32,
            epochs: 4,
            ..MlpTraining::default()
        },
        noise_images: 200,
        samples: vec![1, 4],
        noise_scales: vec![0.0, 2.0],
        noise_sweep_samples: 2,
        ..BnnConfig::default()
    };
    let report = run_bnn_on(&config, &split.train.take(2000), &split.test.take(400)).unwrap();
    assert_eq!(report.bnn_device_vs_k.len(), 2);
    assert_eq!(report.bnn_device_vs_noise.len(), 2);
    let bnn = &report.bnn_device_vs_k[1];
    assert!(bnn.accuracy > 0.9, "{bnn:?}");
    assert!(
        report.deterministic_digital.accuracy > 0.9,
        "{:?}",
        report.deterministic_digital
    );
    assert!(
        bnn.auroc_entropy_noise > 0.8 && bnn.auroc_mi_noise > 0.8,
        "{bnn:?}"
    );
    assert!((0.0..=1.0).contains(&bnn.ece));
    // One sample has no epistemic term: mutual information is 0 for every image.
    assert_eq!(report.bnn_device_vs_k[0].auroc_mi_digits, 0.5);
    let dir = tempfile::tempdir().unwrap();
    plot_bnn(&report, dir.path()).unwrap();
    for stem in [
        "bnn_vs_samples",
        "bnn_vs_noise",
        "bnn_reliability",
        "bnn_uncertainty",
    ] {
        assert!(dir.path().join(format!("{stem}.png")).exists(), "{stem}");
        assert!(dir.path().join(format!("{stem}.svg")).exists(), "{stem}");
    }
}

#[test]
fn configuration_errors_name_the_field() {
    let bad: Result<BnnConfig, _> = toml::from_str("hiden = 3");
    assert!(bad.unwrap_err().to_string().contains("hiden"));
    let bad: Result<BnnConfig, _> = toml::from_str("[training]\nhiden = 3");
    assert!(bad.unwrap_err().to_string().contains("hiden"));
    let config: BnnConfig = toml::from_str("[training]\nepochs = 0").unwrap();
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("training.epochs"), "{err}");
    // The training table holds the training fields; the study section does not repeat them.
    let bad: Result<BnnConfig, _> = toml::from_str("epochs = 3");
    assert!(bad.unwrap_err().to_string().contains("epochs"));
    let config: BnnConfig = toml::from_str("samples = [4, 2]").unwrap();
    assert!(
        config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("samples")
    );
    let config: BnnConfig = toml::from_str("in_distribution_classes = 10").unwrap();
    assert!(
        config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("in_distribution_classes")
    );
}
