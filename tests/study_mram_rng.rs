//! The MRAM random-bit study (`studies::mram_rng`): calibration removes the device-to-device
//! bias, the figures are drawn, and configuration errors name the field. The generator is
//! tested in `bayes_mram_rng.rs`.

use xbar::studies::mram_rng::{MramRngConfig, plot_mram_rng, run_mram_rng};

/// Half-width of the acceptance band in standard errors (two-sided p ~ 7e-6 per check).
const Z: f64 = 4.5;

/// Device-to-device spread of Ic0 (5 % lognormal) moves each junction's 50 % point; a shared
/// amplitude gives a broad spread of biases, and the per-junction calibration loop brings
/// every junction close to 1/2 (limited by the bits per bisection step and the DAC step).
#[test]
fn calibration_removes_the_device_to_device_bias() {
    let config = MramRngConfig {
        devices: 24,
        bits_per_device: 4096,
        amplitude_factors: vec![0.95, 1.0, 1.05],
        read_voltages_v: vec![0.1, 0.6],
        ..MramRngConfig::default()
    };
    let report = run_mram_rng(&config).unwrap();
    assert!(
        report.uncalibrated.measured_p_std > 0.1,
        "{:?}",
        report.uncalibrated
    );
    assert!(
        report.calibrated.measured_p_std < 0.03,
        "{:?}",
        report.calibrated
    );
    for (p, model) in report
        .calibrated
        .measured_p
        .iter()
        .zip(&report.calibrated.model_p)
    {
        let se = (model * (1.0 - model) / 4096.0).sqrt();
        assert!(
            (p - model).abs() < Z * se,
            "junction measured {p} vs model {model}"
        );
        assert!((model - 0.5).abs() < 0.1, "calibrated model bias {model}");
    }
    assert!(report.calibrated.bits_per_s > 1e6 && report.calibrated.energy_per_bit_j > 0.0);
    let dir = tempfile::tempdir().unwrap();
    plot_mram_rng(&report, dir.path()).unwrap();
    for stem in [
        "rng_bias_vs_amplitude",
        "rng_device_spread",
        "rng_read_disturb",
    ] {
        assert!(dir.path().join(format!("{stem}.png")).exists());
        assert!(dir.path().join(format!("{stem}.svg")).exists());
    }
}

#[test]
fn configuration_errors_name_the_field() {
    let bad: Result<MramRngConfig, _> = toml::from_str("devicez = 3");
    assert!(bad.unwrap_err().to_string().contains("devicez"));
    let config: MramRngConfig = toml::from_str("[calibration]\nsearch_span = 2.0").unwrap();
    let err = run_mram_rng(&config).unwrap_err().to_string();
    assert!(err.contains("calibration.search_span"), "{err}");
    let config: MramRngConfig = toml::from_str("device = \"pcm_gst\"").unwrap();
    let err = format!("{:#}", run_mram_rng(&config).unwrap_err());
    assert!(err.contains("MTJ"), "{err}");
}
