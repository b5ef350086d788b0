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
//!
//! Everything here takes built objects (data sets, device models) and typed parameters; the
//! study that names presets, runs the sweep and draws the figures is
//! `studies::bayesian_machine`.

use super::mram_rng::{
    CalibrationConfig, GeneratorConfig, MramBitGenerator, calibrate_amplitude, fabricate_junctions,
    fifty_percent_amplitude_v,
};
use crate::data::Dataset;
use crate::device::mram::Mram;
use crate::device::{AnyDevice, Device};
use crate::rng::stream;
use anyhow::{Result, ensure};
use rand::{Rng, RngExt};
use rand_distr::{Binomial, Distribution};
use serde::{Deserialize, Serialize};

/// Longest supported likelihood word, bits.
pub const MAX_WORD_BITS: u32 = 24;
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
    ensure!(
        data.channels == 1,
        "the Bayesian machine observes grey-scale images, but the data set's images have {} \
         channels",
        data.channels
    );
    ensure!(
        pool >= 1 && data.rows.is_multiple_of(pool) && data.cols.is_multiple_of(pool),
        "pool: must divide the image size {}x{}",
        data.rows,
        data.cols
    );
    ensure!(
        (2..=256).contains(&levels),
        "pixel_levels: must be in 2..=256"
    );
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

/// The memory that holds the likelihood words.
#[derive(Clone, Copy, Debug)]
pub struct LikelihoodMemory<'a> {
    /// Model of every cell.
    pub device: &'a AnyDevice,
    /// Cell arrangement of one bit.
    pub cell: CellKind,
    /// Read voltage, volts.
    pub read_voltage_v: f64,
    /// Read time, seconds.
    pub read_time_s: f64,
}

/// Program the ideal words into cells of `memory` and read them back once (streams
/// `(seed, [stream_id, ..])`).
pub fn store_words(
    ideal: &[Vec<u32>],
    word_bits: u32,
    memory: &LikelihoodMemory,
    seed: u64,
    stream_id: u64,
) -> StoredWords {
    let device = memory.device;
    let read_energy = |g_s: f64| memory.read_voltage_v.powi(2) * g_s * memory.read_time_s;
    let threshold_s = match memory.cell {
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
                let (sensed, energy) = match memory.cell {
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
    out
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

impl StreamBiases {
    /// Exactly unbiased independent bits, free of energy.
    pub fn ideal() -> Self {
        Self {
            biases: None,
            energy_per_bit_j: 0.0,
        }
    }
}

/// MRAM junctions as the comparators' random source.
#[derive(Clone, Copy, Debug)]
pub struct MramSource<'a> {
    /// The MTJ model.
    pub model: &'a Mram,
    /// How each junction generates bits.
    pub generator: GeneratorConfig,
    /// Per-junction calibration of the pulse amplitude; `None`: every junction at the
    /// nominal 50 % amplitude.
    pub calibration: Option<CalibrationConfig>,
    /// Bits generated by each of the first `blocks x classes` junctions to measure the
    /// energy per bit.
    pub energy_bits: usize,
}

/// Build MRAM random sources for `blocks x classes` streams of `word_bits` junctions each
/// (streams `(seed, [stream_id, ..])`).
pub fn mram_stream_biases(
    source: &MramSource,
    blocks: usize,
    classes: usize,
    word_bits: u32,
    seed: u64,
    stream_id: u64,
) -> Result<StreamBiases> {
    let model = source.model;
    let v50 = fifty_percent_amplitude_v(
        model,
        &model.nominal_state(false),
        source.generator.pulse_width_s,
    )?;
    let bits = word_bits as usize;
    let junctions = fabricate_junctions(model, seed, stream_id, blocks * classes * bits);
    let mut energy_j = 0.0;
    let mut energy_bits = 0u64;
    let mut biases = vec![vec![Vec::with_capacity(bits); classes]; blocks];
    for (j, state) in junctions.iter().enumerate() {
        let mut rng = stream(seed, &[stream_id, j as u64]);
        let amplitude_v = match &source.calibration {
            Some(calibration) => {
                calibrate_amplitude(model, state, v50, source.generator, calibration, &mut rng).0
            }
            None => v50,
        };
        let mut generator =
            MramBitGenerator::new(model, state.clone(), amplitude_v, source.generator);
        if j < blocks * classes {
            for _ in 0..source.energy_bits {
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
