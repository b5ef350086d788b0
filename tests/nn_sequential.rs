//! Sequential (convolutional) networks: LeNet-5 built from its PyTorch-style description,
//! run digitally and on crossbar tiles through the synapse seam.

use xbar::crossbar::TileConfig;
use xbar::data::mnist10k;
use xbar::device::{AnyDevice, preset};
use xbar::nn::Classifier;
use xbar::nn::Deployment;
use xbar::nn::sequential::spec::named;
use xbar::nn::sequential::{Sequential, Stage};
use xbar::synapses::{DigitalSynapses, InputScaling, SynapticLayer};

fn lenet5(seed: u64) -> Sequential<DigitalSynapses> {
    let (input, layers) = named("lenet5").unwrap();
    Sequential::random(input, &layers, seed).unwrap()
}

fn device(name: &str, overrides: &str) -> AnyDevice {
    preset::load(name, &toml::from_str(overrides).unwrap()).unwrap()
}

/// The first `n` MNIST-10k test images.
fn images(n: usize) -> Vec<f32> {
    let data = mnist10k().unwrap();
    data.test.images[..n * 784].to_vec()
}

/// LeNet-5 has PyTorch's parameter count: 156 + 2,416 + 48,120 + 10,164 + 850 = 61,706.
#[test]
fn lenet5_has_pytorchs_parameter_count() {
    let net = lenet5(1);
    let params: usize = net
        .stages()
        .iter()
        .map(|s| match s {
            Stage::Conv { synapses, bias, .. } | Stage::Linear { synapses, bias } => {
                synapses.inputs() * synapses.outputs() + bias.len()
            }
            _ => 0,
        })
        .sum();
    assert_eq!(params, 61_706);
    assert_eq!((net.inputs(), net.classes()), (784, 10));
}

/// On ideal devices and an ideal tile (no quantisation, no noise) the deployed network
/// computes the digital network's scores, up to f32 rounding of the conductance mapping.
#[test]
fn ideal_tiles_compute_the_digital_network() {
    let mut digital = lenet5(2);
    let deployment = Deployment {
        device: &device("ideal", ""),
        tile: TileConfig::ideal(),
        t_inference_s: 1.0,
        seed: 3,
    };
    let mut analog = deployment
        .program_sequential(&digital, InputScaling::AbsMax)
        .unwrap();
    let x = images(16);
    let (want, got) = (
        digital.logits(&x, 16).unwrap(),
        analog.logits(&x, 16).unwrap(),
    );
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (a, b) in got.iter().zip(&want) {
        assert!((a - b).abs() < 1e-4 * scale, "{a} vs {b}");
    }
}

/// Every output pixel is one read of its input patch: reading all patches of an image as
/// one batch gives the same scores as reading the image pixel by pixel (one patch per read),
/// on PCM tiles with programming noise, 8-bit DAC/ADC and no read noise.
#[test]
fn batched_patch_reads_equal_per_pixel_reads() {
    let digital = lenet5(4);
    let mut tile = TileConfig::default();
    tile.periphery.read_noise = false;
    let pcm = device("pcm_gst", "");
    let deployment = Deployment {
        device: &pcm,
        tile,
        t_inference_s: 60.0,
        seed: 5,
    };
    let mut net = deployment
        .program_sequential(&digital, InputScaling::AbsMax)
        .unwrap();
    let Stage::Conv {
        geometry, synapses, ..
    } = &mut net.stages_mut()[0]
    else {
        panic!("stage 0 is a convolution");
    };
    let x = images(1);
    let cols = geometry.im2col(&x, 1);
    let (pixels, patch, c_out) = (
        geometry.pixels(),
        geometry.patch_len(),
        geometry.out_channels,
    );
    let mut batched = vec![0f32; pixels * c_out];
    synapses.forward(&cols, pixels, &mut batched).unwrap();
    for p in 0..pixels {
        let mut one = vec![0f32; c_out];
        synapses
            .forward(&cols[p * patch..(p + 1) * patch], 1, &mut one)
            .unwrap();
        for (a, b) in one.iter().zip(&batched[p * c_out..(p + 1) * c_out]) {
            assert!(
                (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                "pixel {p}: {a} vs {b}"
            );
        }
    }
}

/// With read noise at every read, the deployed LeNet-5 gives bit-identical scores with 1 and
/// 2 threads (every random stream is named by seed, tile and read).
#[test]
fn noisy_tile_inference_is_identical_with_one_and_two_threads() {
    let digital = lenet5(6);
    let pcm = device("pcm_gst", "");
    let x = images(8);
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                let deployment = Deployment {
                    device: &pcm,
                    tile: TileConfig::default(),
                    t_inference_s: 3600.0,
                    seed: 7,
                };
                let mut net = deployment
                    .program_sequential(&digital, InputScaling::AbsMax)
                    .unwrap();
                let first = net.logits(&x, 8).unwrap();
                let second = net.logits(&x, 8).unwrap();
                assert_ne!(first, second, "no fresh read noise on the second read");
                (first, second)
            })
    };
    assert_eq!(run(1), run(2));
}
