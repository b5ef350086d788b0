//! Tests of binary (BNN) and ternary (TNN) networks: MNIST-10k accuracy, batch norm folded
//! into per-neuron thresholds, the bit-error hook, determinism and errors.

use xbar::nn::network::argmax_rows;
use xbar::nn::{
    Classifier, InputEncoding, Network, NoiseKind, Optimizer, Quantization, QuantizedMatrix,
    QuantizedMlp, TrainConfig, WeightNoise, evaluate, inject_bit_errors, train_quantized,
};

/// Adam with step 5e-3 as in the BNN literature (Courbariaux et al. 2016; Laborieux et al.
/// 2021), decayed by 0.9 per epoch, ±2-pixel shifts.
fn config(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 100,
        optimizer: Optimizer::adam(5e-3),
        learning_rate_decay: 0.9,
        max_shift_px: 2,
        seed: 3,
        ..TrainConfig::default()
    }
}

fn predictions(net: &mut impl Classifier, data: &xbar::data::Dataset) -> Vec<usize> {
    argmax_rows(
        &net.logits(&data.images, data.len()).unwrap(),
        net.classes(),
    )
}

fn accuracy(predicted: &[usize], data: &xbar::data::Dataset) -> f64 {
    let hits = predicted
        .iter()
        .zip(&data.labels)
        .filter(|&(&p, &l)| p == usize::from(l))
        .count();
    hits as f64 / data.len() as f64
}

/// Train a 784-512-10 network with ±1 inputs (every layer binary/ternary, as on a 2T2R
/// array) and check that the folded network makes exactly the same predictions.
fn trained_and_folded(q: Quantization) -> (QuantizedMlp, Network<QuantizedMatrix>, f64) {
    let split = xbar::data::mnist10k().unwrap();
    let mut net = QuantizedMlp::random(&[784, 512, 10], q, InputEncoding::Binary, 3).unwrap();
    let report = train_quantized(&mut net, &split.train, &config(30)).unwrap();
    let unfolded = predictions(&mut net, &split.test);
    let mut folded = net.fold().unwrap();
    let after = predictions(&mut folded, &split.test);
    let differ = unfolded.iter().zip(&after).filter(|(a, b)| a != b).count();
    let acc = accuracy(&unfolded, &split.test);
    let zeros = net
        .quantized_weights(0)
        .unwrap()
        .iter()
        .filter(|&&w| w == 0)
        .count();
    let negative_gamma = net
        .batch_norm(0)
        .unwrap()
        .gamma
        .iter()
        .filter(|&&g| g < 0.0)
        .count();
    eprintln!(
        "{q:?} 784-512-10: test accuracy {acc:.4} after {:.1} s of training; {differ} predictions \
         change on folding; {zeros} zero weights in layer 0; {negative_gamma} hidden neurons \
         with γ < 0",
        report.seconds()
    );
    assert_eq!(
        differ, 0,
        "folding batch norm into thresholds changed {differ} predictions"
    );
    assert_eq!(evaluate(&mut folded, &split.test).unwrap(), acc);
    (net, folded, acc)
}

/// BNN: folded thresholds reproduce the network; accuracy near the 95 % that fully
/// binary 784-512-10 networks reach on this 8,000-image training set; bit errors at
/// BER 1e-4 cost little (Hirtzlin et al., 2019: BNNs tolerate BER near 1e-4).
#[test]
fn bnn_folds_exactly_reaches_94_percent_and_tolerates_ber_1e_4() {
    let split = xbar::data::mnist10k().unwrap();
    let (_, folded, acc) = trained_and_folded(Quantization::Binary);
    assert!(acc >= 0.94, "BNN accuracy {acc}");
    let with_errors = |ber: f64, seed: u64| {
        let mut f = folded.clone();
        inject_bit_errors(&mut f, ber, seed).unwrap();
        f
    };
    // BER 0 changes nothing; BER 1 flips every weight of a binary network.
    let mut same = with_errors(0.0, 1);
    assert_eq!(evaluate(&mut same, &split.test).unwrap(), acc);
    let all = with_errors(1.0, 1);
    for (a, b) in all.layers().iter().zip(folded.layers()) {
        assert!(
            a.op.weights()
                .iter()
                .zip(b.op.weights())
                .all(|(x, y)| *x == -*y)
        );
    }
    // At BER 1e-2 the number of flipped weights is Binomial(n, 1e-2): within 5 sd of n·p.
    let flipped: usize = with_errors(1e-2, 2)
        .layers()
        .iter()
        .zip(folded.layers())
        .map(|(a, b)| {
            a.op.weights()
                .iter()
                .zip(b.op.weights())
                .filter(|(x, y)| x != y)
                .count()
        })
        .sum();
    let n = (784 * 512 + 512 * 10) as f64;
    let (mean, sd) = (n * 1e-2, (n * 1e-2 * (1.0 - 1e-2)).sqrt());
    assert!(
        (flipped as f64 - mean).abs() < 5.0 * sd,
        "{flipped} flips, expected {mean} ± {sd}"
    );
    // BER 1e-4: mean loss over 5 error patterns below one percentage point.
    let mean_acc: f64 = (0..5)
        .map(|s| evaluate(&mut with_errors(1e-4, 10 + s), &split.test).unwrap())
        .sum::<f64>()
        / 5.0;
    eprintln!("BNN accuracy at BER 1e-4: {mean_acc:.4} (error-free {acc:.4})");
    assert!(
        acc - mean_acc < 0.01,
        "BER 1e-4 costs {} of accuracy",
        acc - mean_acc
    );
    let ber_error = inject_bit_errors(&mut folded.clone(), 1.5, 0)
        .unwrap_err()
        .to_string();
    assert!(ber_error.contains("bit_error_rate"), "{ber_error}");
}

/// TNN: folded pairs of thresholds reproduce the network; ternary networks do at least as
/// well as binary ones (Laborieux et al., 2020); a ternary bit error always changes the
/// weight to another allowed value.
#[test]
fn tnn_folds_exactly_and_reaches_95_percent() {
    let (net, folded, acc) = trained_and_folded(Quantization::Ternary);
    assert!(acc >= 0.95, "TNN accuracy {acc}");
    let layer0 = net.quantized_weights(0).unwrap();
    let zeros = layer0.iter().filter(|&&w| w == 0).count();
    assert!(
        zeros > 0 && zeros < layer0.len(),
        "ternary layer uses all three values"
    );
    let mut all = folded.clone();
    inject_bit_errors(&mut all, 1.0, 4).unwrap();
    for (a, b) in all.layers().iter().zip(folded.layers()) {
        assert!(
            a.op.weights()
                .iter()
                .zip(b.op.weights())
                .all(|(x, y)| x != y && (-1..=1).contains(x))
        );
    }
}

/// Same seed, 1 or 2 threads: bit-identical binary networks.
#[test]
fn quantized_training_is_bit_identical_with_1_and_2_threads() {
    let split = xbar::data::mnist10k().unwrap();
    let train = split.train.take(600);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut net = QuantizedMlp::random(
                &[784, 256, 10],
                Quantization::Ternary,
                InputEncoding::Real,
                5,
            )
            .unwrap();
            train_quantized(&mut net, &train, &config(2)).unwrap();
            net
        })
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert_ne!(
        one.hidden_weights(0),
        QuantizedMlp::random(
            &[784, 256, 10],
            Quantization::Ternary,
            InputEncoding::Real,
            5
        )
        .unwrap()
        .hidden_weights(0)
    );
}

#[test]
fn bad_quantized_settings_give_clear_errors() {
    let split = xbar::data::mnist10k().unwrap();
    let train = split.train.take(50);
    let mut net =
        QuantizedMlp::random(&[784, 16, 10], Quantization::Binary, InputEncoding::Real, 0).unwrap();
    let noise = Some(WeightNoise {
        kind: NoiseKind::Additive,
        relative_sigma: 0.1,
    });
    let e = train_quantized(
        &mut net,
        &train,
        &TrainConfig {
            weight_noise: noise,
            ..config(1)
        },
    );
    assert!(e.unwrap_err().to_string().contains("weight_noise"));
    let e = train_quantized(
        &mut net,
        &train,
        &TrainConfig {
            batch_size: 1,
            ..config(1)
        },
    );
    assert!(e.unwrap_err().to_string().contains("at least 2 images"));
    let e = QuantizedMatrix::new(2, 1, vec![1, 0], Quantization::Binary).unwrap_err();
    assert!(e.to_string().contains("weight 0 is not allowed"), "{e}");
    let e = QuantizedMatrix::new(2, 2, vec![1, 0], Quantization::Ternary).unwrap_err();
    assert!(e.to_string().contains("2 x 2"), "{e}");
    let mut wrong =
        QuantizedMlp::random(&[100, 10], Quantization::Binary, InputEncoding::Real, 0).unwrap();
    assert!(
        evaluate(&mut wrong, &split.test)
            .unwrap_err()
            .to_string()
            .contains("784 values")
    );
}
