//! Tests of the digital reference MLP: backprop against finite differences, the MNIST-10k
//! accuracy target, bit-identical training with 1 and 2 threads, hardware-aware training,
//! and clear errors for mismatched layers.

mod common;
use xbar::nn::{
    Classifier, Dense, Mlp, NoiseKind, Optimizer, TrainConfig, WeightNoise, evaluate, train,
};

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

/// The target: a 784-256-128-10 ReLU MLP reaches ≥ 96 % on MNIST-10k's 2,000 test
/// digits (trained on its 8,000 training digits).
#[test]
fn mlp_784_256_128_10_reaches_96_percent_on_mnist10k() {
    let split = xbar::data::mnist10k().unwrap();
    let mut mlp = Mlp::random(&[784, 256, 128, 10], 1).unwrap();
    let config = TrainConfig {
        epochs: 30,
        batch_size: 64,
        optimizer: Optimizer::adam(1e-3),
        learning_rate_decay: 0.92,
        max_shift_px: 2,
        seed: 1,
        ..TrainConfig::default()
    };
    let report = train(&mut mlp, &split.train, &config).unwrap();
    let acc = evaluate(&mut mlp, &split.test).unwrap();
    eprintln!(
        "784-256-128-10 MLP: test accuracy {:.4} after {} epochs, {:.1} s of training",
        acc,
        config.epochs,
        report.seconds()
    );
    for e in &report.epochs {
        eprintln!(
            "  epoch {} loss {:.4} train acc {:.4} {:.2} s",
            e.epoch, e.loss, e.train_accuracy, e.seconds
        );
    }
    assert!(acc >= 0.96, "test accuracy {acc}");
}

/// A small problem for the tests that are not about the accuracy target.
fn small_split(n_train: usize) -> xbar::data::Split {
    let split = xbar::data::mnist10k().unwrap();
    xbar::data::Split {
        train: split.train.take(n_train),
        test: split.test,
    }
}

/// Add `delta` to weight (or bias) `i` of layer `l`.
fn nudge(m: &mut Mlp, l: usize, is_bias: bool, i: usize, delta: f32) {
    let layer = &mut m.layers_mut()[l];
    if is_bias {
        layer.bias_mut()[i] += delta;
    } else {
        layer.weight_mut()[i] += delta;
    }
}

/// Backpropagation gives the derivative of the loss: compare every weight and bias
/// gradient of a 12-7-5-3 ReLU network with central finite differences
/// `(L(θ + h) − L(θ − h)) / 2h`, whose error is O(h²) plus f32 rounding of the loss.
#[test]
fn backprop_matches_finite_differences() {
    let mut mlp = Mlp::random(&[12, 7, 5, 3], 5).unwrap();
    // Non-zero biases so that their gradients are exercised away from the initial state.
    for layer in mlp.layers_mut() {
        let n = layer.bias().len();
        layer
            .bias_mut()
            .iter_mut()
            .enumerate()
            .for_each(|(j, b)| *b = 0.05 * (j as f32 - n as f32 / 2.0));
    }
    let batch = 4;
    let x: Vec<f32> = (0..batch * 12)
        .map(|i| ((i * 7919 % 101) as f32 / 101.0) - 0.3)
        .collect();
    let labels = [0u8, 2, 1, 2];
    let (_, grads) = mlp.loss_and_gradients(&x, &labels).unwrap();
    assert_eq!(grads.len(), mlp.layers().len());
    for (g, layer) in grads.iter().zip(mlp.layers()) {
        assert_eq!(
            (g.weight.len(), g.bias.len()),
            (layer.weight().len(), layer.bias().len())
        );
    }
    let h = 1e-3f32;
    let mut largest = 0.0f32;
    for (l, grad) in grads.iter().enumerate() {
        for (is_bias, analytic_grad) in [(false, &grad.weight), (true, &grad.bias)] {
            for (i, &analytic) in analytic_grad.iter().enumerate() {
                let probe = |delta: f32| {
                    let mut m = mlp.clone();
                    nudge(&mut m, l, is_bias, i, delta);
                    m.loss(&x, &labels).unwrap()
                };
                let numeric = ((probe(h) - probe(-h)) / (2.0 * f64::from(h))) as f32;
                largest = largest.max(analytic.abs());
                assert!(
                    (numeric - analytic).abs() <= 2e-4 + 1e-2 * analytic.abs(),
                    "layer {l} {} {i}: numeric {numeric}, backprop {analytic}",
                    if is_bias { "bias" } else { "weight" }
                );
            }
        }
    }
    assert!(
        largest > 1e-2,
        "gradients too small to test anything: {largest}"
    );
}

fn bits(mlp: &Mlp) -> Vec<u32> {
    mlp.layers()
        .iter()
        .flat_map(|l| l.weight().iter().chain(l.bias()))
        .map(|v| v.to_bits())
        .collect()
}

/// Same seed, 1 or 2 threads: bit-identical weights (every random draw comes from
/// `rng::stream(seed, path)` and no parallel reduction splits a sum).
#[test]
fn training_is_bit_identical_with_1_and_2_threads() {
    let split = small_split(1000);
    let config = TrainConfig {
        epochs: 2,
        batch_size: 50,
        weight_noise: Some(WeightNoise {
            kind: NoiseKind::Multiplicative,
            relative_sigma: 0.1,
        }),
        max_shift_px: 1,
        seed: 9,
        ..TrainConfig::default()
    };
    let run = |threads: usize| {
        pool(threads).install(|| {
            let mut mlp = Mlp::random(&[784, 300, 10], 4).unwrap();
            train(&mut mlp, &split.train, &config).unwrap();
            mlp
        })
    };
    let (one, two) = (run(1), run(2));
    assert_eq!(bits(&one), bits(&two));
    assert_ne!(
        bits(&one),
        bits(&Mlp::random(&[784, 300, 10], 4).unwrap()),
        "training changed nothing"
    );
}

/// Hardware-aware training: a network trained with additive weight noise (σ = 15 % of
/// the layer's largest weight, redrawn every mini-batch) keeps more of its accuracy when
/// its weights are perturbed by that noise than a network trained without it (the
/// robustness that noise injection buys, e.g. Joshi et al., Nat. Commun. 2020).
#[test]
fn noise_trained_networks_lose_less_accuracy_under_weight_noise() {
    let split = small_split(3000);
    let noise = WeightNoise {
        kind: NoiseKind::Additive,
        relative_sigma: 0.15,
    };
    let base = TrainConfig {
        epochs: 6,
        seed: 2,
        ..TrainConfig::default()
    };
    let mut results = Vec::new();
    for weight_noise in [None, Some(noise)] {
        let mut mlp = Mlp::random(&[784, 128, 10], 2).unwrap();
        train(
            &mut mlp,
            &split.train,
            &TrainConfig {
                weight_noise,
                ..base.clone()
            },
        )
        .unwrap();
        let clean = evaluate(&mut mlp, &split.test).unwrap();
        let draws = 10;
        let noisy: f64 = (0..draws)
            .map(|d| evaluate(&mut mlp.perturbed(&noise, 100 + d).unwrap(), &split.test).unwrap())
            .sum::<f64>()
            / draws as f64;
        eprintln!("trained with {weight_noise:?}: clean {clean:.4}, perturbed {noisy:.4}");
        results.push((clean, noisy));
    }
    let (plain, aware) = (results[0], results[1]);
    assert!(
        aware.0 - aware.1 < plain.0 - plain.1,
        "plain {plain:?}, noise-aware {aware:?}"
    );
    assert!(aware.1 > plain.1, "plain {plain:?}, noise-aware {aware:?}");
}

/// SGD with momentum also trains (a different optimiser path).
#[test]
fn sgd_with_momentum_learns() {
    let split = small_split(2000);
    let config = TrainConfig {
        epochs: 3,
        optimizer: Optimizer::Sgd {
            learning_rate: 0.05,
            momentum: 0.9,
        },
        ..TrainConfig::default()
    };
    let mut mlp = Mlp::random(&[784, 64, 10], 1).unwrap();
    let report = train(&mut mlp, &split.train, &config).unwrap();
    let acc = evaluate(&mut mlp, &split.test).unwrap();
    assert!(report.epochs[2].loss < report.epochs[0].loss, "{report:?}");
    assert!(acc > 0.85, "SGD test accuracy {acc}");
}

/// Deploying on the digital weights themselves (the ideal-device twin) reproduces the
/// MLP's scores exactly.
#[test]
fn deployment_on_digital_operators_is_exact() {
    let split = small_split(10);
    let mut mlp = Mlp::random(&[784, 32, 16, 10], 8).unwrap();
    let mut net = mlp.deploy(|_, layer| Ok(layer.clone())).unwrap();
    let x = &split.test.images[..50 * 784];
    assert_eq!(mlp.logits(x, 50).unwrap(), net.logits(x, 50).unwrap());
    assert_eq!(
        evaluate(&mut mlp, &split.test).unwrap(),
        evaluate(&mut net, &split.test).unwrap()
    );
}

fn err_text<T: std::fmt::Debug>(r: anyhow::Result<T>) -> String {
    format!("{:#}", r.expect_err("expected an error"))
}

#[test]
fn mismatched_layers_and_bad_settings_give_clear_errors() {
    let a = Dense::new(4, 3, vec![0.0; 12], vec![0.0; 3]).unwrap();
    let b = Dense::new(5, 2, vec![0.0; 10], vec![0.0; 2]).unwrap();
    let e = err_text(Mlp::new(vec![a, b]));
    assert!(
        e.contains("layer 1 takes 5 inputs but layer 0 has 3 outputs"),
        "{e}"
    );
    assert!(
        err_text(Dense::new(4, 3, vec![0.0; 11], vec![0.0; 3]))
            .contains("expected outputs x inputs = 3 x 4")
    );
    assert!(err_text(Dense::new(4, 3, vec![0.0; 12], vec![0.0; 4])).contains("bias has 4 values"));
    assert!(err_text(Dense::new(1, 1, vec![f32::NAN], vec![0.0])).contains("finite"));
    let split = small_split(100);
    let mut wrong_inputs = Mlp::random(&[100, 10], 0).unwrap();
    let e = err_text(evaluate(&mut wrong_inputs, &split.test));
    assert!(
        e.contains("takes 100 inputs") && e.contains("784 values"),
        "{e}"
    );
    let mut too_few_classes = Mlp::random(&[784, 5], 0).unwrap();
    let e = err_text(train(
        &mut too_few_classes,
        &split.train,
        &TrainConfig::default(),
    ));
    assert!(e.contains("only 5 outputs"), "{e}");
    let mlp = Mlp::random(&[784, 10], 0).unwrap();
    let bad = |c: TrainConfig| err_text(train(&mut mlp.clone(), &split.train, &c));
    assert!(
        bad(TrainConfig {
            batch_size: 0,
            ..Default::default()
        })
        .contains("batch_size")
    );
    assert!(
        bad(TrainConfig {
            epochs: 0,
            ..Default::default()
        })
        .contains("epochs")
    );
    assert!(
        bad(TrainConfig {
            optimizer: Optimizer::adam(-1.0),
            ..Default::default()
        })
        .contains("learning_rate")
    );
    let noise = Some(WeightNoise {
        kind: NoiseKind::Additive,
        relative_sigma: -0.1,
    });
    assert!(
        bad(TrainConfig {
            weight_noise: noise,
            ..Default::default()
        })
        .contains("relative_sigma")
    );
    assert!(
        bad(TrainConfig {
            learning_rate_decay: 1.5,
            ..Default::default()
        })
        .contains("learning_rate_decay")
    );
    // Unknown keys in a configuration file are errors naming the key.
    let e = toml::from_str::<TrainConfig>("epochs = 3\nbatchsize = 10\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("batchsize"), "{e}");
    let e = mlp
        .loss_and_gradients(&[0.0; 784], &[12])
        .unwrap_err()
        .to_string();
    assert!(e.contains("label 12"), "{e}");
}

/// Any IDX data set works: a synthetic 4 x 4 set (class 0 lights the top half, class 1
/// the bottom half, plus a deterministic speckle) is learnt perfectly.
#[test]
fn trains_on_any_idx_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    for i in 0..200usize {
        let class = (i % 2) as u8;
        for p in 0..16usize {
            let lit = (p < 8) == (class == 0);
            let speckle = ((i * 31 + p * 17) % 40) as u8;
            images.push(if lit { 200 + speckle } else { speckle });
        }
        labels.push(class);
    }
    common::write_idx_split(dir.path(), "train", &images, &labels, 4, 4);
    common::write_idx_split(dir.path(), "t10k", &images, &labels, 4, 4);
    let split = xbar::data::idx::load_dir(dir.path()).unwrap();
    let mut mlp = Mlp::random(&[16, 8, 2], 0).unwrap();
    let config = TrainConfig {
        epochs: 5,
        batch_size: 20,
        ..TrainConfig::default()
    };
    train(&mut mlp, &split.train, &config).unwrap();
    assert_eq!(evaluate(&mut mlp, &split.test).unwrap(), 1.0);
}
