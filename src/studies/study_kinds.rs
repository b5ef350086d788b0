//! The study kinds of the registry: experiments whose driver carries its own internal sweep
//! and draws its own figures (the memristor Bayesian machine, the device-sampled Bayesian
//! network, the metaplastic BNN on permuted MNIST, the MRAM random-bit generator). Each is
//! a [`StudyKind`]: its configuration type, its driver and figures (in the study's own
//! module) and the rows of its `results.csv` (here); `crate::experiment::study` runs them
//! and writes the files.

use super::bayesian_machine::{MachineConfig, MachineReport, plot_machine, run_machine};
use super::bayesian_nn::{BnnConfig, BnnReport, plot_bnn, run_bnn};
use super::mcmc_wdbc::{McmcConfig, McmcReport, plot_mcmc, run_mcmc};
use super::metaplastic_pmnist::{
    PmnistSweep, PmnistSweepReport, pmnist_table, run_pmnist_sweep, save_pmnist_sweep,
};
use super::mram_rng::{MramRngConfig, MramRngReport, PopulationStats, plot_mram_rng, run_mram_rng};
use crate::bayes::bnn::UncertaintyMetrics;
use crate::experiment::kinds::{Kind, StudyKind, StudyResults};
use crate::experiment::table::ResultsTable;
use crate::output::results::format_float;
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::Path;

/// The `bayesian_machine` study ([`super::bayesian_machine`]).
pub struct BayesianMachine;

impl Kind for BayesianMachine {
    const NAME: &'static str = "bayesian_machine";
    const DESCRIPTION: &'static str = "memristor Bayesian machine (Harabi et al. 2023): naive Bayes by stochastic computing, accuracy versus bit-stream length and device errors";
    type Config = MachineConfig;
}

impl StudyKind for BayesianMachine {
    type Report = MachineReport;

    fn set_seed(config: &mut MachineConfig, seed: u64) {
        config.seed = seed;
    }

    fn run(config: &MachineConfig) -> Result<MachineReport> {
        run_machine(config)
    }

    /// One row per (memory, random source, stream length).
    fn results(report: &MachineReport) -> Result<StudyResults> {
        let mut rows = Vec::new();
        for case in &report.cases {
            for (i, &length) in report.stream_lengths.iter().enumerate() {
                let energy = case.rng_energy_per_decision_j.get(i).copied();
                rows.push(vec![
                    case.storage.clone(),
                    serde_name(&case.rng)?,
                    length.to_string(),
                    format_float(case.accuracy[i]),
                    format_float(case.bit_error_rate),
                    format_float(case.memory_energy_per_decision_j),
                    format_float(energy.context("an RNG energy per stream length")?),
                    format_float(case.limit_accuracy),
                    format_float(report.exact_accuracy),
                ]);
            }
        }
        study_results(
            &["storage", "rng", "stream_length"],
            &[],
            &[
                "accuracy",
                "bit_error_rate",
                "memory_energy_per_decision_j",
                "rng_energy_per_decision_j",
                "limit_accuracy",
                "exact_accuracy",
            ],
            rows,
        )
    }

    fn figures(report: &MachineReport, dir: &Path) -> Result<()> {
        plot_machine(report, dir)
    }
}

/// The `bayesian_nn` study ([`super::bayesian_nn`]).
pub struct BayesianNn;

impl Kind for BayesianNn {
    const NAME: &'static str = "bayesian_nn";
    const DESCRIPTION: &'static str = "Bayesian neural network whose posterior samples are device reads: accuracy, calibration and out-of-distribution detection versus samples and device noise";
    type Config = BnnConfig;
}

impl StudyKind for BayesianNn {
    type Report = BnnReport;

    fn set_seed(config: &mut BnnConfig, seed: u64) {
        config.seed = seed;
    }

    fn run(config: &BnnConfig) -> Result<BnnReport> {
        run_bnn(config)
    }

    /// One row per evaluated predictive: network (Bayesian or deterministic), weights
    /// (device reads or digital), which sweep it belongs to, samples K, device noise scale
    /// (empty for digital weights) and the predictive metrics.
    fn results(report: &BnnReport) -> Result<StudyResults> {
        let sweeps: [(&str, &str, &str, &[UncertaintyMetrics]); 6] = [
            ("bayesian", "device", "samples", &report.bnn_device_vs_k),
            ("bayesian", "digital", "samples", &report.bnn_digital_vs_k),
            (
                "deterministic",
                "device",
                "samples",
                &report.deterministic_device_vs_k,
            ),
            (
                "deterministic",
                "digital",
                "single",
                std::slice::from_ref(&report.deterministic_digital),
            ),
            ("bayesian", "device", "noise", &report.bnn_device_vs_noise),
            (
                "deterministic",
                "device",
                "noise",
                &report.deterministic_device_vs_noise,
            ),
        ];
        let mut rows = Vec::new();
        for (network, weights, sweep, metrics) in sweeps {
            for m in metrics {
                let noise = if m.noise_scale.is_nan() {
                    String::new()
                } else {
                    format_float(m.noise_scale)
                };
                let mut row = [network, weights, sweep].map(String::from).to_vec();
                row.extend([m.samples.to_string(), noise]);
                row.extend(
                    [
                        m.accuracy,
                        m.ece,
                        m.nll,
                        m.auroc_entropy_digits,
                        m.auroc_mi_digits,
                        m.auroc_entropy_noise,
                        m.auroc_mi_noise,
                    ]
                    .map(format_float),
                );
                rows.push(row);
            }
        }
        study_results(
            &["network", "weights", "sweep", "samples", "noise_scale"],
            &[],
            &[
                "accuracy",
                "ece",
                "nll",
                "auroc_entropy_digits",
                "auroc_mi_digits",
                "auroc_entropy_noise",
                "auroc_mi_noise",
            ],
            rows,
        )
    }

    fn figures(report: &BnnReport, dir: &Path) -> Result<()> {
        plot_bnn(report, dir)
    }
}

/// The `mcmc_wdbc` study ([`super::mcmc_wdbc`]).
pub struct McmcWdbc;

impl Kind for McmcWdbc {
    const NAME: &'static str = "mcmc_wdbc";
    const DESCRIPTION: &'static str = "Metropolis-Hastings in RRAM (Dalgaty et al. 2021): re-programming as the proposal, Bayesian logistic regression on WDBC, versus a software random walk";
    type Config = McmcConfig;
}

impl StudyKind for McmcWdbc {
    type Report = McmcReport;

    fn set_seed(config: &mut McmcConfig, seed: u64) {
        config.seed = seed;
    }

    fn run(config: &McmcConfig) -> Result<McmcReport> {
        run_mcmc(config)
    }

    /// One row per chain (sweep `main`, `compliance` or `cycles`; `x` the swept value), and
    /// one per checkpoint of every main chain (sweep `iterations`, `x` the iteration; the
    /// accuracy is the checkpoint's, the other columns the whole chain's).
    fn results(report: &McmcReport) -> Result<StudyResults> {
        let mut rows = Vec::new();
        let row = |sweep: &str, x: f64, c: &crate::studies::mcmc_wdbc::ChainResult, acc: f64| {
            let e = &c.training.energy;
            let mut r = vec![sweep.to_string(), c.method.to_string(), format_float(x)];
            r.push(c.repeat.to_string());
            r.extend(
                [
                    acc,
                    c.acceptance_rate,
                    e.total_j(),
                    e.programming_j,
                    e.read_j(),
                    c.training.programming_events as f64,
                    c.training.device_reads as f64,
                    e.vectors as f64,
                ]
                .map(format_float),
            );
            r
        };
        for c in &report.chains {
            let sweep = serde_name(&c.sweep)?;
            rows.push(row(&sweep, c.x, c, c.accuracy));
            if sweep == "main" {
                for (k, &a) in report.config.checkpoints.iter().zip(&c.accuracy_at) {
                    rows.push(row("iterations", *k as f64, c, a));
                }
            }
        }
        study_results(
            &["sweep", "method", "x"],
            &["repeat"],
            &[
                "accuracy",
                "acceptance_rate",
                "energy_j",
                "programming_j",
                "read_j",
                "programming_events",
                "device_reads",
                "vectors_read",
            ],
            rows,
        )
    }

    fn figures(report: &McmcReport, dir: &Path) -> Result<()> {
        plot_mcmc(report, dir)
    }
}

/// The `metaplastic_pmnist` study ([`super::metaplastic_pmnist`]).
pub struct MetaplasticPmnist;

impl Kind for MetaplasticPmnist {
    const NAME: &'static str = "metaplastic_pmnist";
    const DESCRIPTION: &'static str = "metaplastic binarized network on permuted MNIST (Laborieux et al. 2021): accuracy on every task after each task, per metaplasticity m, with 2T2R write counts and energy";
    type Config = PmnistSweep;
}

impl StudyKind for MetaplasticPmnist {
    type Report = PmnistSweepReport;

    fn set_seed(config: &mut PmnistSweep, seed: u64) {
        config.seed = seed;
    }

    fn run(config: &PmnistSweep) -> Result<PmnistSweepReport> {
        run_pmnist_sweep(config)
    }

    /// One row per (m, task trained): the accuracy on every task, the mean over the tasks
    /// learned so far, synapse writes and their energy ([`pmnist_table`]).
    fn results(report: &PmnistSweepReport) -> Result<StudyResults> {
        let table = ResultsTable::from_table(&pmnist_table(&report.0)?)?;
        let group = vec!["meta".to_string(), "task_trained".to_string()];
        let metrics = table
            .columns
            .iter()
            .filter(|c| !group.contains(c))
            .cloned()
            .collect();
        Ok(StudyResults {
            table,
            group,
            metrics,
        })
    }

    fn figures(report: &PmnistSweepReport, dir: &Path) -> Result<()> {
        save_pmnist_sweep(report, dir)
    }
}

/// The `mram_rng` study ([`super::mram_rng`]).
pub struct MramRng;

impl Kind for MramRng {
    const NAME: &'static str = "mram_rng";
    const DESCRIPTION: &'static str = "MRAM random-bit generator from stochastic switching: bias versus amplitude, device spread, calibration, read disturb, energy per bit";
    type Config = MramRngConfig;
}

impl StudyKind for MramRng {
    type Report = MramRngReport;

    fn set_seed(config: &mut MramRngConfig, seed: u64) {
        config.seed = seed;
    }

    fn run(config: &MramRngConfig) -> Result<MramRngReport> {
        run_mram_rng(config)
    }

    /// One row per junction and population (all at the nominal amplitude, or each at its
    /// calibrated one): its SET amplitude, the model's and the measured probability of a 1;
    /// the summary gives the spread across junctions. The amplitude and read-disturb
    /// sweeps are in `report.json`.
    fn results(report: &MramRngReport) -> Result<StudyResults> {
        let mut rows = Vec::new();
        let populations: [(&str, &PopulationStats); 2] = [
            ("uncalibrated", &report.uncalibrated),
            ("calibrated", &report.calibrated),
        ];
        for (name, p) in populations {
            for (j, ((&amplitude, &model), &measured)) in p
                .amplitude_v
                .iter()
                .zip(&p.model_p)
                .zip(&p.measured_p)
                .enumerate()
            {
                rows.push(vec![
                    name.to_string(),
                    j.to_string(),
                    format_float(amplitude),
                    format_float(model),
                    format_float(measured),
                ]);
            }
        }
        study_results(
            &["population"],
            &["junction"],
            &["amplitude_v", "model_p", "measured_p"],
            rows,
        )
    }

    fn figures(report: &MramRngReport, dir: &Path) -> Result<()> {
        plot_mram_rng(report, dir)
    }
}

/// A study's results from its rows: the `group` columns (summarised together), the
/// `labels` (which row of its group: not summarised), then the `metrics` columns.
fn study_results(
    group: &[&str],
    labels: &[&str],
    metrics: &[&str],
    rows: Vec<Vec<String>>,
) -> Result<StudyResults> {
    let columns: Vec<String> = group
        .iter()
        .chain(labels)
        .chain(metrics)
        .map(|c| c.to_string())
        .collect();
    if let Some(row) = rows.iter().find(|r| r.len() != columns.len()) {
        anyhow::bail!(
            "internal error: a results row has {} cells for the {} columns {}",
            row.len(),
            columns.len(),
            columns.join(", ")
        );
    }
    Ok(StudyResults {
        table: ResultsTable { columns, rows },
        group: group.iter().map(|c| c.to_string()).collect(),
        metrics: metrics.iter().map(|c| c.to_string()).collect(),
    })
}

/// The serde name of a unit enum value (e.g. `mram_calibrated`).
fn serde_name<T: Serialize>(value: &T) -> Result<String> {
    match serde_json::to_value(value)? {
        serde_json::Value::String(s) => Ok(s),
        other => anyhow::bail!("internal error: {other} is not a unit enum value"),
    }
}
