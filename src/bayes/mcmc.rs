//! Metropolis–Hastings sampling in an RRAM array whose cycle-to-cycle variability is the
//! proposal (Dalgaty et al., "In situ learning using intrinsic memristor variability via
//! Markov chain Monte Carlo sampling", Nature Electronics 4, 151, 2021; arXiv 2001.11426),
//! and the same sampler with Gaussian random-walk proposals in software for comparison.
//! `docs/MCMC.md` says which parts of the scheme follow the paper and which are choices made
//! here.
//!
//! **The chain** ([`run`]): from the current sample `θ`, a [`Proposal`] draws a candidate
//! `θ'` and reports `log q(θ|θ') − log q(θ'|θ)`; a [`Target`] gives `log π(θ')` (for the
//! device chain computed from analog reads of the candidate); the digital periphery accepts
//! with probability `min(1, π(θ') q(θ|θ') / (π(θ) q(θ'|θ)))` (Metropolis et al. 1953;
//! Hastings 1970), comparing the log ratio with the log of one uniform draw. The current
//! sample's `log π` is kept from when it was accepted, or read again at every iteration
//! ([`ChainSettings::reread_current`]: noisy reads otherwise make the chain stick). After `burn_in` iterations every
//! iteration is recorded in a [`SampleStore`]: an accepted candidate is a new stored row
//! with weight 1, a rejection adds 1 to the weight of the current row, so the weighted
//! store is exactly the chain after burn-in (as long as it fits; the store keeps the newest
//! `rows` samples).
//!
//! **Device proposals** ([`DeviceProposal`]): parameter `j` is the pair
//! `θ_j = k (G⁺_j − G⁻_j)` of a sampled device `G⁺` in the sample's row and a reference
//! device `G⁻` (one reference column, programmed once at `g_ref_s`), `k` in weight units
//! per siemens. A candidate is programmed into the next row of the array: every device of
//! that row is RESET, then SET at the compliance current `I = V_c G_cur` whose LRS median
//! is the current sample's conductance (read by the periphery), clamped to the transistor's
//! range; the new conductance is a draw of the model's cycle-to-cycle distribution
//! (`device::rram`: lognormal, log-spread shrinking with `I`, growing with the cycles
//! spent). The rows form a ring of `rows + 1` plus spares: the row a candidate goes to is
//! the next working one, which holds no stored sample, so the stored rows are the stored
//! samples. After writing, the periphery reads every device back (a write check): a device
//! further than `write_check_sigmas` log-spreads from its median (a stuck cell, whose
//! conductance the law does not describe and whose Hastings ratio would be meaningless) maps
//! the row out, and the candidate is written into the next row. The Hastings ratio is
//! computed from the same law in the periphery, on read values.
//!
//! **Likelihood** ([`LogisticTarget`], Bayesian logistic regression, `p(y = 1 | x) =
//! sigmoid(θ · [x, 1])`, Gaussian prior of standard deviation `prior_sigma` on every
//! weight): every training vector is read through the candidate's row (the
//! [`SampledSynapses`] seam: conductance product plus the devices' Gaussian read noise per
//! output), the output goes through the ADC ([`ReadPeriphery`]), and the log likelihood is
//! summed digitally. The posterior predictive of a test vector is the weighted mean of
//! `sigmoid` over the stored rows, each read the same way ([`predictive`]).
//!
//! **Costs** ([`Tally`]): RESET/SET events and their pulse energy (the device model's),
//! device reads of the periphery, and the array read energy of every likelihood and
//! prediction read (`t_read v² Σ G`, with the DAC and ADC energies of
//! `crossbar::energy::EnergyConfig` and their published sources).

use crate::crossbar::energy::{EnergyBreakdown, EnergyConfig};
use crate::crossbar::periphery::Quantizer;
use crate::data::wdbc::Tabular;
use crate::device::Device;
use crate::device::rram::{Rram, RramState};
use crate::rng::XbarRng;
use crate::synapses::sampled::{PairWeight, SampledSynapses};
use anyhow::{Result, ensure};
use rand::RngExt;
use rand_distr::StandardNormal;
use serde::Serialize;
use std::collections::VecDeque;

/// One state of a chain as the periphery sees it.
#[derive(Clone, Debug)]
pub struct Sample {
    /// The parameters as the periphery knows them (read values on devices), weight units.
    pub theta: Vec<f64>,
    /// The copy the likelihood reads: a `1 x params` layer.
    pub synapses: SampledSynapses,
    /// Summed conductance `G⁺ + G⁻` of each parameter's pair, siemens (empty: digital).
    pub g_sum_s: Vec<f64>,
}

impl Sample {
    /// A digital sample: the parameters, read exactly.
    pub fn digital(theta: Vec<f64>) -> Self {
        let w = theta.iter().map(|&t| t as f32).collect();
        Self {
            synapses: SampledSynapses::digital(theta.len(), 1, w),
            theta,
            g_sum_s: Vec::new(),
        }
    }
}

/// A candidate with its Hastings term `log q(current | candidate) − log q(candidate | current)`.
#[derive(Clone, Debug)]
pub struct Proposed {
    /// The candidate.
    pub sample: Sample,
    /// `log q(θ | θ') − log q(θ' | θ)` (0 for a symmetric proposal).
    pub log_q_ratio: f64,
}

/// How candidates are drawn.
pub trait Proposal {
    /// The chain's first sample.
    fn initial(&mut self, rng: &mut XbarRng) -> Sample;
    /// A candidate drawn from the current sample.
    fn propose(&mut self, current: &Sample, rng: &mut XbarRng) -> Proposed;
    /// The last candidate was accepted and is now the current sample.
    fn accept(&mut self);
}

/// The distribution sampled.
pub trait Target {
    /// `log π` of a sample up to a constant (may read the sample with noise).
    fn log_density(&mut self, sample: &Sample, rng: &mut XbarRng) -> f64;
}

/// Length of the chain and what is kept of it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChainSettings {
    /// Iterations (proposals) after the initial sample.
    pub iterations: u64,
    /// Iterations not recorded at the start.
    pub burn_in: u64,
    /// Samples the store keeps (rows of the array holding accepted samples).
    pub rows: usize,
    /// Iterations after which a copy of the store is kept (for accuracy versus iterations).
    pub checkpoints: Vec<u64>,
    /// Read the current sample's `log π` again at every iteration instead of keeping the
    /// value from its acceptance. With noisy reads a kept value that happened to be read
    /// high makes the chain stick; re-reading removes that (at twice the reads) but makes
    /// the chain only approximately reversible (the "Monte Carlo within Metropolis" scheme,
    /// O'Neill et al. 2000; Andrieu & Roberts, Ann. Statist. 2009). Exact targets are
    /// unaffected.
    pub reread_current: bool,
}

impl ChainSettings {
    /// Check the settings; errors name the field.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.iterations >= 1,
            "iterations must be at least 1 (got 0)"
        );
        ensure!(
            self.burn_in < self.iterations,
            "burn_in ({}) must be below iterations ({}): nothing would be stored",
            self.burn_in,
            self.iterations
        );
        ensure!(self.rows >= 1, "rows must be at least 1 (got 0)");
        Ok(())
    }
}

/// The stored samples with their weights (iterations spent in each).
#[derive(Clone, Debug, Default)]
pub struct SampleStore {
    capacity: usize,
    samples: VecDeque<(Sample, u64)>,
}

impl SampleStore {
    /// An empty store of `capacity` samples.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            samples: VecDeque::with_capacity(capacity),
        }
    }

    /// Stored samples, oldest first, with their weights.
    pub fn samples(&self) -> impl Iterator<Item = (&Sample, u64)> {
        self.samples.iter().map(|(s, w)| (s, *w))
    }

    /// Number of stored samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Weighted mean and variance of parameter `j` over the store.
    pub fn moments(&self, j: usize) -> (f64, f64) {
        let total: f64 = self.samples().map(|(_, w)| w as f64).sum();
        let mean = self
            .samples()
            .map(|(s, w)| w as f64 * s.theta[j])
            .sum::<f64>()
            / total;
        let var = self
            .samples()
            .map(|(s, w)| w as f64 * (s.theta[j] - mean).powi(2))
            .sum::<f64>()
            / total;
        (mean, var)
    }

    fn push(&mut self, sample: Sample) {
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back((sample, 1));
    }

    fn stay(&mut self) {
        if let Some(last) = self.samples.back_mut() {
            last.1 += 1;
        }
    }
}

/// What a chain leaves behind.
#[derive(Clone, Debug)]
pub struct ChainRun {
    /// The store at the end.
    pub store: SampleStore,
    /// Copies of the store at the requested checkpoints (iteration, store).
    pub snapshots: Vec<(u64, SampleStore)>,
    /// Accepted candidates.
    pub accepted: u64,
    /// Iterations run.
    pub iterations: u64,
}

impl ChainRun {
    /// Fraction of candidates accepted.
    pub fn acceptance_rate(&self) -> f64 {
        self.accepted as f64 / self.iterations as f64
    }
}

/// Run a Metropolis–Hastings chain (module documentation), every draw from `rng`.
pub fn run<P: Proposal, T: Target>(
    proposal: &mut P,
    target: &mut T,
    settings: &ChainSettings,
    rng: &mut XbarRng,
) -> Result<ChainRun> {
    settings.validate()?;
    let mut current = proposal.initial(rng);
    let mut log_pi = target.log_density(&current, rng);
    let mut store = SampleStore::new(settings.rows);
    let mut snapshots = Vec::new();
    let mut accepted = 0;
    for t in 1..=settings.iterations {
        let candidate = proposal.propose(&current, rng);
        if settings.reread_current {
            log_pi = target.log_density(&current, rng);
        }
        let log_pi_new = target.log_density(&candidate.sample, rng);
        let log_alpha = log_pi_new - log_pi + candidate.log_q_ratio;
        // A NaN ratio (e.g. two impossible states) compares false: rejected.
        let accept = rng.random::<f64>().ln() < log_alpha;
        if accept {
            proposal.accept();
            current = candidate.sample;
            log_pi = log_pi_new;
            accepted += 1;
        }
        if t > settings.burn_in {
            if accept || store.is_empty() {
                store.push(current.clone());
            } else {
                store.stay();
            }
        }
        if settings.checkpoints.contains(&t) {
            snapshots.push((t, store.clone()));
        }
    }
    Ok(ChainRun {
        store,
        snapshots,
        accepted,
        iterations: settings.iterations,
    })
}

/// Software baseline: `θ' = θ + step z`, `z` standard normal per parameter (symmetric).
#[derive(Clone, Debug)]
pub struct GaussianWalk {
    /// Starting parameters.
    pub start: Vec<f64>,
    /// Standard deviation of each parameter's step, weight units.
    pub step: f64,
}

impl Proposal for GaussianWalk {
    fn initial(&mut self, _rng: &mut XbarRng) -> Sample {
        Sample::digital(self.start.clone())
    }

    fn propose(&mut self, current: &Sample, rng: &mut XbarRng) -> Proposed {
        let theta = current
            .theta
            .iter()
            .map(|t| t + self.step * rng.sample::<f64, _>(StandardNormal))
            .collect();
        Proposed {
            sample: Sample::digital(theta),
            log_q_ratio: 0.0,
        }
    }

    fn accept(&mut self) {}
}

/// Counts and energy of the sampler's hardware operations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Tally {
    /// Device re-programmings (one RESET and one SET each).
    pub programming_events: u64,
    /// Single-device reads of the periphery (current and candidate conductances).
    pub device_reads: u64,
    /// Rows mapped out after a failed write check.
    pub faulty_rows: u64,
    /// Energy, pulses, conversions and vectors read.
    pub energy: EnergyBreakdown,
}

/// The analog read path of a stored sample: array read with read noise (through
/// [`SampledSynapses`]), then one ADC conversion per output; inputs are driven without DAC
/// quantisation (counted as 8-bit conversions in the energy, as `EnergyConfig` does).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReadPeriphery {
    /// ADC resolution, bits (`None`: ideal).
    pub adc_bits: Option<u32>,
    /// ADC full scale, logit units (the output `θ · x`).
    pub adc_full_scale: f64,
    /// Read voltage at full-scale input, volts.
    pub v_read_v: f64,
    /// Input value driven at `v_read_v` (inputs beyond it are counted at full scale).
    pub input_full_scale: f64,
    /// Converter energies and read time.
    pub energy: EnergyConfig,
}

impl ReadPeriphery {
    /// Check the fields; errors name them.
    pub fn validate(&self) -> Result<()> {
        if let Some(bits) = self.adc_bits {
            ensure!(
                (2..=24).contains(&bits),
                "adc_bits must be 2 to 24 (got {bits})"
            );
        }
        for (name, v) in [
            ("adc_full_scale", self.adc_full_scale),
            ("v_read_v", self.v_read_v),
            ("input_full_scale", self.input_full_scale),
        ] {
            ensure!(v.is_finite() && v > 0.0, "{name} must be > 0 (got {v})");
        }
        self.energy.validate()
    }

    /// Outputs `θ · x` of `n` input vectors (`x`: `n x params`) read through `sample`:
    /// exact for a digital sample, otherwise with read noise and ADC, the cost added to
    /// `tally`.
    pub fn read(
        &self,
        sample: &Sample,
        x: &[f32],
        n: usize,
        rng: &mut XbarRng,
        tally: &mut Tally,
    ) -> Vec<f64> {
        let z = sample.synapses.forward(x, n, rng);
        if sample.g_sum_s.is_empty() {
            return z.iter().map(|&v| f64::from(v)).collect();
        }
        let adc = self
            .adc_bits
            .map(|b| Quantizer::new(b, self.adc_full_scale as f32));
        self.record_reads(sample, x, n, tally);
        z.iter()
            .map(|&v| f64::from(adc.map_or(v, |q| q.quantize(v))))
            .collect()
    }

    /// Array energy `t_read Σ_vectors Σ_i (v_read u_i)² (G⁺_i + G⁻_i)` plus the converters.
    fn record_reads(&self, sample: &Sample, x: &[f32], n: usize, tally: &mut Tally) {
        let d = sample.g_sum_s.len();
        let mut array_j = 0.0;
        for row in x.chunks(d).take(n) {
            for (xi, g) in row.iter().zip(&sample.g_sum_s) {
                let u = (f64::from(*xi) / self.input_full_scale).clamp(-1.0, 1.0);
                array_j += (self.v_read_v * u).powi(2) * g;
            }
        }
        let e = &mut tally.energy;
        let (vectors, macs) = (n as u64, (n * d) as f64);
        e.array_read_j += array_j * self.energy.read_time_s;
        e.dac_j += macs * self.energy.dac_conversion_j(None);
        e.adc_j += n as f64 * self.energy.adc_conversion_j(self.adc_bits);
        e.macs += macs;
        e.vectors += vectors;
        e.dac_conversions += n as u64 * d as u64;
        e.adc_conversions += vectors;
        e.read_latency_s += n as f64 * self.energy.read_latency_s();
    }

    /// One single-device read `G + σ_read z` at `v_read_v` (energy `v² G t_read` and one ADC
    /// conversion).
    fn read_device(
        &self,
        rram: &Rram,
        state: &RramState,
        rng: &mut XbarRng,
        tally: &mut Tally,
    ) -> f64 {
        let g = rram.conductance_at(state, 0.0);
        let sigma = rram.read_noise_sigma(state, 0.0);
        tally.device_reads += 1;
        tally.energy.array_read_j += self.v_read_v.powi(2) * g * self.energy.read_time_s;
        tally.energy.adc_j += self.energy.adc_conversion_j(self.adc_bits);
        tally.energy.adc_conversions += 1;
        g + sigma * rng.sample::<f64, _>(StandardNormal)
    }
}

/// Input vectors with a constant 1 appended (the bias input), `n x (features + 1)`.
pub fn with_bias(data: &Tabular) -> Vec<f32> {
    let mut x = Vec::with_capacity(data.len() * (data.features + 1));
    for i in 0..data.len() {
        x.extend_from_slice(data.sample(i));
        x.push(1.0);
    }
    x
}

/// Bayesian logistic regression on a two-class tabular set: `log π(θ) = Σ_n [y_n z_n −
/// log(1 + e^{z_n})] − |θ|² / (2 σ_prior²)`, `z_n` read through the sample.
#[derive(Clone, Debug)]
pub struct LogisticTarget {
    x: Vec<f32>,
    labels: Vec<u8>,
    /// Standard deviation of the Gaussian prior of every weight.
    pub prior_sigma: f64,
    /// The read path of the likelihood.
    pub periphery: ReadPeriphery,
    /// Cost of the likelihood reads.
    pub tally: Tally,
}

impl LogisticTarget {
    /// The target of `data` (labels 0/1) with prior standard deviation `prior_sigma`.
    pub fn new(data: &Tabular, prior_sigma: f64, periphery: ReadPeriphery) -> Result<Self> {
        ensure!(
            prior_sigma.is_finite() && prior_sigma > 0.0,
            "prior_sigma must be > 0 (got {prior_sigma})"
        );
        ensure!(!data.is_empty(), "the training set is empty");
        periphery.validate()?;
        Ok(Self {
            x: with_bias(data),
            labels: data.labels.clone(),
            prior_sigma,
            periphery,
            tally: Tally::default(),
        })
    }
}

/// `log(1 + e^z)` without overflow.
fn softplus(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

/// The logistic function.
fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

impl Target for LogisticTarget {
    fn log_density(&mut self, sample: &Sample, rng: &mut XbarRng) -> f64 {
        let n = self.labels.len();
        let z = self
            .periphery
            .read(sample, &self.x, n, rng, &mut self.tally);
        let log_lik: f64 = z
            .iter()
            .zip(&self.labels)
            .map(|(&z, &y)| f64::from(y) * z - softplus(z))
            .sum();
        let s2 = self.prior_sigma * self.prior_sigma;
        log_lik - sample.theta.iter().map(|t| t * t).sum::<f64>() / (2.0 * s2)
    }
}

/// The maximum a posteriori weights of the same model (regularised logistic regression),
/// by `steps` steps of full-batch gradient ascent on `log π / n` with `learning_rate`:
/// `∇ log π = Σ_n (y_n − sigmoid(z_n)) [x_n, 1] − θ / σ_prior²`. The digital reference.
pub fn fit_map(data: &Tabular, prior_sigma: f64, steps: usize, learning_rate: f64) -> Vec<f64> {
    let d = data.features + 1;
    let x = with_bias(data);
    let n = data.len() as f64;
    let mut theta = vec![0.0; d];
    for _ in 0..steps {
        let grad = log_posterior_gradient(&theta, &x, &data.labels, prior_sigma);
        for (t, g) in theta.iter_mut().zip(&grad) {
            *t += learning_rate * g / n;
        }
    }
    theta
}

/// `∇ log π(θ)` of the logistic model on inputs `x` (with the bias input) and `labels`.
pub fn log_posterior_gradient(
    theta: &[f64],
    x: &[f32],
    labels: &[u8],
    prior_sigma: f64,
) -> Vec<f64> {
    let d = theta.len();
    let mut grad: Vec<f64> = theta
        .iter()
        .map(|t| -t / (prior_sigma * prior_sigma))
        .collect();
    for (row, &y) in x.chunks(d).zip(labels) {
        let z: f64 = row
            .iter()
            .zip(theta)
            .map(|(&xi, t)| f64::from(xi) * t)
            .sum();
        let r = f64::from(y) - sigmoid(z);
        for (g, &xi) in grad.iter_mut().zip(row) {
            *g += r * f64::from(xi);
        }
    }
    grad
}

/// Posterior predictive `p(y = 1 | x)` of every sample of `data`: the weighted mean of
/// `sigmoid(θ_r · [x, 1])` over the stored rows, each read through `periphery`.
pub fn predictive(
    store: &SampleStore,
    data: &Tabular,
    periphery: &ReadPeriphery,
    rng: &mut XbarRng,
    tally: &mut Tally,
) -> Vec<f64> {
    let x = with_bias(data);
    let n = data.len();
    let mut p = vec![0.0; n];
    let mut total = 0.0;
    for (sample, w) in store.samples() {
        let z = periphery.read(sample, &x, n, rng, tally);
        for (pi, zi) in p.iter_mut().zip(&z) {
            *pi += w as f64 * sigmoid(*zi);
        }
        total += w as f64;
    }
    p.iter_mut().for_each(|v| *v /= total);
    p
}

/// Fraction of samples whose most probable class (`p >= 1/2` is class 1) is the label.
pub fn accuracy(p_one: &[f64], labels: &[u8]) -> f64 {
    let right = p_one
        .iter()
        .zip(labels)
        .filter(|(p, y)| u8::from(**p >= 0.5) == **y)
        .count();
    right as f64 / labels.len() as f64
}

/// How parameters map to devices and which compliance currents the periphery can set.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeviceMapping {
    /// Weight units per siemens of pair difference, `k` in `θ = k (G⁺ − G⁻)`.
    pub weight_per_siemens: f64,
    /// LRS median of the reference devices and of the first sample, siemens.
    pub g_ref_s: f64,
    /// Smallest compliance current the select transistor sets, amperes.
    pub i_cc_min_a: f64,
    /// Largest compliance current, amperes.
    pub i_cc_max_a: f64,
    /// Endurance cycles every device has spent before training.
    pub cycles_spent: u64,
    /// Write check: a device read further than this many log-spreads from the median it
    /// was programmed to is a failed write (a stuck cell), and its row is mapped out.
    pub write_check_sigmas: f64,
}

impl DeviceMapping {
    /// Check the fields against the device; errors name them.
    pub fn validate(&self, rram: &Rram) -> Result<()> {
        for (name, v) in [
            ("weight_per_siemens", self.weight_per_siemens),
            ("g_ref_s", self.g_ref_s),
            ("i_cc_min_a", self.i_cc_min_a),
            ("i_cc_max_a", self.i_cc_max_a),
            ("write_check_sigmas", self.write_check_sigmas),
        ] {
            ensure!(v.is_finite() && v > 0.0, "{name} must be > 0 (got {v})");
        }
        ensure!(
            self.i_cc_min_a < self.i_cc_max_a,
            "i_cc_min_a ({}) must be below i_cc_max_a ({})",
            self.i_cc_min_a,
            self.i_cc_max_a
        );
        let i_ref = rram.compliance_for_median_a(self.g_ref_s);
        ensure!(
            (self.i_cc_min_a..=self.i_cc_max_a).contains(&i_ref),
            "g_ref_s = {} S needs a compliance current of {i_ref} A, outside \
             [i_cc_min_a, i_cc_max_a]",
            self.g_ref_s
        );
        Ok(())
    }

    /// The compliance current whose LRS median is `g_s`, clamped to the transistor's range.
    fn compliance_a(&self, rram: &Rram, g_s: f64) -> f64 {
        rram.compliance_for_median_a(g_s)
            .clamp(self.i_cc_min_a, self.i_cc_max_a)
    }
}

/// RRAM proposals: candidates programmed into the next row of a ring of device rows
/// (module documentation).
#[derive(Clone, Debug)]
pub struct DeviceProposal {
    rram: Rram,
    mapping: DeviceMapping,
    periphery: ReadPeriphery,
    rows: Vec<Vec<RramState>>,
    reference: Vec<RramState>,
    reference_read: Vec<f64>,
    current_row: usize,
    candidate_row: usize,
    faulty: Vec<bool>,
    current_read: Vec<f64>,
    candidate_read: Vec<f64>,
    /// Cost of programming and of the periphery's device reads.
    pub tally: Tally,
}

impl DeviceProposal {
    /// Fabricate `rows + 1` rows of `params` sampled devices and one reference column
    /// (devices drawn from `rng`, having spent `mapping.cycles_spent` cycles); the reference
    /// column is programmed at `g_ref_s` and read once.
    pub fn new(
        rram: Rram,
        mapping: DeviceMapping,
        periphery: ReadPeriphery,
        params: usize,
        rows: usize,
        rng: &mut XbarRng,
    ) -> Result<Self> {
        mapping.validate(&rram)?;
        periphery.validate()?;
        ensure!(
            params >= 1 && rows >= 1,
            "params and rows must be at least 1"
        );
        let fabricate = |rng: &mut XbarRng| {
            let mut s = rram.fabricate(rng);
            s.cycles = mapping.cycles_spent;
            s
        };
        let reference: Vec<RramState> = (0..params).map(|_| fabricate(rng)).collect();
        let rows: Vec<Vec<RramState>> = (0..=rows + spare_rows(rows))
            .map(|_| (0..params).map(|_| fabricate(rng)).collect())
            .collect();
        let faulty = vec![false; rows.len()];
        let mut proposal = Self {
            rram,
            mapping,
            periphery,
            rows,
            reference,
            reference_read: Vec::new(),
            current_row: 0,
            candidate_row: 0,
            faulty,
            current_read: Vec::new(),
            candidate_read: Vec::new(),
            tally: Tally::default(),
        };
        let i_ref = proposal
            .mapping
            .compliance_a(&proposal.rram, proposal.mapping.g_ref_s);
        let mut reference = std::mem::take(&mut proposal.reference);
        for state in &mut reference {
            proposal.program(state, i_ref, rng);
        }
        proposal.reference_read = reference.iter().map(|s| proposal.read(s, rng)).collect();
        proposal.reference = reference;
        Ok(proposal)
    }

    /// Endurance cycles of every sampled device, row after row.
    pub fn device_cycles(&self) -> impl Iterator<Item = u64> + '_ {
        self.rows.iter().flatten().map(|s| s.cycles)
    }

    fn program(&mut self, state: &mut RramState, i_cc_a: f64, rng: &mut XbarRng) {
        let report = self.rram.reprogram_lrs(state, i_cc_a, rng);
        self.tally.programming_events += 1;
        self.tally.energy.add(&EnergyBreakdown::from_write(&report));
    }

    fn read(&mut self, state: &RramState, rng: &mut XbarRng) -> f64 {
        self.periphery
            .read_device(&self.rram, state, rng, &mut self.tally)
    }

    /// Program the next working row after the current one with LRS medians `medians`
    /// (compliance currents clamped to the transistor's range) and read it back. A row with a
    /// device outside `write_check_sigmas` log-spreads of its median is mapped out and the next
    /// one is tried. Returns the row, its reads and `log q(medians | reads) − log q(reads |
    /// medians)`; if every other row is mapped out, the current row with a ratio of −∞ (a
    /// candidate that is always rejected).
    fn write_candidate(&mut self, medians: &[f64], rng: &mut XbarRng) -> (usize, Vec<f64>, f64) {
        let mut c = self.current_row;
        loop {
            c = (c + 1) % self.rows.len();
            if c == self.current_row {
                // Every other row is mapped out: no candidate can be written.
                return (c, self.current_read.clone(), f64::NEG_INFINITY);
            }
            if self.faulty[c] {
                continue;
            }
            let mut row = std::mem::take(&mut self.rows[c]);
            let mut reads = Vec::with_capacity(row.len());
            let mut log_q_ratio = 0.0;
            let mut passed = true;
            for (state, &g_cur) in row.iter_mut().zip(medians) {
                let i_fwd = self.mapping.compliance_a(&self.rram, g_cur);
                self.program(state, i_fwd, rng);
                let g_new = self.read(state, rng);
                let n = state.cycles;
                let sigma = self.rram.lrs_sigma_ln_r(i_fwd, n);
                let z = (g_new / self.rram.lrs_median_conductance_s(i_fwd)).ln() / sigma;
                passed &= z.abs() <= self.mapping.write_check_sigmas;
                let i_rev = self.mapping.compliance_a(&self.rram, g_new);
                log_q_ratio += self.rram.lrs_log_density(g_cur, i_rev, n + 1)
                    - self.rram.lrs_log_density(g_new, i_fwd, n);
                reads.push(g_new);
            }
            self.rows[c] = row;
            if passed {
                return (c, reads, log_q_ratio);
            }
            self.faulty[c] = true;
            self.tally.faulty_rows += 1;
        }
    }

    /// The sample held by row `r`, whose devices the periphery read as `reads`.
    fn sample_of_row(&self, r: usize, reads: &[f64]) -> Sample {
        let k = self.mapping.weight_per_siemens;
        let rram = &self.rram;
        let mut pairs = Vec::with_capacity(reads.len());
        let mut g_sum_s = Vec::with_capacity(reads.len());
        for (plus, minus) in self.rows[r].iter().zip(&self.reference) {
            let (gp, gm) = (
                rram.conductance_at(plus, 0.0),
                rram.conductance_at(minus, 0.0),
            );
            let (sp, sm) = (
                rram.read_noise_sigma(plus, 0.0),
                rram.read_noise_sigma(minus, 0.0),
            );
            pairs.push(PairWeight {
                weight: k * (gp - gm),
                read_var: k * k * (sp * sp + sm * sm),
            });
            g_sum_s.push(gp + gm);
        }
        let theta = reads
            .iter()
            .zip(&self.reference_read)
            .map(|(g, g_ref)| k * (g - g_ref))
            .collect();
        Sample {
            theta,
            synapses: SampledSynapses::from_pairs(reads.len(), 1, &pairs),
            g_sum_s,
        }
    }
}

impl Proposal for DeviceProposal {
    fn initial(&mut self, rng: &mut XbarRng) -> Sample {
        let g_ref = self.mapping.g_ref_s;
        let medians = vec![g_ref; self.reference.len()];
        self.current_row = self.rows.len() - 1;
        self.current_read = medians.clone();
        let (row, reads, _) = self.write_candidate(&medians, rng);
        self.current_row = row;
        self.current_read = reads;
        self.sample_of_row(row, &self.current_read)
    }

    fn propose(&mut self, _current: &Sample, rng: &mut XbarRng) -> Proposed {
        let medians = self.current_read.clone();
        let (row, reads, log_q_ratio) = self.write_candidate(&medians, rng);
        self.candidate_row = row;
        self.candidate_read = reads;
        Proposed {
            sample: self.sample_of_row(row, &self.candidate_read),
            log_q_ratio,
        }
    }

    fn accept(&mut self) {
        self.current_row = self.candidate_row;
        std::mem::swap(&mut self.current_read, &mut self.candidate_read);
    }
}

/// Spare rows beyond `rows + 1` for rows mapped out by the write check: a quarter, plus 2
/// (at the preset's 0.2 % stuck cells a row of 31 devices fails with probability 6 %, so
/// the spares cover the faulty rows of a 500-row array by about 18 standard deviations).
fn spare_rows(rows: usize) -> usize {
    rows / 4 + 2
}
