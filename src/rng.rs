//! Reproducible random streams.
//!
//! Every random draw in xbar comes from a generator derived from the experiment seed and
//! a path of indices (repeat, layer, device, sample, ...). Two calls with the same seed and
//! path give the same stream, whatever thread runs them, so results are bit-identical for
//! any rayon thread count.
//!
//! The first element of a path is a stream *tag* naming the purpose of the draws; every tag
//! is one of the constants below, so two purposes never share a stream by accident. A tag
//! used by several modules names one purpose they share on purpose.
//!
//! Two purposes that can be drawn under one seed in one run never share a tag value (the
//! test below checks it, per-index tag ranges included). The on-chip-training tags and the
//! Bayesian studies' tags keep the small numbers they had before this registry, so that
//! their reference results stay identical: some values are shared between kinds of
//! experiment that never run in one process under one seed (e.g. `1` is the epoch shuffle of
//! on-chip training, the Bayes-by-backprop training of `bayesian_nn` and the calibration
//! phase of `mram_rng`); every such tag lists the kinds that draw it.

use rand::SeedableRng;
pub use rand::rngs::Xoshiro256PlusPlus as XbarRng;

// Stream tags (first path element), grouped by the seed they are drawn under.

/// Experiment driver: the seed of each repeat's network initialisation, under the job seed
/// (the inference and on-chip-training kinds).
pub const EXPERIMENT_INIT_STREAM: u64 = 0x1_417;
/// Experiment driver: the seed of each repeat's training (mini-batch order, nudging signs),
/// under the job seed (the inference and on-chip-training kinds).
pub const EXPERIMENT_TRAIN_STREAM: u64 = 0x7_2A1;
/// Experiment driver: the seed of each (repeat, point)'s hardware (fabrication,
/// programming, pulses, reads), under the job seed.
pub const EXPERIMENT_HARDWARE_STREAM: u64 = 0x4_A2D;
/// `nn::Mlp::random`: the weight initialisation, per layer.
pub const MLP_INIT_STREAM: u64 = 0x1A17;
/// `nn::QuantizedMlp::random`: the hidden-weight initialisation, per layer.
pub const QUANTIZED_INIT_STREAM: u64 = 0xB1_1A17;
/// `nn::inject_bit_errors`: the bit-error draws, per layer.
pub const BIT_ERROR_STREAM: u64 = 0xB1_7E44;
/// `nn::train_quantized`: the augmentation shifts, per epoch and mini-batch.
pub const QUANTIZED_SHIFT_STREAM: u64 = 0xB1_5419;
/// On-chip training (equilibrium propagation and analog SGD): the shuffle of each epoch.
/// One tag for both, so the two rules trained from one seed see the same mini-batches.
pub const EPOCH_SHUFFLE_STREAM: u64 = 1;
/// Equilibrium propagation: the random signs of the nudging β, per epoch and mini-batch.
pub const EP_BETA_SIGN_STREAM: u64 = 2;
/// Analog SGD (`train::sgd::initial_layers`): the first of the weight-initialisation tags,
/// layer `k` using `SGD_INIT_STREAM + k`.
pub const SGD_INIT_STREAM: u64 = 100;
/// Metaplastic BNN: the hidden-weight and batch-norm initialisation, per layer.
pub const METAPLASTIC_INIT_STREAM: u64 = 0x3E7A_0001;
/// Metaplastic BNN: the seed of layer `l`'s 2T2R tiles (fabrication, programming,
/// sensing), key `(seed, [this, l])`.
pub const METAPLASTIC_TILE_STREAM: u64 = 0x3E7A_0004;
/// Permuted MNIST: the shuffle of each task's epochs.
pub const PMNIST_SHUFFLE_STREAM: u64 = 0x3E7A_0010;
/// Digital backprop (`nn::train`): the shuffle of each epoch's mini-batches.
pub const BACKPROP_SHUFFLE_STREAM: u64 = 0x5_4FF1E;
/// Digital backprop: the hardware-aware weight noise of each mini-batch.
pub const BACKPROP_NOISE_STREAM: u64 = 0x4_0153;
/// Digital backprop: the random image shifts of each mini-batch (data augmentation).
pub const BACKPROP_SHIFT_STREAM: u64 = 0x5_41F7;
/// Digital training (`nn::backprop` and `nn::train_quantized`): the random horizontal
/// flips of each mini-batch (data augmentation, `train.flip`).
pub const TRAIN_FLIP_STREAM: u64 = 0xF_11B;
/// Permuted MNIST (`data::tasks`): the pixel permutation of each task.
pub const PERMUTATION_STREAM: u64 = 0x9E_2A17;
/// Sequential networks (`nn::sequential`): the weight and bias initialisation, per layer.
pub const SEQUENTIAL_INIT_STREAM: u64 = 0x5E9_1A17;

// The Bayesian network (`bayes::bnn`, kind `bayesian_nn`), under the study's seed.

/// `bayes::bnn::train_mlp` of the deterministic network: path `[tag, 0, layer]` for the
/// initial weights, `[tag, 1, epoch]` for the shuffle, `[tag, 2, epoch, batch]` (unused:
/// no weight sample).
pub const BNN_DETERMINISTIC_TRAIN_STREAM: u64 = 0;
/// `bayes::bnn::train_mlp` of the Bayesian network (Bayes by backprop): the same paths, the
/// last one drawing each mini-batch's weight sample.
pub const BNN_BAYESIAN_TRAIN_STREAM: u64 = 1;
/// `bayes::bnn::DeviceSampler`: the device pairs that measure a layer's pair noise, per
/// layer.
pub const BNN_PAIR_NOISE_STREAM: u64 = 20;
/// `bayes::bnn::EvalSet`: the uniform-noise images.
pub const BNN_NOISE_IMAGES_STREAM: u64 = 30;
/// `bayesian_nn`: the Bayesian network's device samples versus K (sample `k` from
/// `[tag, k, layer]`, its reads from `[tag, k, u64::MAX, first image]`, as every predictive
/// below).
pub const BNN_DEVICE_VS_K_STREAM: u64 = 40;
/// `bayesian_nn`: the Bayesian network's digital Monte Carlo samples versus K.
pub const BNN_DIGITAL_VS_K_STREAM: u64 = 41;
/// `bayesian_nn`: the deterministic network's device copies versus K.
pub const BNN_DETERMINISTIC_DEVICE_VS_K_STREAM: u64 = 42;
/// `bayesian_nn`: the deterministic network read digitally (draws nothing: `sigma = 0`).
pub const BNN_DETERMINISTIC_DIGITAL_STREAM: u64 = 43;
/// `bayesian_nn`: one device copy of the deterministic network (its detail figures).
pub const BNN_DETERMINISTIC_ONE_COPY_STREAM: u64 = 44;
/// `bayesian_nn`: the device-noise sweep, the first of its tags: noise scale `i` draws the
/// Bayesian network's samples from `BNN_NOISE_SWEEP_STREAM + 2 i` and the deterministic
/// network's copy from `BNN_NOISE_SWEEP_STREAM + 2 i + 1`.
pub const BNN_NOISE_SWEEP_STREAM: u64 = 100;
/// `bayes::bnn::predictive_mean`: its posterior samples (a library entry point no study
/// calls; its own value, so it never replays a training stream of the same seed).
pub const BNN_PREDICTIVE_STREAM: u64 = 0xBA7E_0001;

// The Bayesian machine (`bayes::machine`, kind `bayesian_machine`) and the MRAM random bits
// (`bayes::mram_rng`, kind `mram_rng`), under the study's seed.

/// `bayes::mram_rng::fabricate_junctions`: path `[tag, population, junction]`.
pub const MRAM_FABRICATION_STREAM: u64 = 0;
/// `bayesian_machine`: the storage of the likelihood words, the first of its tags: storage
/// level `s` uses `MACHINE_STORAGE_STREAM + s` (`bayes::machine::store_words`).
pub const MACHINE_STORAGE_STREAM: u64 = 100;
/// `bayesian_machine`: the MRAM random sources, the first of their tags: source `r` uses
/// `MACHINE_SOURCE_STREAM + r` (calibration and energy bits per junction, and the
/// population of its junctions).
pub const MACHINE_SOURCE_STREAM: u64 = 200;
/// Storage levels or random sources a `bayesian_machine` study may list: the span of the
/// tags `MACHINE_STORAGE_STREAM + s` and `MACHINE_SOURCE_STREAM + r`.
pub const MACHINE_MAX_CASES: u64 = 100;
/// `bayesian_machine`: the stochastic decisions, per case, repeat and image.
pub const MACHINE_DECISION_STREAM: u64 = 300;
/// `mram_rng`: the per-junction calibration of the pulse amplitude.
pub const MRAM_CALIBRATION_STREAM: u64 = 1;
/// `mram_rng`: the bits of the junctions at the shared nominal amplitude.
pub const MRAM_UNCALIBRATED_STREAM: u64 = 2;
/// `mram_rng`: the bits of the calibrated junctions.
pub const MRAM_CALIBRATED_STREAM: u64 = 3;
/// `mram_rng`: the read-disturb sweep, per read voltage.
pub const MRAM_READ_DISTURB_STREAM: u64 = 5;
/// `mram_rng`: the amplitude sweep, the first of its tags: amplitude factor `i` uses
/// `MRAM_AMPLITUDE_SWEEP_STREAM + i`.
pub const MRAM_AMPLITUDE_SWEEP_STREAM: u64 = 4000;

// The MCMC sampler on RRAM (`bayes::mcmc`, kind `mcmc_wdbc`), under the study's seed.

/// `mcmc_wdbc`: one chain (fabrication, programming, reads, acceptance draws), path
/// `[tag, chain index]`.
pub const MCMC_CHAIN_STREAM: u64 = 0x3C3C_0001;
/// `mcmc_wdbc`: the test-set reads of one chain's stored samples, path `[tag, chain index]`.
pub const MCMC_PREDICTIVE_STREAM: u64 = 0x3C3C_0002;

// `xbar fit` (the command, not an experiment kind), under its `--seed`.

/// `xbar fit`: the simulated devices of the figure, path `[tag, device]` (`u64::MAX` for the
/// noise-free nominal device).
pub const FIT_SIMULATION_STREAM: u64 = 0xF17_0001;

/// SplitMix64 finaliser (Steele, Lea & Flood, OOPSLA 2014): a bijective 64-bit mixer.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Derive a 64-bit key from a seed and a path of stream indices.
pub fn stream_key(seed: u64, path: &[u64]) -> u64 {
    path.iter()
        .fold(splitmix64(seed), |key, &index| child_key(key, index))
}

/// The key of stream `index` under the stream of key `key`: `stream_key(seed, path)`
/// followed by `child_key(·, index)` is `stream_key(seed, path + [index])`, so a loop over
/// many sibling streams derives their common prefix once.
pub fn child_key(key: u64, index: u64) -> u64 {
    splitmix64(key ^ splitmix64(index))
}

/// The generator of the stream of key `key` (from [`stream_key`] / [`child_key`]).
pub fn stream_of_key(key: u64) -> XbarRng {
    XbarRng::seed_from_u64(key)
}

/// A generator for the stream `path` of experiment `seed`.
///
/// ```
/// use rand::RngExt;
/// let a: f64 = xbar::rng::stream(42, &[0, 3]).random();
/// let b: f64 = xbar::rng::stream(42, &[0, 3]).random();
/// let c: f64 = xbar::rng::stream(42, &[0, 4]).random();
/// assert_eq!(a, b);
/// assert_ne!(a, c);
/// ```
pub fn stream(seed: u64, path: &[u64]) -> XbarRng {
    stream_of_key(stream_key(seed, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child key extends the path by one index: the read path derives the common
    /// prefix of a chunk's per-vector streams once.
    #[test]
    fn child_key_appends_one_index_to_the_path() {
        for (seed, path, index) in [
            (0u64, vec![], 5u64),
            (42, vec![1, 2, 3], 0),
            (7, vec![9], 1 << 40),
        ] {
            let mut longer = path.clone();
            longer.push(index);
            assert_eq!(
                child_key(stream_key(seed, &path), index),
                stream_key(seed, &longer)
            );
        }
    }

    /// More layers than any network has: the span of the per-layer tags
    /// `SGD_INIT_STREAM + k`.
    const MAX_LAYERS: u64 = 1000;
    /// More noise scales than a `bayesian_nn` sweep lists (two tags each).
    const MAX_NOISE_SCALES: u64 = 50;
    /// More amplitude factors than an `mram_rng` sweep lists.
    const MAX_AMPLITUDES: u64 = 1000;

    /// One registry entry: its values `value..value + span` and the kinds of experiment
    /// that draw it (empty: any run may).
    struct Tag {
        name: &'static str,
        value: u64,
        span: u64,
        kinds: &'static [&'static str],
    }

    macro_rules! tag {
        ($name:ident) => {
            tag!($name, 1, &[])
        };
        ($name:ident, $span:expr, $kinds:expr) => {
            Tag {
                name: stringify!($name),
                value: $name,
                span: $span,
                kinds: $kinds,
            }
        };
    }

    const ON_CHIP: &[&str] = &["on_chip_training", "analog_sgd", "ep_mnist"];
    const BNN: &[&str] = &["bayesian_nn"];
    const MACHINE: &[&str] = &["bayesian_machine"];
    const MRAM: &[&str] = &["mram_rng"];

    #[test]
    fn stream_tags_are_distinct_within_every_run() {
        let tags = [
            tag!(EXPERIMENT_INIT_STREAM),
            tag!(EXPERIMENT_TRAIN_STREAM),
            tag!(EXPERIMENT_HARDWARE_STREAM),
            tag!(MLP_INIT_STREAM),
            tag!(QUANTIZED_INIT_STREAM),
            tag!(BIT_ERROR_STREAM),
            tag!(QUANTIZED_SHIFT_STREAM),
            tag!(EPOCH_SHUFFLE_STREAM, 1, ON_CHIP),
            tag!(EP_BETA_SIGN_STREAM, 1, ON_CHIP),
            tag!(SGD_INIT_STREAM, MAX_LAYERS, ON_CHIP),
            tag!(METAPLASTIC_INIT_STREAM),
            tag!(METAPLASTIC_TILE_STREAM),
            tag!(PMNIST_SHUFFLE_STREAM),
            tag!(BACKPROP_SHUFFLE_STREAM),
            tag!(BACKPROP_NOISE_STREAM),
            tag!(BACKPROP_SHIFT_STREAM),
            tag!(TRAIN_FLIP_STREAM),
            tag!(PERMUTATION_STREAM),
            tag!(SEQUENTIAL_INIT_STREAM),
            tag!(BNN_DETERMINISTIC_TRAIN_STREAM, 1, BNN),
            tag!(BNN_BAYESIAN_TRAIN_STREAM, 1, BNN),
            tag!(BNN_PAIR_NOISE_STREAM, 1, BNN),
            tag!(BNN_NOISE_IMAGES_STREAM, 1, BNN),
            tag!(BNN_DEVICE_VS_K_STREAM, 1, BNN),
            tag!(BNN_DIGITAL_VS_K_STREAM, 1, BNN),
            tag!(BNN_DETERMINISTIC_DEVICE_VS_K_STREAM, 1, BNN),
            tag!(BNN_DETERMINISTIC_DIGITAL_STREAM, 1, BNN),
            tag!(BNN_DETERMINISTIC_ONE_COPY_STREAM, 1, BNN),
            tag!(BNN_NOISE_SWEEP_STREAM, 2 * MAX_NOISE_SCALES, BNN),
            tag!(BNN_PREDICTIVE_STREAM),
            tag!(
                MRAM_FABRICATION_STREAM,
                1,
                &["bayesian_machine", "mram_rng"]
            ),
            tag!(MACHINE_STORAGE_STREAM, MACHINE_MAX_CASES, MACHINE),
            tag!(MACHINE_SOURCE_STREAM, MACHINE_MAX_CASES, MACHINE),
            tag!(MACHINE_DECISION_STREAM, 1, MACHINE),
            tag!(MRAM_CALIBRATION_STREAM, 1, MRAM),
            tag!(MRAM_UNCALIBRATED_STREAM, 1, MRAM),
            tag!(MRAM_CALIBRATED_STREAM, 1, MRAM),
            tag!(MRAM_READ_DISTURB_STREAM, 1, MRAM),
            tag!(MRAM_AMPLITUDE_SWEEP_STREAM, MAX_AMPLITUDES, MRAM),
            tag!(MCMC_CHAIN_STREAM),
            tag!(MCMC_PREDICTIVE_STREAM),
            tag!(FIT_SIMULATION_STREAM),
        ];
        let run_together = |a: &Tag, b: &Tag| {
            a.kinds.is_empty() || b.kinds.is_empty() || a.kinds.iter().any(|k| b.kinds.contains(k))
        };
        for (i, a) in tags.iter().enumerate() {
            for b in &tags[i + 1..] {
                let overlap = a.value < b.value + b.span && b.value < a.value + a.span;
                assert!(
                    !(overlap && run_together(a, b)),
                    "{} ({:#x}..+{}) and {} ({:#x}..+{}) are drawn in one run",
                    a.name,
                    a.value,
                    a.span,
                    b.name,
                    b.value,
                    b.span
                );
            }
        }
    }

    #[test]
    fn paths_that_differ_in_order_give_different_keys() {
        assert_ne!(stream_key(1, &[2, 3]), stream_key(1, &[3, 2]));
        assert_ne!(stream_key(1, &[0]), stream_key(1, &[0, 0]));
        assert_ne!(stream_key(1, &[]), stream_key(2, &[]));
    }
}
