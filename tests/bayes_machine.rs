//! The memristor Bayesian machine model (`bayes::machine`, library API): stochastic
//! computing converges to exact naive Bayes, the binomial shortcut matches bit-level
//! streams, and memory bit errors match the device model. The study built on it is tested
//! in `study_bayesian_machine.rs`.

use rand::RngExt;
use xbar::bayes::machine::{
    BayesianMachine, CellKind, LikelihoodMemory, NaiveBayes, StreamBiases, auto_exponent,
    comparator_probability, decide, observe, quantise_word, store_words,
};
use xbar::rng::stream;

/// Two-sided acceptance band in standard errors for the statistical checks.
const Z: f64 = 4.5;

fn small_sets() -> (xbar::data::Dataset, xbar::data::Dataset) {
    let split = xbar::data::mnist10k().unwrap();
    (split.train.take(3000), split.test.take(300))
}

/// Stochastic computing estimates each class's product P_y by the fraction of ones of its
/// AND-ed stream, Binomial(L, P_y) / L -> P_y as L -> infinity (law of large numbers); with
/// fine (16-bit) words the ordering of the P_y is that of the exact posterior (the per-block
/// normalisation and the exponent are monotonic), so the machine's decisions converge to
/// the exact floating-point naive Bayes decisions.
#[test]
fn long_streams_converge_to_exact_naive_bayes() {
    let (train, test) = small_sets();
    let (train_obs, test_obs) = (
        observe(&train, 4, 4).unwrap(),
        observe(&test, 4, 4).unwrap(),
    );
    let nb = NaiveBayes::fit(&train_obs, 10, 1.0);
    let bits = 16;
    let gamma = auto_exponent(&nb, &train_obs, 0.1);
    let words: Vec<Vec<u32>> = nb
        .normalised_blocks()
        .iter()
        .map(|b| {
            b.iter()
                .map(|l| quantise_word((gamma * l).exp(), bits))
                .collect()
        })
        .collect();
    let machine = BayesianMachine::new(10, words, bits, StreamBiases::ideal());
    let lengths = [8, 1 << 22];
    let (mut agree_short, mut agree_long) = (0, 0);
    for n in 0..test_obs.len() {
        let values = test_obs.image(n);
        let exact = nb.predict(values);
        let mut rng = stream(5, &[n as u64]);
        let counts = machine.counts(values, &lengths, &mut rng);
        agree_short += usize::from(decide(&counts[0], &mut rng) == exact);
        agree_long += usize::from(decide(&counts[1], &mut rng) == exact);
    }
    let n = test_obs.len() as f64;
    let (short, long) = (agree_short as f64 / n, agree_long as f64 / n);
    assert!(
        long >= 0.97,
        "agreement with exact naive Bayes at L = 2^22: {long}"
    );
    assert!(
        short < long - 0.2,
        "L = 8 should be far from exact: {short} vs {long}"
    );
}

/// `P(R < Q)` of a B-bit number of independent biased bits, checked against brute-force
/// enumeration of all 2^B numbers with their probabilities.
#[test]
fn comparator_probability_matches_enumeration() {
    let bias = [0.3, 0.55, 0.7, 0.45];
    for q in 0..16u32 {
        let mut brute = 0.0;
        for r in 0..16u32 {
            let p: f64 = (0..4)
                .map(|k| {
                    let bit = (r >> (3 - k)) & 1 == 1;
                    if bit { bias[k] } else { 1.0 - bias[k] }
                })
                .product();
            if r < q {
                brute += p;
            }
        }
        let formula = comparator_probability(q, 4, Some(&bias));
        assert!(
            (formula - brute).abs() < 1e-12,
            "q = {q}: {formula} vs {brute}"
        );
        assert_eq!(comparator_probability(q, 4, None), f64::from(q) / 16.0);
    }
}

/// Simulating every random bit, comparator and AND gate gives counts whose mean is
/// L P_y with binomial spread: the exactness of the binomial shortcut with biased sources.
#[test]
fn bitwise_streams_match_the_binomial_model() {
    let (classes, blocks, bits) = (3usize, 4usize, 4u32);
    let mut rng = stream(9, &[]);
    let words: Vec<Vec<u32>> = (0..blocks)
        .map(|_| {
            (0..2 * classes)
                .map(|_| rng.random_range(6..16u32))
                .collect()
        })
        .collect();
    let biases: Vec<Vec<Vec<f64>>> = (0..blocks)
        .map(|_| {
            (0..classes)
                .map(|_| (0..bits).map(|_| rng.random_range(0.3..0.7)).collect())
                .collect()
        })
        .collect();
    let sources = StreamBiases {
        biases: Some(biases),
        energy_per_bit_j: 0.0,
    };
    let machine = BayesianMachine::new(classes, words, bits, sources);
    let values = [1u8, 0, 1];
    let length = 20_000u64;
    let counts = machine.bitwise_counts(&values, length, &mut rng);
    let log_p = machine.class_log_probability(&values);
    for (y, (&count, l)) in counts.iter().zip(&log_p).enumerate() {
        let p = l.exp();
        let mean = length as f64 * p;
        let sd = (length as f64 * p * (1.0 - p)).sqrt();
        assert!(
            (count as f64 - mean).abs() < Z * sd,
            "class {y}: {count} ones, binomial mean {mean} sd {sd}"
        );
    }
}

/// A 2T2R bit reads wrong when the LRS cell's conductance falls below the HRS cell's: with
/// lognormal resistances, BER = Phi((ln R_LRS - ln R_HRS) / sqrt(s_LRS^2 + s_HRS^2)), with
/// R_LRS = V_c / I_cc and s_LRS = s_ref (I_ref / I_cc)^alpha (the rram_hfo2 binary model).
#[test]
fn bit_error_rate_matches_the_lognormal_overlap() {
    let i_cc = 5e-6;
    let mut overrides = toml::Table::new();
    for (k, v) in [
        ("i_compliance_a", i_cc),
        ("p_stuck_lrs", 0.0),
        ("p_stuck_hrs", 0.0),
    ] {
        overrides.insert(k.to_string(), toml::Value::Float(v));
    }
    let device = xbar::device::preset::load("rram_hfo2", &overrides).unwrap();
    let memory = LikelihoodMemory {
        device: &device,
        cell: CellKind::TwoT2R,
        read_voltage_v: 0.1,
        read_time_s: 10e-9,
    };
    let words: Vec<Vec<u32>> = (0..40)
        .map(|b| (0..200).map(|k| (b * 7 + k) % 256).collect())
        .collect();
    let stored = store_words(&words, 8, &memory, 1, 1);
    let (v_c, r_hrs, s_hrs, s_ref, i_ref, alpha) = (0.4, 200e3, 0.5, 0.1, 100e-6, 0.5);
    let s_lrs = s_ref * f64::powf(i_ref / i_cc, alpha);
    let z = (f64::ln(v_c / i_cc) - f64::ln(r_hrs)) / (s_lrs * s_lrs + s_hrs * s_hrs).sqrt();
    let expected = 0.5 * erfc(-z / std::f64::consts::SQRT_2);
    let measured = stored.bit_errors as f64 / stored.bits as f64;
    let se = (expected * (1.0 - expected) / stored.bits as f64).sqrt();
    assert!(
        (measured - expected).abs() < Z * se,
        "BER {measured} vs {expected} (se {se})"
    );
}

/// Complementary error function (Numerical Recipes `erfcc`, relative error < 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}
