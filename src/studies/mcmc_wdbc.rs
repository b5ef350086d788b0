//! The `mcmc_wdbc` study: Bayesian logistic regression on the WDBC breast-cancer set trained
//! by Metropolis–Hastings in an RRAM array whose re-programming is the proposal
//! (`bayes::mcmc`; Dalgaty et al., Nature Electronics 2021), beside the same model sampled
//! with Gaussian random-walk proposals in software and fitted by gradient descent.
//!
//! Runs, every one repeated `repeats` times with its own streams: the main comparison
//! (device and software chains at the configured operating point: test accuracy at every
//! checkpoint, acceptance rate, energy, programming events, reads); a sweep of the SET
//! compliance current of the operating point (the reference devices and the first sample);
//! a sweep of the endurance cycles every device has spent before training. Figures:
//! accuracy versus iterations, acceptance and accuracy versus compliance current, accuracy
//! versus cycles, and posterior histograms of a few parameters (device versus software).

use super::validate::{require, require_positive};
use crate::bayes::mcmc::{
    ChainRun, ChainSettings, DeviceMapping, DeviceProposal, GaussianWalk, LogisticTarget,
    ReadPeriphery, SampleStore, Tally, accuracy, fit_map, predictive, run,
};
use crate::crossbar::energy::EnergyConfig;
use crate::data::wdbc::{TabularSplit, wdbc};
use crate::device::rram::Rram;
use crate::device::{AnyDevice, preset};
use crate::output::plot::{Figure, Series, Style, save, save_panels};
use crate::rng::{MCMC_CHAIN_STREAM, MCMC_PREDICTIVE_STREAM, stream};
use crate::studies::characterize::histogram;
use anyhow::{Context, Result, bail};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// `[mcmc_wdbc]`: every setting of the study.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McmcConfig {
    /// Master seed of every random stream.
    pub seed: u64,
    /// Device preset name or file (must be an RRAM model).
    pub device: String,
    /// Preset parameter overrides, `name = value`.
    pub overrides: toml::Table,
    /// Data set: only the embedded `wdbc` is tabular.
    pub data: String,
    /// Independent chains (seeds) per point.
    pub repeats: usize,
    /// MCMC iterations per chain.
    pub iterations: u64,
    /// Iterations not stored at the start.
    pub burn_in: u64,
    /// Array rows that hold stored samples.
    pub rows: usize,
    /// Iterations at which the test accuracy of the stored samples is measured.
    pub checkpoints: Vec<u64>,
    /// Read the current sample's likelihood again at every iteration (see
    /// `bayes::mcmc::ChainSettings::reread_current`).
    pub reread_current: bool,
    /// Standard deviation of the Gaussian prior of every weight.
    pub prior_sigma: f64,
    /// Weight units per siemens of pair difference, `k` in `θ = k (G⁺ − G⁻)`, 1/S.
    pub weight_per_siemens: f64,
    /// SET compliance current of the operating point (reference devices, first sample), A.
    pub i_ref_a: f64,
    /// Smallest compliance current the select transistor sets, A.
    pub i_cc_min_a: f64,
    /// Largest compliance current, A.
    pub i_cc_max_a: f64,
    /// Write check of the device proposals: log-spreads from the median beyond which a
    /// device read maps its row out (a stuck cell).
    pub write_check_sigmas: f64,
    /// Step standard deviation of the software random walk, weight units.
    pub software_step: f64,
    /// ADC resolution of the reads, bits (0: ideal).
    pub adc_bits: u32,
    /// ADC full scale, logit units.
    pub adc_full_scale: f64,
    /// Read voltage at full-scale input, V.
    pub v_read_v: f64,
    /// Input value driven at `v_read_v` (standardised feature units).
    pub input_full_scale: f64,
    /// Compliance currents of the operating-point sweep, A.
    pub compliance_sweep_a: Vec<f64>,
    /// Endurance cycles already spent by every device, for the endurance sweep.
    pub cycles_sweep: Vec<f64>,
    /// Parameters whose posterior is drawn as histograms (0-based; 30 is the bias).
    pub histogram_params: Vec<usize>,
    /// Gradient-ascent steps of the MAP reference.
    pub map_steps: usize,
    /// Learning rate of the MAP reference (per sample).
    pub map_learning_rate: f64,
}

impl Default for McmcConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            device: "rram_hfo2".to_string(),
            overrides: toml::Table::new(),
            data: crate::data::wdbc::NAME.to_string(),
            repeats: 5,
            iterations: 4000,
            burn_in: 1000,
            rows: 500,
            checkpoints: vec![1100, 1250, 1500, 2000, 2500, 3000, 4000],
            reread_current: true,
            prior_sigma: 1.0,
            weight_per_siemens: 3000.0,
            i_ref_a: 250e-6,
            i_cc_min_a: 1e-6,
            i_cc_max_a: 500e-6,
            write_check_sigmas: 6.0,
            software_step: 0.05,
            adc_bits: 8,
            adc_full_scale: 16.0,
            v_read_v: 0.2,
            input_full_scale: 4.0,
            compliance_sweep_a: vec![40e-6, 80e-6, 160e-6, 250e-6, 400e-6],
            cycles_sweep: vec![1e3, 1e5, 1e6, 1e7, 1e8],
            histogram_params: vec![7, 21, 30],
            map_steps: 5000,
            map_learning_rate: 1.0,
        }
    }
}

impl McmcConfig {
    /// Check every field; errors name it.
    pub fn validate(&self) -> Result<()> {
        require(
            self.data == crate::data::wdbc::NAME,
            "data",
            &format!(
                "unknown tabular data set {:?}: the embedded \"wdbc\" is the one there is",
                self.data
            ),
        )?;
        require(self.repeats >= 1, "repeats", "must be at least 1")?;
        require(
            self.rows >= 1,
            "rows",
            "must be at least 1 (samples stored)",
        )?;
        self.settings().validate().context("mcmc_wdbc")?;
        for (name, v) in [
            ("prior_sigma", self.prior_sigma),
            ("weight_per_siemens", self.weight_per_siemens),
            ("i_ref_a", self.i_ref_a),
            ("i_cc_min_a", self.i_cc_min_a),
            ("i_cc_max_a", self.i_cc_max_a),
            ("software_step", self.software_step),
            ("write_check_sigmas", self.write_check_sigmas),
            ("map_learning_rate", self.map_learning_rate),
        ] {
            require_positive(name, v)?;
        }
        for &i in &self.compliance_sweep_a {
            require_positive("compliance_sweep_a", i)?;
        }
        for &n in &self.cycles_sweep {
            require(
                n >= 0.0 && n.is_finite(),
                "cycles_sweep",
                "cycles must be >= 0",
            )?;
        }
        for &c in &self.checkpoints {
            require(
                c > self.burn_in && c <= self.iterations,
                "checkpoints",
                &format!("{c} must be after burn_in and at most iterations"),
            )?;
        }
        for &j in &self.histogram_params {
            require(j <= 30, "histogram_params", "WDBC has parameters 0 to 30")?;
        }
        self.periphery().validate().context("mcmc_wdbc")
    }

    fn settings(&self) -> ChainSettings {
        ChainSettings {
            iterations: self.iterations,
            burn_in: self.burn_in,
            rows: self.rows,
            checkpoints: self.checkpoints.clone(),
            reread_current: self.reread_current,
        }
    }

    fn periphery(&self) -> ReadPeriphery {
        ReadPeriphery {
            adc_bits: (self.adc_bits > 0).then_some(self.adc_bits),
            adc_full_scale: self.adc_full_scale,
            v_read_v: self.v_read_v,
            input_full_scale: self.input_full_scale,
            energy: EnergyConfig::default(),
        }
    }

    fn rram(&self) -> Result<Rram> {
        match preset::load(&self.device, &self.overrides).context("mcmc_wdbc.device")? {
            AnyDevice::Rram(r) => Ok(r),
            _ => bail!(
                "mcmc_wdbc.device = {:?} is not an RRAM preset: the proposals are RRAM \
                 re-programmings (e.g. \"rram_hfo2\")",
                self.device
            ),
        }
    }
}

/// Which run a chain belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sweep {
    /// The main comparison at the operating point.
    Main,
    /// The compliance-current sweep (`x` = the operating point's current, A).
    Compliance,
    /// The endurance sweep (`x` = cycles spent).
    Cycles,
}

/// One chain's results.
#[derive(Clone, Debug, Serialize)]
pub struct ChainResult {
    /// The run.
    pub sweep: Sweep,
    /// `device` or `software`.
    pub method: &'static str,
    /// The swept value (compliance current, A; cycles; 0 for the main run).
    pub x: f64,
    /// Repeat index.
    pub repeat: usize,
    /// Test accuracy of the posterior predictive over the stored samples at the end.
    pub accuracy: f64,
    /// Fraction of candidates accepted.
    pub acceptance_rate: f64,
    /// Test accuracy at each checkpoint.
    pub accuracy_at: Vec<f64>,
    /// Training cost (programming, device reads, likelihood reads); zero in software.
    pub training: Tally,
    /// Weighted samples `(value, weight)` of the histogram parameters (repeat 0 of the
    /// main run only).
    pub posterior: Vec<Vec<(f64, u64)>>,
}

/// Every number of the study.
#[derive(Clone, Debug, Serialize)]
pub struct McmcReport {
    /// The configuration run.
    pub config: McmcConfig,
    /// Test accuracy of the MAP weights fitted by gradient ascent.
    pub map_accuracy: f64,
    /// Every chain.
    pub chains: Vec<ChainResult>,
}

/// One chain to run.
#[derive(Clone, Copy, Debug)]
struct Job {
    sweep: Sweep,
    device: bool,
    x: f64,
    repeat: usize,
    i_ref_a: f64,
    cycles: u64,
}

/// Run the study.
pub fn run_mcmc(config: &McmcConfig) -> Result<McmcReport> {
    config.validate()?;
    let rram = config.rram()?;
    let data = wdbc()?;
    let map = fit_map(
        &data.train,
        config.prior_sigma,
        config.map_steps,
        config.map_learning_rate,
    );
    let x = crate::bayes::mcmc::with_bias(&data.test);
    let p: Vec<f64> = x
        .chunks(map.len())
        .map(|row| {
            let z: f64 = row.iter().zip(&map).map(|(&a, b)| f64::from(a) * b).sum();
            1.0 / (1.0 + (-z).exp())
        })
        .collect();
    let map_accuracy = accuracy(&p, &data.test.labels);
    let chains = jobs(config)
        .par_iter()
        .enumerate()
        .map(|(k, job)| run_job(config, &rram, &data, job, k as u64))
        .collect::<Result<Vec<_>>>()?;
    Ok(McmcReport {
        config: config.clone(),
        map_accuracy,
        chains,
    })
}

fn jobs(config: &McmcConfig) -> Vec<Job> {
    let mut jobs = Vec::new();
    for repeat in 0..config.repeats {
        let base = Job {
            sweep: Sweep::Main,
            device: true,
            x: 0.0,
            repeat,
            i_ref_a: config.i_ref_a,
            cycles: 0,
        };
        jobs.push(base);
        jobs.push(Job {
            device: false,
            ..base
        });
        for &i in &config.compliance_sweep_a {
            jobs.push(Job {
                sweep: Sweep::Compliance,
                x: i,
                i_ref_a: i,
                ..base
            });
        }
        for &n in &config.cycles_sweep {
            jobs.push(Job {
                sweep: Sweep::Cycles,
                x: n,
                cycles: n as u64,
                ..base
            });
        }
    }
    jobs
}

/// Run one chain from its own streams (`[MCMC_CHAIN_STREAM, job]` for the chain,
/// `[MCMC_PREDICTIVE_STREAM, job]` for the test reads): identical for any thread count.
fn run_job(
    config: &McmcConfig,
    rram: &Rram,
    data: &TabularSplit,
    job: &Job,
    index: u64,
) -> Result<ChainResult> {
    let mut rng = stream(config.seed, &[MCMC_CHAIN_STREAM, index]);
    let periphery = config.periphery();
    let mut target = LogisticTarget::new(&data.train, config.prior_sigma, periphery.clone())?;
    let params = data.train.features + 1;
    let settings = config.settings();
    let (chain, mut training): (ChainRun, Tally) = if job.device {
        let mapping = DeviceMapping {
            weight_per_siemens: config.weight_per_siemens,
            g_ref_s: rram.lrs_median_conductance_s(job.i_ref_a),
            i_cc_min_a: config.i_cc_min_a,
            i_cc_max_a: config.i_cc_max_a,
            cycles_spent: job.cycles,
            write_check_sigmas: config.write_check_sigmas,
        };
        let mut proposal = DeviceProposal::new(
            rram.clone(),
            mapping,
            periphery.clone(),
            params,
            config.rows,
            &mut rng,
        )
        .context("mcmc_wdbc")?;
        let chain = run(&mut proposal, &mut target, &settings, &mut rng)?;
        (chain, proposal.tally)
    } else {
        let mut walk = GaussianWalk {
            start: vec![0.0; params],
            step: config.software_step,
        };
        (
            run(&mut walk, &mut target, &settings, &mut rng)?,
            Tally::default(),
        )
    };
    training.device_reads += target.tally.device_reads;
    training.energy.add(&target.tally.energy);
    let mut read_rng = stream(config.seed, &[MCMC_PREDICTIVE_STREAM, index]);
    let mut test_tally = Tally::default();
    let mut evaluate = |store: &SampleStore| {
        let p = predictive(
            store,
            &data.test,
            &periphery,
            &mut read_rng,
            &mut test_tally,
        );
        accuracy(&p, &data.test.labels)
    };
    let accuracy_at = chain.snapshots.iter().map(|(_, s)| evaluate(s)).collect();
    let final_accuracy = evaluate(&chain.store);
    let posterior = if job.sweep == Sweep::Main && job.repeat == 0 {
        config
            .histogram_params
            .iter()
            .map(|&j| {
                chain
                    .store
                    .samples()
                    .map(|(s, w)| (s.theta[j], w))
                    .collect()
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(ChainResult {
        sweep: job.sweep,
        method: if job.device { "device" } else { "software" },
        x: job.x,
        repeat: job.repeat,
        accuracy: final_accuracy,
        acceptance_rate: chain.acceptance_rate(),
        accuracy_at,
        training,
        posterior,
    })
}

/// Mean and standard deviation over the chains `select` picks of `value`.
fn mean_std(
    report: &McmcReport,
    select: impl Fn(&ChainResult) -> bool,
    value: impl Fn(&ChainResult) -> f64,
) -> (f64, f64) {
    let v: Vec<f64> = report
        .chains
        .iter()
        .filter(|c| select(c))
        .map(value)
        .collect();
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, var.sqrt())
}

/// A series of mean ± standard deviation over repeats for every swept value of `sweep`.
fn swept(
    report: &McmcReport,
    sweep: Sweep,
    xs: &[f64],
    label: &str,
    x_scale: f64,
    value: impl Fn(&ChainResult) -> f64 + Copy,
    color: usize,
) -> Series {
    let (points, err): (Vec<_>, Vec<_>) = xs
        .iter()
        .map(|&x| {
            let (m, s) = mean_std(report, |c| c.sweep == sweep && c.x == x, value);
            ((x * x_scale, 100.0 * m), 100.0 * s)
        })
        .unzip();
    Series::new(label, points, Style::LinePoints, color).with_errors(err)
}

/// Draw the study's figures into `dir`.
pub fn plot_mcmc(report: &McmcReport, dir: &Path) -> Result<()> {
    let c = &report.config;
    let reps = c.repeats;
    let mut fig = Figure::new(
        format!("WDBC test accuracy vs MCMC iterations, mean ± std of {reps} chains"),
        "MCMC iterations",
        "test accuracy (%)",
    );
    let checkpoints: Vec<f64> = c.checkpoints.iter().map(|&k| k as f64).collect();
    for (color, method) in [(0, "device"), (1, "software")] {
        let (points, err): (Vec<_>, Vec<_>) = checkpoints
            .iter()
            .enumerate()
            .map(|(i, &k)| {
                let pick = |ch: &ChainResult| ch.sweep == Sweep::Main && ch.method == method;
                let (m, s) = mean_std(report, pick, |ch| ch.accuracy_at[i]);
                ((k, 100.0 * m), 100.0 * s)
            })
            .unzip();
        let label = match method {
            "device" => "RRAM re-programming proposals",
            _ => "software Gaussian random walk",
        };
        fig.series
            .push(Series::new(label, points, Style::LinePoints, color).with_errors(err));
    }
    let span = (checkpoints[0], checkpoints[checkpoints.len() - 1]);
    fig.series.push(Series::new(
        format!(
            "MAP by gradient ascent ({:.1} %)",
            100.0 * report.map_accuracy
        ),
        vec![
            (span.0, 100.0 * report.map_accuracy),
            (span.1, 100.0 * report.map_accuracy),
        ],
        Style::Line,
        2,
    ));
    fig.series.push(Series::new(
        "Dalgaty et al. 2021 (96.3 %)",
        vec![(span.0, 96.3), (span.1, 96.3)],
        Style::Line,
        3,
    ));
    fig.y_range = Some((80.0, 100.0));
    save(&fig, &dir.join("mcmc_wdbc_iterations"))?;

    let currents = &c.compliance_sweep_a;
    let mut acc = Figure::new(
        "Acceptance vs SET compliance of the operating point",
        "compliance current (µA)",
        "acceptance rate (%)",
    );
    acc.log_x = true;
    acc.series.push(swept(
        report,
        Sweep::Compliance,
        currents,
        "RRAM proposals",
        1e6,
        |ch| ch.acceptance_rate,
        0,
    ));
    let mut acc2 = Figure::new(
        "Test accuracy vs SET compliance",
        "compliance current (µA)",
        "test accuracy (%)",
    );
    acc2.log_x = true;
    acc2.series.push(swept(
        report,
        Sweep::Compliance,
        currents,
        "RRAM proposals",
        1e6,
        |ch| ch.accuracy,
        0,
    ));
    save_panels(&[acc, acc2], 2, &dir.join("mcmc_wdbc_compliance"))?;

    let mut end = Figure::new(
        format!("After endurance cycling, I_ref = {:.0} µA", c.i_ref_a * 1e6),
        "endurance cycles already spent",
        "%",
    );
    end.log_x = true;
    let cycles: Vec<f64> = c.cycles_sweep.iter().map(|&n| n.max(1.0)).collect();
    let pick: Vec<f64> = c.cycles_sweep.clone();
    let relabel = |mut s: Series| {
        for (p, x) in s.points.iter_mut().zip(&cycles) {
            p.0 = *x;
        }
        s
    };
    end.series.push(relabel(swept(
        report,
        Sweep::Cycles,
        &pick,
        "test accuracy",
        1.0,
        |ch| ch.accuracy,
        0,
    )));
    end.series.push(relabel(swept(
        report,
        Sweep::Cycles,
        &pick,
        "acceptance rate",
        1.0,
        |ch| ch.acceptance_rate,
        1,
    )));
    save(&end, &dir.join("mcmc_wdbc_endurance"))?;

    save_panels(
        &posterior_panels(report),
        3,
        &dir.join("mcmc_wdbc_posterior"),
    )
}

/// Histograms of the weighted posterior samples of the histogram parameters, device and
/// software (repeat 0 of the main run), normalised to densities.
fn posterior_panels(report: &McmcReport) -> Vec<Figure> {
    let main = |method: &str| {
        report
            .chains
            .iter()
            .find(|c| c.sweep == Sweep::Main && c.method == method && c.repeat == 0)
    };
    let (Some(device), Some(software)) = (main("device"), main("software")) else {
        return Vec::new();
    };
    let bins = 30;
    report
        .config
        .histogram_params
        .iter()
        .enumerate()
        .map(|(k, &j)| {
            let name = if j == 30 {
                "bias".to_string()
            } else {
                format!("w{j}")
            };
            let mut fig = Figure::new(format!("posterior of {name}"), name.clone(), "density");
            let all: Vec<f64> = device.posterior[k]
                .iter()
                .chain(&software.posterior[k])
                .map(|s| s.0)
                .collect();
            let lo = all.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = all.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            for (color, (label, chain)) in [("RRAM", device), ("software", software)]
                .into_iter()
                .enumerate()
            {
                let values: Vec<f64> = chain.posterior[k]
                    .iter()
                    .flat_map(|&(v, w)| std::iter::repeat_n(v, w as usize))
                    .collect();
                let h = histogram(&values, lo, hi, bins);
                let width = h.get(1).map_or(1.0, |b| b.0 - h[0].0);
                let total = values.len() as f64 * width;
                let density = h.into_iter().map(|(x, c)| (x, c / total)).collect();
                fig.series
                    .push(Series::new(label, density, Style::LinePoints, color));
            }
            fig
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_configurations_name_their_field() {
        let ok = McmcConfig::default();
        ok.validate().unwrap();
        for (config, needle) in [
            (
                McmcConfig {
                    data: "mnist10k".into(),
                    ..ok.clone()
                },
                "data: unknown tabular data set",
            ),
            (
                McmcConfig {
                    iterations: 0,
                    checkpoints: vec![],
                    burn_in: 0,
                    ..ok.clone()
                },
                "iterations must be at least 1",
            ),
            (
                McmcConfig {
                    i_ref_a: -40e-6,
                    ..ok.clone()
                },
                "i_ref_a: must be > 0",
            ),
            (
                McmcConfig {
                    compliance_sweep_a: vec![-1e-6],
                    ..ok.clone()
                },
                "compliance_sweep_a: must be > 0",
            ),
        ] {
            let err = format!("{:#}", config.validate().unwrap_err());
            assert!(err.contains(needle), "{err}");
        }
        let pcm = McmcConfig {
            device: "pcm_gst".into(),
            ..ok
        };
        assert!(pcm.rram().unwrap_err().to_string().contains("not an RRAM"));
    }
}
