//! The Bayesian-machine study (`studies::bayesian_machine`): the driver reports every case
//! and draws the figures, and configuration errors name the field. The model is tested in
//! `bayes_machine.rs`.

use xbar::studies::bayesian_machine::{MachineConfig, RngSource, plot_machine, run_machine_on};

fn small_sets() -> (xbar::data::Dataset, xbar::data::Dataset) {
    let split = xbar::data::mnist10k().unwrap();
    (split.train.take(3000), split.test.take(300))
}

/// The driver end to end on a small problem: every case reported, the ideal machine
/// approaches exact naive Bayes, MRAM sources cost energy, figures are written.
#[test]
fn driver_reports_every_case_and_draws_the_figures() {
    let (train, test) = small_sets();
    let mut config = MachineConfig {
        pool: 4,
        stream_lengths: vec![8, 64, 1024],
        rng: vec![RngSource::Ideal, RngSource::MramCalibrated],
        ..MachineConfig::default()
    };
    config.storage.truncate(2);
    config.mram.calibration.steps = 4;
    config.mram.calibration.bits_per_step = 32;
    config.mram.energy_bits = 16;
    let report = run_machine_on(&config, &train, &test).unwrap();
    assert_eq!(report.cases.len(), 4);
    let ideal = &report.cases[0];
    assert_eq!(ideal.bit_error_rate, 0.0);
    assert!(ideal.limit_agreement_with_exact > 0.9, "{ideal:?}");
    assert!(ideal.accuracy[2] > ideal.accuracy[0], "{ideal:?}");
    assert!(report.cases[1].rng_energy_per_decision_j[0] > 0.0);
    assert!(ideal.memory_energy_per_decision_j > 0.0);
    let dir = tempfile::tempdir().unwrap();
    plot_machine(&report, dir.path()).unwrap();
    for stem in [
        "machine_accuracy_storage",
        "machine_accuracy_rng",
        "machine_energy",
    ] {
        assert!(dir.path().join(format!("{stem}.png")).exists(), "{stem}");
    }
}

#[test]
fn configuration_errors_name_the_field() {
    let bad: Result<MachineConfig, _> = toml::from_str("stream_length = [8]");
    assert!(bad.unwrap_err().to_string().contains("stream_length"));
    let config: MachineConfig = toml::from_str("stream_lengths = [64, 8]").unwrap();
    assert!(
        config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("stream_lengths")
    );
    // Each storage level and random source has its own stream tag in a range of 100.
    let mut config = MachineConfig::default();
    let level = config.storage[0].clone();
    config.storage = vec![level; 101];
    let err = config.validate().unwrap_err().to_string();
    assert!(
        err.contains("storage") && err.contains("at most 100"),
        "{err}"
    );
    let config: MachineConfig = toml::from_str("rng = [\"mram_calibrated\"]\npool = 3").unwrap();
    let (train, test) = small_sets();
    let err = run_machine_on(&config, &train, &test)
        .unwrap_err()
        .to_string();
    assert!(err.contains("pool"), "{err}");
}
