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
/// Permuted MNIST (`data::tasks`): the pixel permutation of each task.
pub const PERMUTATION_STREAM: u64 = 0x9E_2A17;
/// Sequential networks (`nn::sequential`): the weight and bias initialisation, per layer.
pub const SEQUENTIAL_INIT_STREAM: u64 = 0x5E9_1A17;

/// SplitMix64 finaliser (Steele, Lea & Flood, OOPSLA 2014): a bijective 64-bit mixer.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Derive a 64-bit key from a seed and a path of stream indices.
pub fn stream_key(seed: u64, path: &[u64]) -> u64 {
    path.iter().fold(splitmix64(seed), |key, &index| {
        splitmix64(key ^ splitmix64(index))
    })
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
    XbarRng::seed_from_u64(stream_key(seed, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// More layers than any network has: the span of the per-layer tags
    /// `SGD_INIT_STREAM + k`.
    const MAX_LAYERS: u64 = 1000;

    #[test]
    fn stream_tags_are_distinct() {
        let tags = [
            EXPERIMENT_INIT_STREAM,
            EXPERIMENT_TRAIN_STREAM,
            EXPERIMENT_HARDWARE_STREAM,
            MLP_INIT_STREAM,
            QUANTIZED_INIT_STREAM,
            BIT_ERROR_STREAM,
            QUANTIZED_SHIFT_STREAM,
            EPOCH_SHUFFLE_STREAM,
            EP_BETA_SIGN_STREAM,
            SGD_INIT_STREAM,
            METAPLASTIC_INIT_STREAM,
            METAPLASTIC_TILE_STREAM,
            PMNIST_SHUFFLE_STREAM,
            BACKPROP_SHUFFLE_STREAM,
            BACKPROP_NOISE_STREAM,
            BACKPROP_SHIFT_STREAM,
            PERMUTATION_STREAM,
            SEQUENTIAL_INIT_STREAM,
        ];
        for (i, a) in tags.iter().enumerate() {
            for b in &tags[i + 1..] {
                assert_ne!(a, b, "two stream tags share the value {a:#x}");
            }
        }
        let sgd_layers = SGD_INIT_STREAM..SGD_INIT_STREAM + MAX_LAYERS;
        for tag in tags.iter().filter(|&&t| t != SGD_INIT_STREAM) {
            assert!(
                !sgd_layers.contains(tag),
                "{tag:#x} is an analog-SGD layer tag"
            );
        }
    }

    #[test]
    fn paths_that_differ_in_order_give_different_keys() {
        assert_ne!(stream_key(1, &[2, 3]), stream_key(1, &[3, 2]));
        assert_ne!(stream_key(1, &[0]), stream_key(1, &[0, 0]));
        assert_ne!(stream_key(1, &[]), stream_key(2, &[]));
    }
}
