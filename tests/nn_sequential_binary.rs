//! Binary and ternary sequential networks (conv BNN/TNN): described as layer lists with
//! `quantization` and step activations, trained with the straight-through estimator, and
//! deployed with their quantised layers on 2T2R pairs read by sense amplifiers beside
//! analog layers.

mod common;

use rand::RngExt;
use xbar::crossbar::TileConfig;
use xbar::data::mnist10k;
use xbar::device::{AnyDevice, preset};
use xbar::nn::sequential::spec::{LayerSpec, parse_layers, resolve};
use xbar::nn::sequential::train::train;
use xbar::nn::sequential::{Sequential, Stage};
use xbar::nn::{Classifier, Deployment, Optimizer, Quantization, TrainConfig, evaluate};
use xbar::synapses::{DigitalSynapses, InputScaling};

fn specs(layers: &str) -> anyhow::Result<Vec<LayerSpec>> {
    let table: toml::Table = toml::from_str(&format!("layers = [ {layers} ]")).unwrap();
    parse_layers(&table["layers"])
}

fn net(input: [usize; 3], layers: &str, seed: u64) -> Sequential<DigitalSynapses> {
    Sequential::random(input, &specs(layers).unwrap(), seed).unwrap()
}

/// A binarized ConvNet for MNIST (Courbariaux, Hubara et al. 2016 style): binary
/// convolutions with batch norm and sign activations, a binary classifier with batch-normed
/// logits; the first convolution reads the real pixels.
const BINARY_CNN: &str = r#"
    { conv2d = { out = 16, kernel = 5, padding = 2, bias = false, quantization = "binary" } },
    "batchnorm2d", "sign", { maxpool2d = 2 },
    { conv2d = { out = 32, kernel = 5, bias = false, quantization = "binary" } },
    "batchnorm2d", "sign", { maxpool2d = 2 }, "flatten",
    { linear = { out = 10, bias = false, quantization = "binary" } }, "batchnorm1d""#;

fn rram(compliance_a: f64) -> AnyDevice {
    let overrides =
        format!("i_compliance_a = {compliance_a:e}\np_stuck_lrs = 0.0\np_stuck_hrs = 0.0");
    preset::load("rram_hfo2", &toml::from_str(&overrides).unwrap()).unwrap()
}

fn deployment(device: &AnyDevice, seed: u64) -> Deployment<'_> {
    Deployment {
        device,
        tile: TileConfig::default(),
        t_inference_s: 1.0,
        seed,
    }
}

fn uniform(n: usize, seed: u64) -> Vec<f32> {
    let mut r = xbar::rng::stream(seed, &[0]);
    (0..n).map(|_| r.random_range(-1.0..1.0)).collect()
}

/// The binary ConvNet list parses with its quantisation and step layers, resolves to the
/// expected shapes and builds a network ending in batch-normed class scores; bad lists
/// are refused naming the layer and the fix.
#[test]
fn binary_and_ternary_layer_lists_parse_and_bad_ones_are_named() {
    let layers = specs(BINARY_CNN).unwrap();
    assert!(matches!(
        layers[0],
        LayerSpec::Conv2d {
            quantization: Some(Quantization::Binary),
            ..
        }
    ));
    assert_eq!(layers[2], LayerSpec::Step(Quantization::Binary));
    let shapes = resolve([1, 28, 28], &layers).unwrap();
    assert_eq!(shapes.last().unwrap().output.len(), 10);
    let net = net([1, 28, 28], BINARY_CNN, 1);
    assert_eq!(net.classes(), 10);
    let quantized: Vec<_> = net
        .stages()
        .iter()
        .filter_map(Stage::quantization)
        .collect();
    assert_eq!(quantized, vec![Quantization::Binary; 3]);
    let ternary = specs(r#"{ linear = { out = 3, quantization = "ternary" } }, "ternary""#);
    assert_eq!(ternary.unwrap()[1], LayerSpec::Step(Quantization::Ternary));

    let err = |layers: &str| format!("{:#}", specs(layers).unwrap_err());
    let e = err(r#"{ linear = { out = 3, quantization = "quaternary" } }"#);
    assert!(
        e.contains("layers[0]") && e.contains("\"binary\" or \"ternary\""),
        "{e}"
    );
    let resolved = |layers: &str| {
        format!(
            "{:#}",
            resolve([1, 4, 4], &specs(layers).unwrap()).unwrap_err()
        )
    };
    let e = resolved(r#""batchnorm1d", "flatten", { linear = 2 }"#);
    assert!(
        e.contains("layers[0]") && e.contains("batchnorm2d on images"),
        "{e}"
    );
    let e = format!(
        "{:#}",
        Sequential::random(
            [1, 4, 4],
            &specs(r#""flatten", { linear = 2 }, "relu""#).unwrap(),
            0
        )
        .unwrap_err()
    );
    assert!(e.contains("must end with a linear layer"), "{e}");
}

/// `quantized()` gives sign(W_h) for binary stages and the ternary weights of Li & Liu's
/// ternary weight networks (2016) for ternary ones, w = sign(W_h) where |W_h| > Δ and 0
/// elsewhere, Δ = 0.7·mean|W_h| of the layer; real stages are unchanged and quantising
/// twice changes nothing.
#[test]
fn quantized_weights_are_signs_and_ternary_thresholds() {
    let digital = net(
        [1, 3, 3],
        r#"{ conv2d = { out = 4, kernel = 2, quantization = "binary" } }, "flatten",
           { linear = { out = 6, quantization = "ternary" } }, "relu", { linear = 3 }"#,
        5,
    );
    let q = digital.quantized();
    let hidden = digital.synapses();
    let quantized = q.synapses();
    let binary: Vec<f32> = hidden[0]
        .1
        .weight()
        .iter()
        .map(|&w| if w >= 0.0 { 1.0 } else { -1.0 })
        .collect();
    assert_eq!(quantized[0].1.weight(), &binary[..]);
    let h = hidden[1].1.weight();
    let delta = 0.7 * h.iter().map(|w| w.abs()).sum::<f32>() / h.len() as f32;
    let ternary: Vec<f32> = h
        .iter()
        .map(|&w| if w.abs() > delta { w.signum() } else { 0.0 })
        .collect();
    assert!(ternary.contains(&0.0) && ternary.contains(&1.0) && ternary.contains(&-1.0));
    assert_eq!(quantized[1].1.weight(), &ternary[..]);
    assert_eq!(quantized[2].1.weight(), hidden[2].1.weight());
    assert_eq!(q.quantized().state_dict(), q.state_dict());
}

/// Straight-through training: one plain SGD step (η = 2, the whole data set as one batch)
/// moves the hidden weights of binary and ternary layers by −η times the gradient of the
/// *quantised* network (the gradient passes straight through the quantiser, Courbariaux,
/// Hubara et al. 2016), then clips them to [−1, 1].
#[test]
fn a_training_step_moves_hidden_weights_by_the_quantized_networks_gradient() {
    let layers = r#""flatten", { linear = { out = 5, quantization = "binary" } }, "relu",
                    { linear = { out = 3, quantization = "ternary" } }"#;
    let mut hidden = net([1, 2, 3], layers, 7);
    let before = hidden.clone();
    let x = uniform(8 * 6, 8);
    let labels: Vec<u8> = (0..8).map(|i| (i % 3) as u8).collect();
    let data = xbar::data::Dataset::new(x.clone(), labels.clone(), [1, 2, 3]).unwrap();
    let lr = 2.0;
    let config = TrainConfig {
        epochs: 1,
        batch_size: 8,
        optimizer: Optimizer::Sgd {
            learning_rate: lr,
            momentum: 0.0,
        },
        seed: 1,
        ..TrainConfig::default()
    };
    train(&mut hidden, &data, &config, &mut |_| {}).unwrap();
    let (_, grads, _) = before.quantized().gradients(&x, &labels).unwrap();
    let (start, end) = (before.state_dict(), hidden.state_dict());
    let mut clipped = 0;
    for key in ["1.weight", "3.weight"] {
        for ((&h0, &h1), &g) in start[key].data.iter().zip(&end[key].data).zip(&grads[key]) {
            let want = (h0 - lr * g).clamp(-1.0, 1.0);
            assert!((h1 - want).abs() < 1e-5, "{key}: {h1} vs {want}");
            clipped += usize::from(want.abs() == 1.0);
        }
    }
    assert!(clipped > 0, "no hidden weight reached the clip bound");
}

/// The sign activation's backward pass is the hardtanh straight-through estimator: for
/// `flatten → linear → sign → linear` the first linear layer's weight gradient is `δ₁ᵀx` with
/// `δ₁ = (W₂ᵀ δ₂) ⊙ [|h| ≤ 1]`, `δ₂ = (softmax(z) − onehot)/batch` (mean cross-entropy),
/// computed here by hand.
#[test]
fn the_sign_passes_its_error_straight_through_where_its_input_is_within_one() {
    let mut net = net(
        [1, 1, 5],
        r#""flatten", { linear = 4 }, "sign", { linear = 3 }"#,
        11,
    );
    let batch = 6;
    let x: Vec<f32> = uniform(batch * 5, 12).iter().map(|v| 3.0 * v).collect();
    let labels: Vec<u8> = (0..batch).map(|i| (i % 3) as u8).collect();
    let dict = net.state_dict();
    let (w1, b1, w2, b2) = (
        &dict["1.weight"].data,
        &dict["1.bias"].data,
        &dict["3.weight"].data,
        &dict["3.bias"].data,
    );
    let mut want = vec![0f64; 4 * 5];
    let mut passed = [0usize; 2];
    for n in 0..batch {
        let xn = &x[n * 5..][..5];
        let h: Vec<f64> = (0..4)
            .map(|j| {
                f64::from(b1[j])
                    + (0..5)
                        .map(|i| f64::from(w1[j * 5 + i] * xn[i]))
                        .sum::<f64>()
            })
            .collect();
        let s: Vec<f64> = h
            .iter()
            .map(|&v| if v >= 0.0 { 1.0 } else { -1.0 })
            .collect();
        let z: Vec<f64> = (0..3)
            .map(|k| {
                f64::from(b2[k]) + (0..4).map(|j| f64::from(w2[k * 4 + j]) * s[j]).sum::<f64>()
            })
            .collect();
        let zmax = z.iter().cloned().fold(f64::MIN, f64::max);
        let total: f64 = z.iter().map(|v| (v - zmax).exp()).sum();
        let d2: Vec<f64> = (0..3)
            .map(|k| {
                let p = (z[k] - zmax).exp() / total;
                (p - f64::from(u8::from(k == usize::from(labels[n])))) / batch as f64
            })
            .collect();
        for j in 0..4 {
            let pass = h[j].abs() <= 1.0;
            passed[usize::from(pass)] += 1;
            let d1 = if pass {
                (0..3).map(|k| f64::from(w2[k * 4 + j]) * d2[k]).sum()
            } else {
                0.0
            };
            for i in 0..5 {
                want[j * 5 + i] += d1 * f64::from(xn[i]);
            }
        }
    }
    assert!(
        passed[0] > 0 && passed[1] > 0,
        "both sides of the window: {passed:?}"
    );
    let (_, grads, _) = net.gradients(&x, &labels).unwrap();
    for (g, w) in grads["1.weight"].iter().zip(&want) {
        assert!((f64::from(*g) - w).abs() < 1e-5, "{g} vs {w}");
    }
}

/// The binarized ConvNet, and its ternary twin (ternary weights and activations), learn
/// MNIST with the straight-through estimator: after three epochs on 2,000 digits each
/// classifies most of 1,000 unseen digits with its quantised weights, and every hidden
/// weight stays within [−1, 1].
#[test]
fn binarized_and_ternary_convnets_learn_mnist() {
    let data = mnist10k().unwrap();
    let (train_set, test_set) = (data.train.take(2000), data.test.take(1000));
    let ternary = BINARY_CNN
        .replace("\"binary\"", "\"ternary\"")
        .replace("\"sign\"", "\"ternary\"");
    for layers in [BINARY_CNN, &ternary] {
        let mut qnn = net([1, 28, 28], layers, 3);
        let config = TrainConfig {
            epochs: 3,
            batch_size: 32,
            optimizer: Optimizer::adam(5e-3),
            seed: 4,
            ..TrainConfig::default()
        };
        train(&mut qnn, &train_set, &config, &mut |_| {}).unwrap();
        for (site, s) in qnn.synapses() {
            assert!(
                s.weight().iter().all(|w| w.abs() <= 1.0),
                "hidden weights of {} beyond ±1",
                site.key
            );
        }
        let accuracy = evaluate(&mut qnn.quantized(), &test_set).unwrap();
        assert!(accuracy > 0.85, "test accuracy {accuracy} of {layers}");
    }
}

/// On 2T2R pairs programmed at a high compliance current (100 µA: LRS and HRS far apart)
/// the sense amplifiers read every binary weight right, and the deployed network gives the
/// digital quantised network's scores exactly (the products are the same f32 GEMMs of the
/// same ±1 weights), also when the second convolution is grouped (4 groups, each on 2T2R
/// tiles of its own).
#[test]
fn binary_layers_on_well_separated_2t2r_pairs_compute_the_digital_network() {
    let grouped = BINARY_CNN.replace("out = 32, kernel = 5,", "out = 32, kernel = 5, groups = 4,");
    assert_ne!(grouped, BINARY_CNN);
    let x = mnist10k().unwrap().test.images[..8 * 784].to_vec();
    let device = rram(1e-4);
    for layers in [BINARY_CNN, &grouped] {
        let digital = net([1, 28, 28], layers, 6).quantized();
        let mut deployed = deployment(&device, 9)
            .program_sequential(&digital, InputScaling::AbsMax, &[])
            .unwrap();
        assert_eq!(
            deployed.logits(&x, 8).unwrap(),
            digital.clone().logits(&x, 8).unwrap()
        );
    }
    let digital = net([1, 28, 28], BINARY_CNN, 6).quantized();
    let test = mnist10k().unwrap().test.take(50);
    let outcome = deployment(&device, 9)
        .evaluate_sequential(&digital, InputScaling::AbsMax, &[], &test)
        .unwrap();
    assert_eq!(outcome.bit_error_rate, 0.0);
    assert_eq!(outcome.weight_rms_error, 0.0, "no analog layer");
    assert!(outcome.read_energy_j > 0.0);
}

/// A network mixing a binary convolution (2T2R, sense amplifiers) with analog linear
/// layers (differential pairs): at 2 µA the weak filaments overlap the HRS and the sense
/// amplifiers misread many binary weights, which the bit-error rate reports while the
/// analog layers report their weight error; the noisy deployment is bit-identical with 1
/// and 2 threads.
#[test]
fn binary_convolutions_run_on_2t2r_pairs_beside_analog_layers() {
    let layers = r#"
        { conv2d = { out = 8, kernel = 5, stride = 2, bias = false, quantization = "binary" } },
        "batchnorm2d", "sign", "flatten", { linear = 32 }, "relu", { linear = 10 }"#;
    let digital = net([1, 28, 28], layers, 13).quantized();
    let test = mnist10k().unwrap().test.take(40);
    let device = rram(2e-6);
    let run = |threads: usize| {
        common::on_threads(threads, || {
            deployment(&device, 14)
                .evaluate_sequential(&digital, InputScaling::AbsMax, &[], &test)
                .unwrap()
        })
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert!(
        one.bit_error_rate > 0.1,
        "bit-error rate {}",
        one.bit_error_rate
    );
    assert!(one.weight_rms_error > 0.0, "analog weight error");
}

/// Deploying binary layers whose weights were never quantised is refused with the fix.
#[test]
fn unquantized_binary_weights_are_refused_at_deployment() {
    let hidden = net(
        [1, 2, 2],
        r#""flatten", { linear = { out = 3, quantization = "binary" } }"#,
        2,
    );
    let device = rram(1e-4);
    let err = deployment(&device, 1)
        .program_sequential(&hidden, InputScaling::AbsMax, &[])
        .err()
        .expect("refused");
    let e = format!("{err:#}");
    assert!(e.contains("quantise the network"), "{e}");
}
