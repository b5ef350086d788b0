//! The memristor Bayesian machine (Harabi et al., Nature Electronics 6, 52-63, 2023): a
//! naive-Bayes classifier whose likelihoods are stored in memory cells and multiplied by
//! stochastic computing.
//!
//! **Model.** Images are average-pooled (`pool x pool` blocks) and quantised to
//! `pixel_levels` levels; each pooled pixel is an observation `o_i` with a categorical
//! likelihood `p(o_i | y)` learned by counting with Laplace smoothing. The exact decision is
//! `argmax_y p(y) prod_i p(o_i | y)` in floating point ([`NaiveBayes`]).
//!
//! **Machine.** As in the paper, one "likelihood block" per observation stores, for every
//! value of the observation, one word per class; the observed value selects the row, and for
//! every class a comparator turns the stored word `Q` into a random bit that is 1 when a
//! B-bit random number `R` is below `Q` (probability `Q / 2^B`). The bits of all blocks of a
//! class are ANDed (a product of probabilities), and a counter per class counts the ones
//! over `L` clock cycles; the class with the most ones wins (ties broken at random).
//! The prior is one more block. Every (block, class) stream has its own random source.
//!
//! **Low probabilities.** A product of ~200 likelihoods is far below 1/L, so every stream
//! would be all zeros: the known weak spot of stochastic Bayesian machines (Turck et al.,
//! Commun. Eng. 2025). Two rescalings leave `argmax_y` unchanged and are applied before
//! quantisation: each block's likelihoods are divided by their maximum over classes (the
//! normalisation of the Bayesian machine: only ratios between classes matter), and raised to
//! a power `gamma <= 1` (a monotonic map of the posterior); `gamma` is chosen so that the
//! median product of the winning class on the training set is `target_product`
//! (or set explicitly). Quantisation to B bits (values clamped to `[1, 2^B - 1] / 2^B`, so
//! that no single block vetoes a class) is what separates the machine from the exact
//! classifier in the long-stream limit.
//!
//! **Devices.** Every stored bit is a 2T2R pair of complementary binary cells read by a
//! precharge sense amplifier (or a 1T1R cell compared with a reference), programmed with the
//! device preset's binary LRS/HRS distributions and faults; the bit read back may be wrong.
//! Cells are read once per decision (the word is latched for the `L` cycles), so a bit error
//! is static. The random number source is ideal or B MRAM junctions per stream
//! ([`super::mram_rng`]), each with its own bias from device-to-device spread, at a shared
//! nominal amplitude or after per-junction calibration.
//!
//! **Simulation.** With independent streams, the count of ones of class `y` after `L` cycles
//! is exactly Binomial(L, P_y), `P_y = prod_blocks P(R < Q)`, and `P(R < Q)` for a B-bit
//! number of independent biased bits has a closed form ([`comparator_probability`]), so each
//! decision costs one binomial draw per class and stream length (counts for longer streams
//! extend shorter ones). [`BayesianMachine::bitwise_counts`] simulates the streams bit by bit
//! for checking.
//!
//! **Energy per decision.** Memory: one word per block and class is read (the observed
//! row), at the mean `V_read^2 G t_read` of a stored bit's cells.
//! Random numbers: `L x streams x B` bits at the MRAM generator's measured energy per bit
//! (zero for the ideal source). The AND gates and counters are not modelled.

use super::mram_rng::{
    CalibrationConfig, GeneratorConfig, MramBitGenerator, calibrate_amplitude, fabricate_junctions,
    fifty_percent_amplitude_v, load_mram,
};
use super::{require, require_positive};
use crate::data::{Dataset, mnist10k};
use crate::device::{Device, preset};
use crate::output::plot::{Figure, Series, Style, save};
use crate::rng::stream;
use anyhow::{Context, Result};
use rand::{Rng, RngExt};
use rand_distr::{Binomial, Distribution};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Longest supported likelihood word, bits.
const MAX_WORD_BITS: u32 = 24;
/// Reference cells per state used to set the 1T1R read threshold.
const REFERENCE_CELLS: usize = 1000;

/// How one stored bit is held in memory cells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CellKind {
    /// Two complementary cells compared by a precharge sense amplifier (Harabi et al. 2023).
    #[serde(rename = "2t2r")]
    TwoT2R,
    /// One cell compared with a reference conductance (geometric mean of the medians of
    /// reference cells programmed in each state).
    #[serde(rename = "1t1r")]
    OneT1R,
}

/// One memory technology for the likelihood words.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageLevel {
    /// Legend label.
    pub label: String,
    /// Device preset name or file.
    pub device: String,
    /// Preset parameter overrides, `name = value`.
    #[serde(default)]
    pub overrides: toml::Table,
    /// Cell arrangement of one bit.
    #[serde(default = "default_cell")]
    pub cell: CellKind,
}

fn default_cell() -> CellKind {
    CellKind::TwoT2R
}

/// Where the comparators' random numbers come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RngSource {
    /// Exactly unbiased independent bits.
    Ideal,
    /// MRAM junctions at the nominal 50 % amplitude (device-to-device bias).
    Mram,
    /// MRAM junctions with per-junction calibrated amplitudes.
    MramCalibrated,
}

impl RngSource {
    /// Legend label.
    pub fn label(self) -> &'static str {
        match self {
            RngSource::Ideal => "ideal RNG",
            RngSource::Mram => "MRAM RNG, uncalibrated",
            RngSource::MramCalibrated => "MRAM RNG, calibrated",
        }
    }
}

/// The MRAM random source of the machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MramSourceConfig {
    /// MTJ preset name or file.
    pub device: String,
    /// Preset parameter overrides.
    pub overrides: toml::Table,
    /// How each junction generates bits.
    pub generator: GeneratorConfig,
    /// Per-junction calibration (used by `mram_calibrated`).
    pub calibration: CalibrationConfig,
    /// Bits generated by each of the first `streams` junctions to measure the energy per bit.
    pub energy_bits: usize,
}

impl Default for MramSourceConfig {
    fn default() -> Self {
        Self {
            device: "stt_mram".to_string(),
            overrides: toml::Table::new(),
            generator: GeneratorConfig::default(),
            calibration: CalibrationConfig {
                bits_per_step: 128,
                ..CalibrationConfig::default()
            },
            energy_bits: 256,
        }
    }
}

/// The Bayesian-machine experiment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MachineConfig {
    /// Master seed of every random stream.
    pub seed: u64,
    /// Pooling block edge, pixels (must divide the image height and width).
    pub pool: usize,
    /// Quantisation levels of a pooled pixel (2 = binarised).
    pub pixel_levels: usize,
    /// Laplace smoothing count of the likelihood estimates.
    pub laplace_alpha: f64,
    /// Bits B of a stored likelihood word (and of the comparator's random number).
    pub word_bits: u32,
    /// Exponent gamma applied to the normalised likelihoods; absent: chosen from `target_product`.
    pub exponent: Option<f64>,
    /// Median product of the winning class on the training set that sets gamma.
    pub target_product: f64,
    /// Stream lengths L (clock cycles per decision), increasing.
    pub stream_lengths: Vec<u64>,
    /// Memory technologies for the likelihood words.
    pub storage: Vec<StorageLevel>,
    /// Random sources.
    pub rng: Vec<RngSource>,
    /// The MRAM random source.
    pub mram: MramSourceConfig,
    /// Test images used (at most the test set).
    pub test_images: usize,
    /// Independent repetitions of the stochastic decisions.
    pub repeats: usize,
    /// Read voltage of the likelihood memory, volts.
    pub read_voltage_v: f64,
    /// Read time of the likelihood memory, seconds.
    pub read_time_s: f64,
}

impl Default for MachineConfig {
    fn default() -> Self {
        let rram = |label: &str, i_cc_a: Option<f64>| {
            let mut overrides = toml::Table::new();
            if let Some(i) = i_cc_a {
                overrides.insert("i_compliance_a".to_string(), toml::Value::Float(i));
            }
            StorageLevel {
                label: label.to_string(),
                device: "rram_hfo2".to_string(),
                overrides,
                cell: CellKind::TwoT2R,
            }
        };
        Self {
            seed: 1,
            pool: 2,
            pixel_levels: 4,
            laplace_alpha: 1.0,
            word_bits: 8,
            exponent: None,
            target_product: 0.1,
            stream_lengths: vec![8, 16, 32, 64, 128, 256, 512, 1024],
            storage: vec![
                StorageLevel {
                    label: "ideal cells".to_string(),
                    device: "ideal".to_string(),
                    overrides: toml::Table::new(),
                    cell: CellKind::TwoT2R,
                },
                rram("HfOx 2T2R, I_cc 100 uA", None),
                rram("HfOx 2T2R, I_cc 10 uA", Some(10e-6)),
                rram("HfOx 2T2R, I_cc 7 uA", Some(7e-6)),
                rram("HfOx 2T2R, I_cc 5 uA", Some(5e-6)),
            ],
            rng: vec![RngSource::Ideal, RngSource::Mram, RngSource::MramCalibrated],
            mram: MramSourceConfig::default(),
            test_images: 2000,
            repeats: 1,
            read_voltage_v: 0.1,
            read_time_s: 10e-9,
        }
    }
}

impl MachineConfig {
    /// Check every field.
    pub fn validate(&self) -> Result<()> {
        require(self.pool >= 1, "pool", "must be >= 1")?;
        require(
            (2..=256).contains(&self.pixel_levels),
            "pixel_levels",
            "must be in 2..=256",
        )?;
        require_positive("laplace_alpha", self.laplace_alpha)?;
        require(
            (1..=MAX_WORD_BITS).contains(&self.word_bits),
            "word_bits",
            &format!("must be in 1..={MAX_WORD_BITS}"),
        )?;
        if let Some(g) = self.exponent {
            require_positive("exponent", g)?;
        }
        require(
            self.target_product > 0.0 && self.target_product < 1.0,
            "target_product",
            "must be in (0, 1)",
        )?;
        require(
            !self.stream_lengths.is_empty(),
            "stream_lengths",
            "must not be empty",
        )?;
        require(
            self.stream_lengths[0] >= 1 && self.stream_lengths.windows(2).all(|w| w[0] < w[1]),
            "stream_lengths",
            "must be >= 1 and strictly increasing",
        )?;
        require(
            !self.storage.is_empty(),
            "storage",
            "must list at least one memory",
        )?;
        require(
            !self.rng.is_empty(),
            "rng",
            "must list at least one random source",
        )?;
        self.mram.generator.validate("mram.generator")?;
        self.mram.calibration.validate("mram.calibration")?;
        require(
            self.mram.energy_bits >= 1,
            "mram.energy_bits",
            "must be >= 1",
        )?;
        require(self.test_images >= 1, "test_images", "must be >= 1")?;
        require(self.repeats >= 1, "repeats", "must be >= 1")?;
        require_positive("read_voltage_v", self.read_voltage_v)?;
        require_positive("read_time_s", self.read_time_s)
    }
}

/// Images turned into quantised observations.
#[derive(Clone, Debug, PartialEq)]
pub struct Observations {
    /// Observations per image.
    pub features: usize,
    /// Values an observation takes.
    pub levels: usize,
    /// Observed values, image after image.
    pub values: Vec<u8>,
    /// Class labels.
    pub labels: Vec<u8>,
}

impl Observations {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there is no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Observed values of image `n`.
    pub fn image(&self, n: usize) -> &[u8] {
        &self.values[n * self.features..(n + 1) * self.features]
    }
}

/// Average-pool `data` in `pool x pool` blocks and quantise to `levels` levels.
pub fn observe(data: &Dataset, pool: usize, levels: usize) -> Result<Observations> {
    require(
        pool >= 1 && data.rows.is_multiple_of(pool) && data.cols.is_multiple_of(pool),
        "pool",
        &format!("must divide the image size {}x{}", data.rows, data.cols),
    )?;
    require(
        (2..=256).contains(&levels),
        "pixel_levels",
        "must be in 2..=256",
    )?;
    let (pr, pc) = (data.rows / pool, data.cols / pool);
    let area = (pool * pool) as f32;
    let mut values = Vec::with_capacity(data.len() * pr * pc);
    for n in 0..data.len() {
        let img = data.image(n);
        for br in 0..pr {
            for bc in 0..pc {
                let mut sum = 0.0;
                for r in br * pool..(br + 1) * pool {
                    sum += img[r * data.cols + bc * pool..r * data.cols + (bc + 1) * pool]
                        .iter()
                        .sum::<f32>();
                }
                let level = ((sum / area) * levels as f32) as usize;
                values.push(level.min(levels - 1) as u8);
            }
        }
    }
    Ok(Observations {
        features: pr * pc,
        levels,
        values,
        labels: data.labels.clone(),
    })
}

/// A naive-Bayes classifier with categorical likelihoods.
#[derive(Clone, Debug, PartialEq)]
pub struct NaiveBayes {
    /// Number of classes.
    pub classes: usize,
    /// Observations per image.
    pub features: usize,
    /// Values per observation.
    pub levels: usize,
    /// `ln p(y)`.
    pub log_prior: Vec<f64>,
    /// `ln p(o_i = v | y)` at `[(i * levels + v) * classes + y]`.
    pub log_likelihood: Vec<f64>,
}

impl NaiveBayes {
    /// Fit by counting, with Laplace smoothing `alpha`.
    pub fn fit(train: &Observations, classes: usize, alpha: f64) -> NaiveBayes {
        let (f, v_n) = (train.features, train.levels);
        let mut counts = vec![0.0; f * v_n * classes];
        let mut class_counts = vec![0.0; classes];
        for n in 0..train.len() {
            let y = usize::from(train.labels[n]);
            class_counts[y] += 1.0;
            for (i, &v) in train.image(n).iter().enumerate() {
                counts[(i * v_n + usize::from(v)) * classes + y] += 1.0;
            }
        }
        let total = train.len() as f64;
        let log_prior = class_counts
            .iter()
            .map(|c| ((c + alpha) / (total + alpha * classes as f64)).ln())
            .collect();
        let mut log_likelihood = vec![0.0; counts.len()];
        for i in 0..f {
            for v in 0..v_n {
                let row = (i * v_n + v) * classes;
                for (y, &n_y) in class_counts.iter().enumerate() {
                    let k = row + y;
                    log_likelihood[k] = ((counts[k] + alpha) / (n_y + alpha * v_n as f64)).ln();
                }
            }
        }
        NaiveBayes {
            classes,
            features: f,
            levels: v_n,
            log_prior,
            log_likelihood,
        }
    }

    /// `ln p(y) + sum_i ln p(o_i | y)` for every class.
    pub fn log_posterior(&self, values: &[u8]) -> Vec<f64> {
        let mut s = self.log_prior.clone();
        for (i, &v) in values.iter().enumerate() {
            let row = (i * self.levels + usize::from(v)) * self.classes;
            for (acc, l) in s
                .iter_mut()
                .zip(&self.log_likelihood[row..row + self.classes])
            {
                *acc += l;
            }
        }
        s
    }

    /// The exact decision.
    pub fn predict(&self, values: &[u8]) -> usize {
        argmax(&self.log_posterior(values))
    }

    /// Normalised log-likelihood tables in machine layout: block `b` (observations, then the
    /// prior as block `features` with one value), value `v`, class `y`, each row shifted so
    /// its maximum over classes is 0 (likelihood ratio to the best class).
    pub fn normalised_blocks(&self) -> Vec<Vec<f64>> {
        let c = self.classes;
        let mut blocks: Vec<Vec<f64>> = (0..self.features)
            .map(|i| self.log_likelihood[i * self.levels * c..(i + 1) * self.levels * c].to_vec())
            .collect();
        blocks.push(self.log_prior.clone());
        for block in &mut blocks {
            for row in block.chunks_mut(c) {
                let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                row.iter_mut().for_each(|l| *l -= max);
            }
        }
        blocks
    }
}

/// Index of the largest value (the first one on ties).
pub fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// The exponent gamma that makes the median normalised log-product of the winning class on
/// `train` equal `ln target_product` (at most 1).
pub fn auto_exponent(nb: &NaiveBayes, train: &Observations, target_product: f64) -> f64 {
    let blocks = nb.normalised_blocks();
    let c = nb.classes;
    let mut winners: Vec<f64> = (0..train.len())
        .map(|n| {
            let values = train.image(n);
            let y = nb.predict(values);
            let obs: f64 = values
                .iter()
                .enumerate()
                .map(|(i, &v)| blocks[i][usize::from(v) * c + y])
                .sum();
            obs + blocks[nb.features][y]
        })
        .collect();
    winners.sort_by(f64::total_cmp);
    let median = winners[winners.len() / 2];
    if median >= 0.0 {
        1.0
    } else {
        (target_product.ln() / median).min(1.0)
    }
}

/// Quantise a probability to a B-bit word, clamped to `[1, 2^B - 1]`.
pub fn quantise_word(q: f64, bits: u32) -> u32 {
    let full = f64::from(1u32 << bits);
    ((q * full).round()).clamp(1.0, full - 1.0) as u32
}

/// Probability that a B-bit random number `R` (bit k, most significant first, is 1 with
/// probability `bias[k]`; unbiased when `bias` is `None`) is below the word `q`:
/// `P(R < Q) = sum_{k: Q_k = 1} P(R_k = 0) prod_{j < k} P(R_j = Q_j)`.
pub fn comparator_probability(q: u32, bits: u32, bias: Option<&[f64]>) -> f64 {
    let Some(bias) = bias else {
        return f64::from(q) / f64::from(1u32 << bits);
    };
    let mut p_equal_so_far = 1.0;
    let mut p_less = 0.0;
    for k in 0..bits {
        let q_k = (q >> (bits - 1 - k)) & 1 == 1;
        let p_one = bias[k as usize];
        if q_k {
            p_less += p_equal_so_far * (1.0 - p_one);
            p_equal_so_far *= p_one;
        } else {
            p_equal_so_far *= 1.0 - p_one;
        }
    }
    p_less
}

/// Likelihood words as read back from memory cells.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredWords {
    /// Words per block, `[v * classes + y]`.
    pub words: Vec<Vec<u32>>,
    /// Stored bits read back wrong.
    pub bit_errors: u64,
    /// Stored bits.
    pub bits: u64,
    /// Energy of reading every stored bit once (all rows), joules.
    pub read_energy_j: f64,
}

/// Program the ideal words into cells of `level` and read them back once.
pub fn store_words(
    ideal: &[Vec<u32>],
    word_bits: u32,
    level: &StorageLevel,
    config: &MachineConfig,
    stream_id: u64,
) -> Result<StoredWords> {
    let device = preset::load(&level.device, &level.overrides)
        .with_context(|| format!("storage level `{}`", level.label))?;
    let seed = config.seed;
    let read_energy = |g_s: f64| config.read_voltage_v.powi(2) * g_s * config.read_time_s;
    let threshold_s = match level.cell {
        CellKind::TwoT2R => 0.0,
        CellKind::OneT1R => {
            let mut rng = stream(seed, &[stream_id, u64::MAX]);
            let mut median = |high: bool| {
                let mut g: Vec<f64> = (0..REFERENCE_CELLS)
                    .map(|_| {
                        let mut s = device.fabricate(&mut rng);
                        device.program_binary(&mut s, high, &mut rng);
                        device.conductance_at(&s, 0.0)
                    })
                    .collect();
                g.sort_by(f64::total_cmp);
                g[REFERENCE_CELLS / 2]
            };
            (median(true) * median(false)).sqrt()
        }
    };
    let mut out = StoredWords {
        words: Vec::with_capacity(ideal.len()),
        bit_errors: 0,
        bits: 0,
        read_energy_j: 0.0,
    };
    for (b, block) in ideal.iter().enumerate() {
        let mut rng = stream(seed, &[stream_id, b as u64]);
        let mut words = Vec::with_capacity(block.len());
        for &word in block {
            let mut read_word = 0u32;
            for k in 0..word_bits {
                let bit = (word >> k) & 1 == 1;
                let mut cell = |high: bool| {
                    let mut s = device.fabricate(&mut rng);
                    device.program_binary(&mut s, high, &mut rng);
                    device.read(&mut s, 0.0, &mut rng)
                };
                let (sensed, energy) = match level.cell {
                    CellKind::TwoT2R => {
                        let (g_bit, g_complement) = (cell(bit), cell(!bit));
                        (
                            g_bit > g_complement,
                            read_energy(g_bit) + read_energy(g_complement),
                        )
                    }
                    CellKind::OneT1R => {
                        let g = cell(bit);
                        (g > threshold_s, read_energy(g))
                    }
                };
                out.read_energy_j += energy;
                out.bits += 1;
                out.bit_errors += u64::from(sensed != bit);
                read_word |= u32::from(sensed) << k;
            }
            words.push(read_word);
        }
        out.words.push(words);
    }
    Ok(out)
}

/// The random sources of all streams: per (block, class) stream, the bias of each of the B
/// junctions (most significant bit first), or `None` for ideal bits.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamBiases {
    /// `[block][class]` -> biases of the B bits.
    pub biases: Option<Vec<Vec<Vec<f64>>>>,
    /// Energy per random bit, joules.
    pub energy_per_bit_j: f64,
}

/// Build the random sources of `blocks x classes` streams of B bits each.
pub fn stream_biases(
    source: RngSource,
    blocks: usize,
    classes: usize,
    config: &MachineConfig,
    stream_id: u64,
) -> Result<StreamBiases> {
    if source == RngSource::Ideal {
        return Ok(StreamBiases {
            biases: None,
            energy_per_bit_j: 0.0,
        });
    }
    let m = &config.mram;
    let model = load_mram(&m.device, &m.overrides).context("mram.device")?;
    let v50 = fifty_percent_amplitude_v(
        &model,
        &model.nominal_state(false),
        m.generator.pulse_width_s,
    )?;
    let bits = config.word_bits as usize;
    let junctions = fabricate_junctions(&model, config.seed, stream_id, blocks * classes * bits);
    let mut energy_j = 0.0;
    let mut energy_bits = 0u64;
    let mut biases = vec![vec![Vec::with_capacity(bits); classes]; blocks];
    for (j, state) in junctions.iter().enumerate() {
        let mut rng = stream(config.seed, &[stream_id, j as u64]);
        let amplitude_v = match source {
            RngSource::MramCalibrated => {
                calibrate_amplitude(&model, state, v50, m.generator, &m.calibration, &mut rng).0
            }
            _ => v50,
        };
        let mut generator = MramBitGenerator::new(&model, state.clone(), amplitude_v, m.generator);
        if j < blocks * classes {
            for _ in 0..m.energy_bits {
                generator.next_bit(&mut rng);
            }
            energy_j += generator.ledger().energy_j;
            energy_bits += generator.ledger().bits;
        }
        biases[j / (classes * bits)][(j / bits) % classes]
            .push(generator.model_probability_of_one());
    }
    Ok(StreamBiases {
        biases: Some(biases),
        energy_per_bit_j: energy_j / energy_bits as f64,
    })
}

/// A Bayesian machine: stored words and random sources turned into per-stream probabilities.
#[derive(Clone, Debug, PartialEq)]
pub struct BayesianMachine {
    /// Number of classes.
    pub classes: usize,
    /// Observations per image (the prior is one more block).
    pub features: usize,
    /// `ln P(R < Q)` per block, `[v * classes + y]`.
    pub log_p: Vec<Vec<f64>>,
    /// `P(R < Q)` per block, `[v * classes + y]`.
    pub p: Vec<Vec<f64>>,
    /// Stored words per block.
    pub words: Vec<Vec<u32>>,
    /// Word length, bits.
    pub word_bits: u32,
    /// Random sources.
    pub sources: StreamBiases,
}

impl BayesianMachine {
    /// Assemble a machine from stored words and random sources.
    pub fn new(
        classes: usize,
        words: Vec<Vec<u32>>,
        word_bits: u32,
        sources: StreamBiases,
    ) -> Self {
        let p: Vec<Vec<f64>> = words
            .iter()
            .enumerate()
            .map(|(b, block)| {
                block
                    .iter()
                    .enumerate()
                    .map(|(k, &q)| {
                        let bias = sources
                            .biases
                            .as_ref()
                            .map(|s| s[b][k % classes].as_slice());
                        comparator_probability(q, word_bits, bias)
                    })
                    .collect()
            })
            .collect();
        let log_p = p
            .iter()
            .map(|b| b.iter().map(|x| x.ln()).collect())
            .collect();
        Self {
            classes,
            features: words.len() - 1,
            log_p,
            p,
            words,
            word_bits,
            sources,
        }
    }

    /// Blocks of the image: its observations, then the prior (value 0).
    fn rows<'a>(&self, values: &'a [u8]) -> impl Iterator<Item = (usize, usize)> + 'a {
        let prior = std::iter::once((self.features, 0));
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| (i, usize::from(v)))
            .chain(prior)
    }

    /// `ln P_y`: log probability of a 1 in each class's output stream.
    pub fn class_log_probability(&self, values: &[u8]) -> Vec<f64> {
        let c = self.classes;
        let mut s = vec![0.0; c];
        for (b, v) in self.rows(values) {
            for (acc, l) in s.iter_mut().zip(&self.log_p[b][v * c..(v + 1) * c]) {
                *acc += l;
            }
        }
        s
    }

    /// The infinite-stream decision: argmax of `P_y`.
    pub fn limit_decision(&self, values: &[u8]) -> usize {
        argmax(&self.class_log_probability(values))
    }

    /// Counts of ones per class after each stream length (nested: one stream of
    /// `lengths.last()` cycles observed at each length), drawn exactly as binomials.
    pub fn counts<R: Rng + ?Sized>(
        &self,
        values: &[u8],
        lengths: &[u64],
        rng: &mut R,
    ) -> Vec<Vec<u64>> {
        let p: Vec<f64> = self
            .class_log_probability(values)
            .iter()
            .map(|l| l.exp())
            .collect();
        let mut counts = vec![0u64; self.classes];
        let mut previous = 0;
        lengths
            .iter()
            .map(|&len| {
                for (count, &py) in counts.iter_mut().zip(&p) {
                    *count += binomial(len - previous, py, rng);
                }
                previous = len;
                counts.clone()
            })
            .collect()
    }

    /// Counts of ones per class after `length` cycles, simulating every random bit, every
    /// comparator and every AND gate (for checking the binomial shortcut).
    pub fn bitwise_counts<R: Rng + ?Sized>(
        &self,
        values: &[u8],
        length: u64,
        rng: &mut R,
    ) -> Vec<u64> {
        let c = self.classes;
        let rows: Vec<(usize, usize)> = self.rows(values).collect();
        let mut counts = vec![0u64; c];
        for _ in 0..length {
            for (y, count) in counts.iter_mut().enumerate() {
                let all_ones = rows.iter().all(|&(b, v)| {
                    let bias = self.sources.biases.as_ref().map(|s| s[b][y].as_slice());
                    self.random_word(bias, rng) < self.words[b][v * c + y]
                });
                *count += u64::from(all_ones);
            }
        }
        counts
    }

    fn random_word<R: Rng + ?Sized>(&self, bias: Option<&[f64]>, rng: &mut R) -> u32 {
        let mut r = 0u32;
        for k in 0..self.word_bits {
            let p_one = bias.map_or(0.5, |b| b[k as usize]);
            r = (r << 1) | u32::from(rng.random::<f64>() < p_one);
        }
        r
    }
}

/// One Binomial(n, p) draw (0 for p = 0).
fn binomial<R: Rng + ?Sized>(n: u64, p: f64, rng: &mut R) -> u64 {
    if n == 0 || p <= 0.0 {
        return 0;
    }
    Binomial::new(n, p.min(1.0)).map_or(0, |d| d.sample(rng))
}

/// The winner of a count vector, ties broken uniformly at random.
pub fn decide<R: Rng + ?Sized>(counts: &[u64], rng: &mut R) -> usize {
    let max = counts.iter().copied().max().unwrap_or(0);
    let tied: Vec<usize> = (0..counts.len()).filter(|&y| counts[y] == max).collect();
    tied[rng.random_range(0..tied.len())]
}

/// Results of one (memory, random source) machine.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MachineCase {
    /// Memory label.
    pub storage: String,
    /// Random source.
    pub rng: RngSource,
    /// Measured bit error rate of the stored words.
    pub bit_error_rate: f64,
    /// Accuracy at each stream length (mean over repeats).
    pub accuracy: Vec<f64>,
    /// Accuracy of the infinite-stream decision.
    pub limit_accuracy: f64,
    /// Fraction of test images whose infinite-stream decision equals the exact naive Bayes.
    pub limit_agreement_with_exact: f64,
    /// Memory read energy per decision, joules.
    pub memory_energy_per_decision_j: f64,
    /// Random-bit energy per decision at each stream length, joules.
    pub rng_energy_per_decision_j: Vec<f64>,
}

/// Everything the Bayesian-machine figures need.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MachineReport {
    /// Stream lengths L.
    pub stream_lengths: Vec<u64>,
    /// Accuracy of the exact floating-point naive Bayes.
    pub exact_accuracy: f64,
    /// Exponent gamma applied to the normalised likelihoods.
    pub exponent: f64,
    /// Observations per image.
    pub features: usize,
    /// Likelihood streams (blocks x classes).
    pub streams: usize,
    /// Test images.
    pub test_images: usize,
    /// One entry per (memory, random source).
    pub cases: Vec<MachineCase>,
}

/// Run the Bayesian-machine experiment on MNIST-10k.
pub fn run_machine(config: &MachineConfig) -> Result<MachineReport> {
    config.validate()?;
    let split = mnist10k()?;
    let test = split.test.take(config.test_images);
    run_machine_on(config, &split.train, &test)
}

/// Run the Bayesian-machine experiment on the given training and test sets.
pub fn run_machine_on(
    config: &MachineConfig,
    train: &Dataset,
    test: &Dataset,
) -> Result<MachineReport> {
    config.validate()?;
    let train_obs = observe(train, config.pool, config.pixel_levels)?;
    let test_obs = observe(test, config.pool, config.pixel_levels)?;
    let classes = train.classes().max(test.classes());
    let nb = NaiveBayes::fit(&train_obs, classes, config.laplace_alpha);
    let exact: Vec<usize> = (0..test_obs.len())
        .map(|n| nb.predict(test_obs.image(n)))
        .collect();
    let exact_accuracy = accuracy_of(&exact, &test_obs.labels);
    let exponent = config
        .exponent
        .unwrap_or_else(|| auto_exponent(&nb, &train_obs, config.target_product));
    let ideal_words: Vec<Vec<u32>> = nb
        .normalised_blocks()
        .iter()
        .map(|b| {
            b.iter()
                .map(|l| quantise_word((exponent * l).exp(), config.word_bits))
                .collect()
        })
        .collect();
    let blocks = ideal_words.len();
    let mut cases = Vec::new();
    for (s, level) in config.storage.iter().enumerate() {
        let stored = store_words(
            &ideal_words,
            config.word_bits,
            level,
            config,
            100 + s as u64,
        )?;
        for (r, &source) in config.rng.iter().enumerate() {
            let sources = stream_biases(source, blocks, classes, config, 200 + r as u64)?;
            let machine =
                BayesianMachine::new(classes, stored.words.clone(), config.word_bits, sources);
            cases.push(evaluate_case(
                &machine,
                &test_obs,
                &exact,
                config,
                level,
                source,
                &stored,
                (s * config.rng.len() + r) as u64,
            ));
        }
    }
    Ok(MachineReport {
        stream_lengths: config.stream_lengths.clone(),
        exact_accuracy,
        exponent,
        features: nb.features,
        streams: blocks * classes,
        test_images: test_obs.len(),
        cases,
    })
}

fn accuracy_of(decisions: &[usize], labels: &[u8]) -> f64 {
    let correct = decisions
        .iter()
        .zip(labels)
        .filter(|&(&d, &l)| d == usize::from(l))
        .count();
    correct as f64 / labels.len() as f64
}

#[allow(clippy::too_many_arguments)]
fn evaluate_case(
    machine: &BayesianMachine,
    test: &Observations,
    exact: &[usize],
    config: &MachineConfig,
    level: &StorageLevel,
    source: RngSource,
    stored: &StoredWords,
    case_id: u64,
) -> MachineCase {
    let lengths = &config.stream_lengths;
    let mut correct = vec![0u64; lengths.len()];
    let mut limit_correct = 0u64;
    let mut agree = 0u64;
    for (n, &exact_n) in exact.iter().enumerate() {
        let values = test.image(n);
        let label = usize::from(test.labels[n]);
        let limit = machine.limit_decision(values);
        limit_correct += u64::from(limit == label);
        agree += u64::from(limit == exact_n);
        for rep in 0..config.repeats {
            let mut rng = stream(config.seed, &[300, case_id, rep as u64, n as u64]);
            for (l, counts) in machine.counts(values, lengths, &mut rng).iter().enumerate() {
                correct[l] += u64::from(decide(counts, &mut rng) == label);
            }
        }
    }
    let trials = (test.len() * config.repeats) as f64;
    let streams = (machine.log_p.len() * machine.classes) as f64;
    // One B-bit word per stream: bits read from memory per decision and random bits per cycle.
    let stream_bits = streams * f64::from(config.word_bits);
    MachineCase {
        storage: level.label.clone(),
        rng: source,
        bit_error_rate: stored.bit_errors as f64 / stored.bits as f64,
        accuracy: correct.iter().map(|&c| c as f64 / trials).collect(),
        limit_accuracy: limit_correct as f64 / test.len() as f64,
        limit_agreement_with_exact: agree as f64 / test.len() as f64,
        memory_energy_per_decision_j: stored.read_energy_j / stored.bits as f64 * stream_bits,
        rng_energy_per_decision_j: lengths
            .iter()
            .map(|&len| len as f64 * stream_bits * machine.sources.energy_per_bit_j)
            .collect(),
    }
}

/// Draw the Bayesian-machine figures into `dir`: `machine_accuracy_storage` (accuracy
/// versus stream length for each memory, first random source), `machine_accuracy_rng`
/// (each random source, first memory) and `machine_energy` (energy per decision).
pub fn plot_machine(report: &MachineReport, dir: &Path) -> Result<()> {
    let lengths: Vec<f64> = report.stream_lengths.iter().map(|&l| l as f64).collect();
    let exact_line = |color| {
        Series::new(
            format!("exact naive Bayes ({:.1} %)", 100.0 * report.exact_accuracy),
            lengths
                .iter()
                .map(|&l| (l, 100.0 * report.exact_accuracy))
                .collect(),
            Style::Line,
            color,
        )
    };
    let first_rng = report.cases.first().map(|c| c.rng);
    let first_storage = report.cases.first().map(|c| c.storage.clone());
    let accuracy_figure =
        |title: &str, cases: Vec<&MachineCase>, label: &dyn Fn(&MachineCase) -> String| {
            let mut fig = Figure::new(title, "bit-stream length L (cycles)", "test accuracy (%)");
            fig.log_x = true;
            fig.y_range = Some((0.0, 100.0));
            fig.series = cases
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    Series::new(
                        label(c),
                        lengths
                            .iter()
                            .zip(&c.accuracy)
                            .map(|(&l, &a)| (l, 100.0 * a))
                            .collect(),
                        Style::LinePoints,
                        i,
                    )
                })
                .collect();
            fig.series.push(exact_line(8));
            fig
        };
    let by_storage: Vec<&MachineCase> = report
        .cases
        .iter()
        .filter(|c| Some(c.rng) == first_rng)
        .collect();
    let fig = accuracy_figure(
        "Bayesian machine on MNIST-10k: memory bit errors",
        by_storage,
        &|c| format!("{} (BER {:.1e})", c.storage, c.bit_error_rate),
    );
    save(&fig, &dir.join("machine_accuracy_storage"))?;
    let by_rng: Vec<&MachineCase> = report
        .cases
        .iter()
        .filter(|c| Some(&c.storage) == first_storage.as_ref())
        .collect();
    let fig = accuracy_figure(
        "Bayesian machine on MNIST-10k: random source",
        by_rng,
        &|c| c.rng.label().to_string(),
    );
    save(&fig, &dir.join("machine_accuracy_rng"))?;

    let mut energy = Figure::new(
        "Bayesian machine: energy per decision",
        "bit-stream length L (cycles)",
        "energy per decision (J)",
    );
    energy.log_x = true;
    energy.log_y = true;
    let mut color = 0;
    for c in report
        .cases
        .iter()
        .filter(|c| Some(&c.storage) == first_storage.as_ref())
    {
        if c.rng_energy_per_decision_j.iter().all(|&e| e > 0.0) {
            energy.series.push(Series::new(
                c.rng.label(),
                lengths
                    .iter()
                    .zip(&c.rng_energy_per_decision_j)
                    .map(|(&l, &e)| (l, e))
                    .collect(),
                Style::LinePoints,
                color,
            ));
            color += 1;
        }
    }
    for c in report.cases.iter().filter(|c| Some(c.rng) == first_rng) {
        if c.memory_energy_per_decision_j > 0.0 {
            energy.series.push(Series::new(
                format!("memory reads, {}", c.storage),
                lengths
                    .iter()
                    .map(|&l| (l, c.memory_energy_per_decision_j))
                    .collect(),
                Style::Line,
                color,
            ));
            color += 1;
        }
    }
    save(&energy, &dir.join("machine_energy"))
}
