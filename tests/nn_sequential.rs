//! Sequential (convolutional) networks: LeNet-5 built from its PyTorch-style description,
//! run digitally and on crossbar tiles through the synapse seam.

mod common;

use rand::RngExt;
use xbar::crossbar::TileConfig;
use xbar::data::mnist10k;
use xbar::device::{AnyDevice, preset};
use xbar::nn::sequential::spec::{named, parse_layers};
use xbar::nn::sequential::train::train;
use xbar::nn::sequential::{Sequential, Stage};
use xbar::nn::{Classifier, DeployedSynapses, Deployment, Optimizer, TrainConfig, evaluate};
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

/// Learned parameters (weights, biases, batch-norm scales and shifts), as PyTorch's
/// `sum(p.numel() for p in model.parameters())` counts them: batch-norm running statistics
/// are buffers, not parameters.
fn parameter_count(net: &Sequential<DigitalSynapses>) -> usize {
    let buffer = |key: &str| {
        ["running_mean", "running_var", "num_batches_tracked"]
            .iter()
            .any(|b| key.ends_with(b))
    };
    net.state_dict()
        .iter()
        .filter(|(key, _)| !buffer(key))
        .map(|(_, t)| t.data.len())
        .sum()
}

/// The named architectures have their PyTorch modules' parameter counts:
/// - LeNet-5: 156 + 2,416 + 48,120 + 10,164 + 850 = 61,706;
/// - ResNet-20 (He et al. 2016, CIFAR variant, 3 x 32 x 32): 269,722 with the parameter-free
///   shortcuts of the paper's option A (the count in the paper's Table 6, "0.27M"), plus the
///   two 1 x 1 projection shortcuts with batch norm of option B (torchvision's `BasicBlock`
///   `downsample`): 16·32 + 2·32 + 32·64 + 2·64 = 2,752, so 272,474;
/// - VGG-8 (NeuroSim's CIFAR-10 network, convolutions and linear layers without bias):
///   3·128·9 + 128·128·9 + 128·256·9 + 256·256·9 + 256·512·9 + 512·512·9 + 8192·1024 +
///   1024·10 = 12,973,440.
#[test]
fn named_architectures_have_pytorchs_parameter_counts() {
    for (name, want, inputs) in [
        ("lenet5", 61_706, 784),
        ("resnet20", 272_474, 3 * 32 * 32),
        ("vgg8", 12_973_440, 3 * 32 * 32),
    ] {
        let (input, layers) = named(name).unwrap();
        let net = Sequential::random(input, &layers, 1).unwrap();
        assert_eq!(parameter_count(&net), want, "{name}");
        assert_eq!((net.inputs(), net.classes()), (inputs, 10), "{name}");
    }
}

/// `digital` programmed on tiles configured as `tile` of `device`, read `t_inference_s`
/// after programming, fabricated and read with the streams of `seed`.
fn deploy(
    digital: &Sequential<DigitalSynapses>,
    (device, tile): (&AnyDevice, TileConfig),
    t_inference_s: f64,
    seed: u64,
) -> Sequential<DeployedSynapses> {
    let deployment = Deployment {
        device,
        tile,
        t_inference_s,
        seed,
    };
    deployment
        .program_sequential(digital, InputScaling::AbsMax, &[])
        .unwrap()
}

/// Deploy `digital` on ideal devices and an ideal tile (no quantisation, no noise) and
/// check that it computes the digital network's scores of the `batch` inputs `x`, up to
/// f32 rounding of the conductance mapping (1e-4 of the largest score).
fn assert_ideal_tiles_compute(digital: &mut Sequential<DigitalSynapses>, x: &[f32], batch: usize) {
    let mut analog = deploy(digital, (&device("ideal", ""), TileConfig::ideal()), 1.0, 3);
    let (want, got) = (
        digital.logits(x, batch).unwrap(),
        analog.logits(x, batch).unwrap(),
    );
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (a, b) in got.iter().zip(&want) {
        assert!((a - b).abs() < 1e-4 * scale, "{a} vs {b}");
    }
}

/// On ideal devices and an ideal tile the deployed LeNet-5 computes the digital network's
/// scores.
#[test]
fn ideal_tiles_compute_the_digital_network() {
    assert_ideal_tiles_compute(&mut lenet5(2), &images(16), 16);
}

/// A small residual network on 3 x 8 x 8 images (conv without bias, batch norm, an
/// identity and a projection residual block, global average pooling), its batch-norm
/// scales, shifts and running statistics drawn at random so that folding them matters.
fn small_resnet(seed: u64) -> Sequential<DigitalSynapses> {
    let layers = r#"{ conv2d = { out = 4, kernel = 3, padding = 1, bias = false } },
        "batchnorm2d", "relu", { residual = { out = 4 } }, { residual = { out = 6, stride = 2 } },
        "global_avgpool", "flatten", { linear = 5 }"#;
    let mut net = small_net([3, 8, 8], layers, seed);
    let mut dict = net.state_dict();
    let mut r = xbar::rng::stream(seed, &[1]);
    for (key, t) in dict.iter_mut() {
        let norm = key.contains("bn") || key.starts_with("1.") || key.contains("downsample.1");
        let range = match key.rsplit('.').next().unwrap() {
            "running_mean" | "bias" if norm => -0.5..0.5,
            "running_var" | "weight" if norm => 0.5..1.5,
            "num_batches_tracked" => {
                t.data = vec![7.0];
                continue;
            }
            _ => continue,
        };
        t.data
            .iter_mut()
            .for_each(|v| *v = r.random_range(range.clone()));
    }
    net.load_state_dict(&dict).unwrap();
    net
}

/// Batch norm stays digital (folded into a per-channel scale and shift after the tile
/// read) and residual sums are digital: on ideal devices and tiles the deployed residual
/// network computes the digital network's scores.
#[test]
fn ideal_tiles_compute_a_residual_network_with_batch_norm() {
    assert_ideal_tiles_compute(&mut small_resnet(21), &uniform(4 * 3 * 64, 22), 4);
}

/// Every output pixel is one read of its input patch: reading all patches of an image as
/// one batch gives the same scores as reading the image pixel by pixel (one patch per read),
/// on PCM tiles with programming noise, 8-bit DAC/ADC and no read noise.
#[test]
fn batched_patch_reads_equal_per_pixel_reads() {
    let digital = lenet5(4);
    let mut tile = TileConfig::default();
    tile.periphery.read_noise = false;
    let mut net = deploy(&digital, (&device("pcm_gst", ""), tile), 60.0, 5);
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

/// The scores of two successive reads of the `batch` inputs `x` by `digital` deployed on
/// PCM tiles with read noise at every read, on a pool of `threads` threads.
fn two_noisy_reads(
    digital: &Sequential<DigitalSynapses>,
    x: &[f32],
    batch: usize,
    threads: usize,
) -> (Vec<f32>, Vec<f32>) {
    let pcm = device("pcm_gst", "");
    common::on_threads(threads, || {
        let mut net = deploy(digital, (&pcm, TileConfig::default()), 3600.0, 7);
        (net.logits(x, batch).unwrap(), net.logits(x, batch).unwrap())
    })
}

/// With read noise at every read, the deployed LeNet-5 gives bit-identical scores with 1 and
/// 2 threads (every random stream is named by seed, tile and read).
#[test]
fn noisy_tile_inference_is_identical_with_one_and_two_threads() {
    let (digital, x) = (lenet5(6), images(8));
    let one = two_noisy_reads(&digital, &x, 8, 1);
    assert_ne!(one.0, one.1, "no fresh read noise on the second read");
    assert_eq!(one, two_noisy_reads(&digital, &x, 8, 2));
}

/// A small network from its layer list on `input`-shaped images.
fn small_net(input: [usize; 3], layers: &str, seed: u64) -> Sequential<DigitalSynapses> {
    let table: toml::Table = toml::from_str(&format!("layers = [ {layers} ]")).unwrap();
    let layers = parse_layers(&table["layers"]).unwrap();
    Sequential::random(input, &layers, seed).unwrap()
}

/// Relative error ‖g − g_fd‖ / ‖g_fd‖ of the backpropagated gradient `g` of the mean
/// cross-entropy of `net` on (`x`, `labels`) against central finite differences,
/// ∂L/∂θ ≈ (L(θ + ε) − L(θ − ε)) / 2ε, over every learned parameter (each perturbed
/// through the network's state dict).
fn gradient_error(
    net: &mut Sequential<DigitalSynapses>,
    (x, labels): (&[f32], &[u8]),
    eps: f32,
) -> f64 {
    let (_, grads, _) = net.gradients(x, labels).unwrap();
    let clean = net.state_dict();
    let (mut err2, mut norm2) = (0f64, 0f64);
    for (key, grad) in &grads {
        for (k, &g) in grad.iter().enumerate() {
            let loss_at = |delta: f32| {
                let mut dict = clean.clone();
                dict.get_mut(key).unwrap().data[k] += delta;
                let mut probe = net.clone();
                probe.load_state_dict(&dict).unwrap();
                probe.gradients(x, labels).unwrap().0
            };
            let fd = (loss_at(eps) - loss_at(-eps)) / (2.0 * f64::from(eps));
            err2 += (f64::from(g) - fd).powi(2);
            norm2 += fd * fd;
        }
    }
    (err2 / norm2).sqrt()
}

/// Uniform inputs in [-1, 1) for `n` values.
fn uniform(n: usize, seed: u64) -> Vec<f32> {
    let mut r = xbar::rng::stream(seed, &[0]);
    (0..n).map(|_| r.random_range(-1.0..1.0)).collect()
}

/// Backpropagation through convolutions (stride, padding), ReLU, max and average pooling,
/// flatten and linear layers equals central finite differences (ε = 1e-3) of the mean
/// cross-entropy for every weight and bias (relative error of the whole gradient below 1 %).
#[test]
fn backpropagation_matches_finite_differences() {
    let x = uniform(3 * 36, 8);
    for pool in ["avgpool2d", "maxpool2d"] {
        let layers = format!(
            r#"{{ conv2d = {{ out = 3, kernel = 3, padding = 1 }} }}, "relu", {{ {pool} = 2 }},
               {{ conv2d = {{ out = 2, kernel = 2, stride = 1 }} }}, "flatten",
               {{ linear = 5 }}, "relu", {{ linear = 3 }}"#
        );
        let mut net = small_net([1, 6, 6], &layers, 9);
        let rel = gradient_error(&mut net, (&x, &[0, 2, 1]), 1e-3);
        assert!(rel < 1e-2, "{pool}: relative gradient error {rel}");
    }
}

/// Backpropagation through batch norm in training mode (batch statistics), residual
/// blocks with an identity shortcut and with a strided 1 x 1 projection shortcut, global
/// average pooling and bias-free layers equals central finite differences for every
/// weight, γ and β (relative error below 1 %). The step is ε = 1e-4: batch statistics
/// make the loss sharply curved in the weights before a batch norm (and put every ReLU
/// after it near its kink for some sample), so the error of the difference quotient is
/// 7 % at ε = 1e-3 and 0.1 % at 1e-4, where f32 rounding of the loss is still small.
#[test]
fn backpropagation_through_batch_norm_and_residual_blocks_matches_finite_differences() {
    let layers = r#"{ conv2d = { out = 3, kernel = 3, padding = 1, bias = false } },
        "batchnorm2d", "relu", { residual = { out = 3 } }, { residual = { out = 4, stride = 2 } },
        "global_avgpool", "flatten", { linear = 3 }"#;
    let mut net = small_net([2, 6, 6], layers, 12);
    let x = uniform(4 * 2 * 36, 13);
    let rel = gradient_error(&mut net, (&x, &[0, 2, 1, 1]), 1e-4);
    assert!(rel < 1e-2, "relative gradient error {rel}");
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
        common::on_threads(threads, || {
            let mut net = lenet5(10);
            train(&mut net, &train_set, &config, &mut |_| {}).unwrap();
            net
        })
    };
    let (mut one, two) = (run(1), run(2));
    assert_eq!(
        one.state_dict(),
        two.state_dict(),
        "weights differ between thread counts"
    );
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
    let nets = [
        ("lenet5", lenet5(11), lenet5(12), images(4)),
        (
            "resnet",
            small_resnet(11),
            small_resnet(12),
            uniform(4 * 3 * 64, 5),
        ),
    ];
    for (net_name, mut net, mut other, x) in nets {
        let want = net.logits(&x, 4).unwrap();
        assert_ne!(other.logits(&x, 4).unwrap(), want);
        for format in [".safetensors", "_npy"] {
            let path = dir.path().join(format!("{net_name}{format}"));
            save(&net, &path).unwrap();
            let dict = read_state_dict(&path).unwrap();
            assert_eq!(dict, net.state_dict(), "{net_name} {format}");
            let mut loaded = other.clone();
            load(&mut loaded, &path).unwrap();
            assert_eq!(loaded.logits(&x, 4).unwrap(), want, "{net_name} {format}");
            let e = format!("{:#}", save(&net, &path).unwrap_err());
            assert!(e.contains("already exists"), "{e}");
        }
    }
    let dict = read_state_dict(&dir.path().join("lenet5_npy")).unwrap();
    assert_eq!(dict["0.weight"].shape, vec![6, 1, 5, 5]);
    assert_eq!(dict["7.weight"].shape, vec![120, 400]);
    let dict = read_state_dict(&dir.path().join("resnet.safetensors")).unwrap();
    assert_eq!(dict["4.downsample.0.weight"].shape, vec![6, 4, 1, 1]);
    assert_eq!(dict["4.bn2.num_batches_tracked"].data, vec![7.0]);
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

/// Load the PyTorch fixture `tests/data/NAME` (its `model.safetensors`) into `net` and check
/// that `net` gives the fixture's scores (`logits.npy`, `[2, classes]`) on the fixture's
/// inputs (`input.npy`) up to f32 rounding; the fixture's directory.
fn assert_gives_pytorchs_scores(
    net: &mut Sequential<DigitalSynapses>,
    name: &str,
    classes: usize,
) -> std::path::PathBuf {
    use xbar::nn::sequential::state_dict::load;
    use xbar::npy::read_npy;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/{name}"));
    load(net, &dir.join("model.safetensors")).unwrap();
    let x = read_npy(&dir.join("input.npy")).unwrap();
    let want = read_npy(&dir.join("logits.npy")).unwrap();
    assert_eq!(want.shape, vec![2, classes]);
    let got = net.logits(&x.data, 2).unwrap();
    for (a, b) in got.iter().zip(&want.data) {
        assert!((a - b).abs() < 1e-5, "xbar {a} vs PyTorch {b}");
    }
    dir
}

/// A `state_dict` saved by PyTorch 2.10 (`tests/data/pytorch_convnet/make.py`: conv with
/// padding, max pooling, strided conv, average pooling, flatten, two linear layers) loads
/// into the same layer list and gives PyTorch's scores up to f32 rounding: layouts (OIHW,
/// NCHW flattening) and key names agree with PyTorch's.
#[test]
fn pytorch_state_dicts_give_pytorchs_scores() {
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
    let dir = assert_gives_pytorchs_scores(&mut net, "pytorch_convnet", 3);
    let x = xbar::npy::read_npy(&dir.join("input.npy")).unwrap();
    assert_eq!(x.shape, vec![2, 3, 8, 8]);
}

/// A residual `state_dict` saved by PyTorch 2.10 (`tests/data/pytorch_resnet/make.py`:
/// conv without bias, batch norm, torchvision-style basic blocks with identity and
/// projection shortcuts, global average pooling) loads into `small_resnet`'s layer list and
/// gives PyTorch's evaluation-mode scores; one training-mode pass updates the running
/// statistics exactly as PyTorch does (momentum 0.1, unbiased batch variance, one more
/// batch tracked).
#[test]
fn pytorch_residual_networks_give_pytorchs_scores_and_running_statistics() {
    use xbar::nn::sequential::state_dict::read_state_dict;
    use xbar::npy::read_npy;
    let mut net = small_resnet(0);
    let dir = assert_gives_pytorchs_scores(&mut net, "pytorch_resnet", 5);

    let x_train = read_npy(&dir.join("train_input.npy")).unwrap();
    net.gradients(&x_train.data, &[0, 1, 2]).unwrap();
    let after = read_state_dict(&dir.join("after_train_pass.safetensors")).unwrap();
    for (key, t) in net.state_dict() {
        let want = &after[&key].data;
        for (a, b) in t.data.iter().zip(want) {
            assert!(
                (a - b).abs() < 1e-5 * b.abs().max(1.0),
                "{key}: xbar {a} vs PyTorch {b}"
            );
        }
    }
}

/// Hardware-aware training of a residual network with batch norm (additive weight noise of
/// 10 % redrawn every mini-batch, SGD with momentum, weight decay, cosine schedule, flips)
/// is bit-identical with 1 and 2 threads, and the noise changes the trained weights.
#[test]
fn noisy_training_of_a_residual_network_is_identical_on_any_thread_count() {
    use xbar::data::Dataset;
    use xbar::nn::sequential::state_dict::StateDict;
    use xbar::nn::{NoiseKind, Schedule, WeightNoise};
    let n = 64;
    let labels = (0..n).map(|i| (i % 5) as u8).collect();
    let data = Dataset::new(uniform(n * 3 * 64, 30), labels, [3, 8, 8]).unwrap();
    let config = |weight_noise| TrainConfig {
        epochs: 2,
        batch_size: 16,
        optimizer: Optimizer::Sgd {
            learning_rate: 0.05,
            momentum: 0.9,
        },
        schedule: Schedule::Cosine,
        weight_decay: 5e-4,
        weight_noise,
        flip: true,
        seed: 4,
        ..TrainConfig::default()
    };
    let noise = Some(WeightNoise {
        kind: NoiseKind::Additive,
        relative_sigma: 0.1,
    });
    let run = |threads: usize, config: TrainConfig| -> StateDict {
        common::on_threads(threads, || {
            let mut net = small_resnet(31);
            train(&mut net, &data, &config, &mut |_| {}).unwrap();
            net.state_dict()
        })
    };
    let one = run(1, config(noise));
    assert_eq!(
        one,
        run(2, config(noise)),
        "weights differ between thread counts"
    );
    assert_ne!(
        one,
        run(1, config(None)),
        "the weight noise changed nothing"
    );
}

/// The grouped layer list of `tests/data/pytorch_grouped` on 4 x 8 x 8 images: a
/// convolution of 2 groups, a depthwise convolution with two kernels per channel (stride
/// 2), a pointwise one, average pooling and a linear layer.
const GROUPED: &str = r#"{ conv2d = { out = 8, kernel = 3, padding = 1, groups = 2 } }, "relu",
    { conv2d = { out = 16, kernel = 3, stride = 2, padding = 1, groups = 8 } }, "relu",
    { conv2d = { out = 6, kernel = 1 } }, "relu", { avgpool2d = 2 }, "flatten", { linear = 3 }"#;

/// A grouped and a depthwise convolution's `state_dict` saved by PyTorch 2.10
/// (`tests/data/pytorch_grouped/make.py`) loads into the same layer list (weights
/// `C_out x C_in/groups x k x k`) and gives PyTorch's scores up to f32 rounding.
#[test]
fn pytorch_grouped_convolutions_give_pytorchs_scores() {
    let mut net = small_net([4, 8, 8], GROUPED, 0);
    let dict = net.state_dict();
    assert_eq!(dict["0.weight"].shape, vec![8, 2, 3, 3]);
    assert_eq!(dict["2.weight"].shape, vec![16, 1, 3, 3]);
    assert_gives_pytorchs_scores(&mut net, "pytorch_grouped", 3);
}

/// The direct grouped convolution (PyTorch's definition: output channel `o` of group
/// `g = o / (C_out/G)` sums over the input channels `g·C_in/G ..` only) of NCHW images,
/// from the OIHW weights `C_out x C_in/G x k x k`.
fn naive_grouped_conv(
    x: &[f32],
    [c_in, h, w]: [usize; 3],
    weight: &[f32],
    (c_out, k, stride, padding, groups): (usize, usize, usize, usize, usize),
) -> Vec<f32> {
    let (oh, ow) = (
        (h + 2 * padding - k) / stride + 1,
        (w + 2 * padding - k) / stride + 1,
    );
    let (cg_in, cg_out) = (c_in / groups, c_out / groups);
    let batch = x.len() / (c_in * h * w);
    let mut y = vec![0f32; batch * c_out * oh * ow];
    for b in 0..batch {
        for o in 0..c_out {
            for (oy, ox) in (0..oh).flat_map(|oy| (0..ow).map(move |ox| (oy, ox))) {
                let mut s = 0f32;
                for ci in 0..cg_in {
                    let c = o / cg_out * cg_in + ci;
                    for (ky, kx) in (0..k).flat_map(|ky| (0..k).map(move |kx| (ky, kx))) {
                        let iy = (oy * stride + ky) as isize - padding as isize;
                        let ix = (ox * stride + kx) as isize - padding as isize;
                        if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                            continue;
                        }
                        let xv = x[((b * c_in + c) * h + iy as usize) * w + ix as usize];
                        s += xv * weight[((o * cg_in + ci) * k + ky) * k + kx];
                    }
                }
                y[((b * c_out + o) * oh + oy) * ow + ox] = s;
            }
        }
    }
    y
}

/// A grouped convolution (2 and 3 groups) and a depthwise one (one and two kernels per
/// channel), with strides and padding, compute the direct grouped convolution: the layer
/// is followed by an identity linear layer, so the scores are its output.
#[test]
fn grouped_convolutions_equal_the_direct_grouped_convolution() {
    for (c_in, c_out, k, stride, padding, groups) in [
        (4, 6, 3, 1, 1, 2),
        (6, 6, 3, 2, 0, 3),
        (3, 3, 3, 1, 1, 3),
        (4, 8, 2, 1, 0, 4),
    ] {
        let (h, w) = (6, 5);
        let (oh, ow) = (
            (h + 2 * padding - k) / stride + 1,
            (w + 2 * padding - k) / stride + 1,
        );
        let features = c_out * oh * ow;
        let layers = format!(
            r#"{{ conv2d = {{ out = {c_out}, kernel = {k}, stride = {stride}, padding = {padding},
                 groups = {groups}, bias = false }} }}, "flatten", {{ linear = {features} }}"#
        );
        let mut net = small_net([c_in, h, w], &layers, 40);
        let mut dict = net.state_dict();
        let identity = dict.get_mut("2.weight").unwrap();
        identity.data.iter_mut().enumerate().for_each(|(i, v)| {
            *v = if i % (features + 1) == 0 { 1.0 } else { 0.0 };
        });
        dict.get_mut("2.bias").unwrap().data.fill(0.0);
        net.load_state_dict(&dict).unwrap();
        let batch = 2;
        let x = uniform(batch * c_in * h * w, 41);
        let got = net.logits(&x, batch).unwrap();
        let want = naive_grouped_conv(
            &x,
            [c_in, h, w],
            &dict["0.weight"].data,
            (c_out, k, stride, padding, groups),
        );
        assert_eq!(got.len(), want.len());
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() < 1e-5, "groups {groups}: {a} vs {b}");
        }
    }
}

/// Backpropagation through grouped, depthwise and pointwise convolutions equals central
/// finite differences of the mean cross-entropy for every weight and bias (relative error
/// of the whole gradient below 1 %). The step is ε = 3e-4: with three ReLU layers the error
/// of the difference quotient falls with ε (1.6 % at 3e-3, 1.0 % at 1e-3, 0.4 % at 3e-4)
/// until f32 rounding of the loss takes over (1.4 % at 3e-5).
#[test]
fn backpropagation_through_grouped_convolutions_matches_finite_differences() {
    let mut net = small_net([4, 8, 8], GROUPED, 42);
    let x = uniform(3 * 4 * 64, 43);
    let rel = gradient_error(&mut net, (&x, &[0, 2, 1]), 3e-4);
    assert!(rel < 1e-2, "relative gradient error {rel}");
}

/// A grouped convolution's groups go on tiles of their own: on ideal devices the deployed
/// network computes the digital network's scores, and the ledger counts the reads of the
/// diagonal blocks only (per image and convolution `pixels · C_out · C_in/G · k²`
/// multiply-accumulates), not of the full `C_out x C_in·k²` matrix.
#[test]
fn grouped_convolutions_deploy_one_block_per_group() {
    let mut digital = small_net([4, 8, 8], GROUPED, 44);
    let batch = 3;
    let x = uniform(batch * 4 * 64, 45);
    assert_ideal_tiles_compute(&mut digital, &x, batch);

    let mut analog = deploy(
        &digital,
        (&device("ideal", ""), TileConfig::ideal()),
        1.0,
        3,
    );
    analog.logits(&x, batch).unwrap();
    let layers = analog.synapses();
    let blocks: Vec<usize> = layers.iter().map(|(_, s)| s.parts().len()).collect();
    assert_eq!(blocks, vec![2, 8, 1, 1]);
    let macs: Vec<f64> = layers.iter().map(|(_, s)| s.macs()).collect();
    let per_image =
        |pixels: usize, c_out: usize, block_in: usize| (batch * pixels * c_out * block_in) as f64;
    assert_eq!(
        macs,
        vec![
            per_image(64, 8, 2 * 9),
            per_image(16, 16, 9),
            per_image(16, 6, 16),
            per_image(1, 3, 24)
        ]
    );
}

/// With read noise at every read, a deployed network of grouped convolutions gives
/// bit-identical scores with 1 and 2 threads.
#[test]
fn noisy_grouped_inference_is_identical_with_one_and_two_threads() {
    let digital = small_net([4, 8, 8], GROUPED, 46);
    let x = uniform(4 * 4 * 64, 47);
    let one = two_noisy_reads(&digital, &x, 4, 1);
    assert_ne!(one.0, one.1, "no fresh read noise on the second read");
    assert_eq!(one, two_noisy_reads(&digital, &x, 4, 2));
}

/// A group count that does not divide both channel counts is refused naming the layer
/// index, the groups and the channel counts; zero groups is refused too.
#[test]
fn groups_that_do_not_divide_the_channels_are_refused() {
    use xbar::nn::sequential::spec::resolve;
    // 6 output channels in 4 groups; 4 input channels in 3 groups.
    for groups in [4, 3] {
        let layers = format!("{{ conv2d = {{ out = 6, kernel = 3, groups = {groups} }} }}");
        let table: toml::Table = toml::from_str(&format!(
            r#"layers = [ "relu", {layers}, "flatten", {{ linear = 2 }} ]"#
        ))
        .unwrap();
        let layers = parse_layers(&table["layers"]).unwrap();
        let e = format!("{:#}", resolve([4, 5, 5], &layers).unwrap_err());
        assert!(
            e.contains("layers[1]")
                && e.contains(&format!("groups = {groups}"))
                && e.contains("input channels (4)")
                && e.contains("output channels (6)"),
            "{e}"
        );
    }
    let table: toml::Table =
        toml::from_str(r#"layers = [ { conv2d = { out = 6, kernel = 3, groups = 0 } } ]"#).unwrap();
    let e = format!("{:#}", parse_layers(&table["layers"]).unwrap_err());
    assert!(
        e.contains("layers[0]") && e.contains("groups must be an integer >= 1"),
        "{e}"
    );
    let geometry = xbar::nn::sequential::conv::ConvGeometry::new([4, 5, 5], 6, 3, 1, 0).unwrap();
    let e = geometry.grouped(0).unwrap_err().to_string();
    assert!(e.contains("at least 1 group"), "{e}");
}
