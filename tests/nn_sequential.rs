//! Sequential (convolutional) networks: LeNet-5 built from its PyTorch-style description,
//! run digitally and on crossbar tiles through the synapse seam.

use rand::RngExt;
use xbar::crossbar::TileConfig;
use xbar::data::mnist10k;
use xbar::device::{AnyDevice, preset};
use xbar::nn::sequential::spec::{named, parse_layers};
use xbar::nn::sequential::train::train;
use xbar::nn::sequential::{Sequential, Stage};
use xbar::nn::{Classifier, Deployment, Optimizer, TrainConfig, evaluate};
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
        .program_sequential(&digital, InputScaling::AbsMax, &[])
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
        .program_sequential(&digital, InputScaling::AbsMax, &[])
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
                    .program_sequential(&digital, InputScaling::AbsMax, &[])
                    .unwrap();
                let first = net.logits(&x, 8).unwrap();
                let second = net.logits(&x, 8).unwrap();
                assert_ne!(first, second, "no fresh read noise on the second read");
                (first, second)
            })
    };
    assert_eq!(run(1), run(2));
}

/// A small network exercising every differentiable stage on 1 x 6 x 6 inputs.
fn small_net(pool: &str, seed: u64) -> Sequential<DigitalSynapses> {
    let text = format!(
        r#"layers = [ {{ conv2d = {{ out = 3, kernel = 3, padding = 1 }} }}, "relu",
                     {{ {pool} = 2 }}, {{ conv2d = {{ out = 2, kernel = 2, stride = 1 }} }},
                     "flatten", {{ linear = 5 }}, "relu", {{ linear = 3 }} ]"#
    );
    let table: toml::Table = toml::from_str(&text).unwrap();
    let layers = parse_layers(&table["layers"]).unwrap();
    Sequential::random([1, 6, 6], &layers, seed).unwrap()
}

/// Backpropagation through convolutions (stride, padding), ReLU, max and average pooling,
/// flatten and linear layers equals central finite differences of the mean cross-entropy,
/// ∂L/∂θ ≈ (L(θ + ε) − L(θ − ε)) / 2ε with ε = 1e-3, for every weight and bias (relative
/// error of the whole gradient below 1 %).
#[test]
fn backpropagation_matches_finite_differences() {
    let mut r = xbar::rng::stream(8, &[0]);
    let x: Vec<f32> = (0..3 * 36).map(|_| r.random_range(-1.0..1.0)).collect();
    let labels = [0u8, 2, 1];
    for pool in ["avgpool2d", "maxpool2d"] {
        let mut net = small_net(pool, 9);
        let (_, grads, _) = net.gradients(&x, &labels).unwrap();
        let (mut err2, mut norm2) = (0f64, 0f64);
        for (s, grad) in grads.iter().enumerate() {
            let Some(grad) = grad else { continue };
            let analytic: Vec<f32> = grad.weight.iter().chain(&grad.bias).copied().collect();
            for (k, &g) in analytic.iter().enumerate() {
                let loss_at = |delta: f32| {
                    let mut probe = net.clone();
                    let (Stage::Conv { synapses, bias, .. } | Stage::Linear { synapses, bias }) =
                        &mut probe.stages_mut()[s]
                    else {
                        unreachable!()
                    };
                    let n = synapses.weight().len();
                    if k < n {
                        synapses.weight_mut()[k] += delta;
                    } else {
                        bias[k - n] += delta;
                    }
                    probe.gradients(&x, &labels).unwrap().0
                };
                let eps = 1e-3;
                let fd = (loss_at(eps) - loss_at(-eps)) / (2.0 * f64::from(eps));
                err2 += (f64::from(g) - fd).powi(2);
                norm2 += fd * fd;
            }
        }
        let rel = (err2 / norm2).sqrt();
        assert!(rel < 1e-2, "{pool}: relative gradient error {rel}");
    }
}

/// LeNet-5 trained in xbar learns MNIST: after two epochs on 2,000 digits (Adam, batches of
/// 32) it classifies most of 1,000 unseen test digits; training is bit-identical with 1 and
/// 2 threads.
#[test]
fn lenet5_learns_mnist_identically_on_any_thread_count() {
    let data = mnist10k().unwrap();
    let (train_set, test_set) = (data.train.take(2000), data.test.take(1000));
    let config = TrainConfig {
        epochs: 2,
        batch_size: 32,
        optimizer: Optimizer::adam(1e-3),
        seed: 3,
        ..TrainConfig::default()
    };
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                let mut net = lenet5(10);
                train(&mut net, &train_set, &config, &mut |_| {}).unwrap();
                net
            })
    };
    let (mut one, two) = (run(1), run(2));
    for (a, b) in one.stages().iter().zip(two.stages()) {
        if let (Stage::Conv { synapses: wa, .. }, Stage::Conv { synapses: wb, .. })
        | (Stage::Linear { synapses: wa, .. }, Stage::Linear { synapses: wb, .. }) = (a, b)
        {
            assert_eq!(
                wa.weight(),
                wb.weight(),
                "weights differ between thread counts"
            );
        }
    }
    let accuracy = evaluate(&mut one, &test_set).unwrap();
    assert!(accuracy > 0.85, "LeNet-5 test accuracy {accuracy}");
}

/// A state dict survives a round trip through safetensors and through a `.npy` directory
/// bit for bit, and loading it into a fresh network of the same architecture gives the
/// same scores; an existing export is never overwritten.
#[test]
fn state_dicts_round_trip_through_safetensors_and_npy() {
    use xbar::nn::sequential::state_dict::{load, read_state_dict, save};
    let dir = tempfile::tempdir().unwrap();
    let mut net = lenet5(11);
    let x = images(4);
    let want = net.logits(&x, 4).unwrap();
    for name in ["lenet5.safetensors", "lenet5_npy"] {
        let path = dir.path().join(name);
        save(&net, &path).unwrap();
        let dict = read_state_dict(&path).unwrap();
        assert_eq!(dict, net.state_dict(), "{name}");
        assert_eq!(dict["0.weight"].shape, vec![6, 1, 5, 5]);
        assert_eq!(dict["7.weight"].shape, vec![120, 400]);
        let mut other = lenet5(12);
        assert_ne!(other.logits(&x, 4).unwrap(), want);
        load(&mut other, &path).unwrap();
        assert_eq!(other.logits(&x, 4).unwrap(), want, "{name}");
        let e = format!("{:#}", save(&net, &path).unwrap_err());
        assert!(e.contains("already exists"), "{e}");
    }
}

/// A file that does not fit the architecture is refused naming the key and both shapes,
/// an unsupported dtype names the dtype, and a key the network lacks is named.
#[test]
fn state_dicts_that_do_not_fit_are_refused_naming_the_key() {
    use safetensors::{Dtype, tensor::TensorView};
    use xbar::nn::sequential::state_dict::{Tensor, load};
    let net = lenet5(1);
    let mut dict = net.state_dict();
    let mut target = lenet5(2);
    let err = |dict: &xbar::nn::sequential::state_dict::StateDict, target: &mut Sequential<_>| {
        format!("{:#}", target.load_state_dict(dict).unwrap_err())
    };

    dict.get_mut("3.weight").unwrap().shape = vec![16, 6, 25];
    let e = err(&dict, &mut target);
    assert!(
        e.contains("key 3.weight") && e.contains("[16, 6, 5, 5]") && e.contains("[16, 6, 25]"),
        "{e}"
    );

    let mut dict = net.state_dict();
    dict.remove("9.bias");
    let e = err(&dict, &mut target);
    assert!(e.contains("key 9.bias") && e.contains("missing"), "{e}");

    let mut dict = net.state_dict();
    dict.insert(
        "1.running_mean".into(),
        Tensor {
            shape: vec![6],
            data: vec![0.0; 6],
        },
    );
    let e = err(&dict, &mut target);
    assert!(
        e.contains("1.running_mean") && e.contains("another network"),
        "{e}"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("half.safetensors");
    let bytes = vec![0u8; 2 * 6];
    let view = TensorView::new(Dtype::F16, vec![6], &bytes).unwrap();
    std::fs::write(
        &path,
        safetensors::serialize([("0.bias", view)], None).unwrap(),
    )
    .unwrap();
    let e = format!("{:#}", load(&mut target, &path).unwrap_err());
    assert!(
        e.contains("key 0.bias") && e.contains("F16") && e.contains("float32"),
        "{e}"
    );
}

/// A `state_dict` saved by PyTorch 2.10 (`tests/data/pytorch_convnet/make.py`: conv with
/// padding, max pooling, strided conv, average pooling, flatten, two linear layers) loads
/// into the same layer list and gives PyTorch's scores up to f32 rounding: layouts (OIHW,
/// NCHW flattening) and key names agree with PyTorch's.
#[test]
fn pytorch_state_dicts_give_pytorchs_scores() {
    use xbar::nn::sequential::state_dict::load;
    use xbar::npy::read_npy;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pytorch_convnet");
    let layers = parse_layers(
        &toml::from_str::<toml::Table>(
            r#"layers = [ { conv2d = { out = 4, kernel = 3, padding = 1 } }, "relu",
                { maxpool2d = 2 }, { conv2d = { out = 5, kernel = 3, stride = 2, padding = 1 } },
                "relu", { avgpool2d = 2 }, "flatten", { linear = 6 }, "relu", { linear = 3 } ]"#,
        )
        .unwrap()["layers"],
    )
    .unwrap();
    let mut net = Sequential::random([3, 8, 8], &layers, 0).unwrap();
    load(&mut net, &dir.join("model.safetensors")).unwrap();
    let x = read_npy(&dir.join("input.npy")).unwrap();
    let want = read_npy(&dir.join("logits.npy")).unwrap();
    assert_eq!(
        (x.shape.clone(), want.shape.clone()),
        (vec![2, 3, 8, 8], vec![2, 3])
    );
    let got = net.logits(&x.data, 2).unwrap();
    for (a, b) in got.iter().zip(&want.data) {
        assert!((a - b).abs() < 1e-5, "xbar {a} vs PyTorch {b}");
    }
}
