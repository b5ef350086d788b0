//! Tests of the metaplastic BNN (Laborieux et al., Nature Communications 2021) and of the
//! permuted-MNIST task builder.

mod common;

use rand::RngExt;
use xbar::crossbar::TileConfig;
use xbar::data::tasks::{permuted_tasks, pixel_permutation};
use xbar::data::{Dataset, Split, mnist10k};
use xbar::device::{AnyDevice, preset};
use xbar::learning::metaplastic::{
    AdamHyper, MetaRule, MetaplasticAdam, MetaplasticBnn, f_meta, modulate,
};
use xbar::learning::rule::{
    LearningRule, LocalSignals, Phase, SignalRequest, WeightChange, apply_change,
};
use xbar::studies::metaplastic_pmnist::{
    PmnistConfig, PmnistReport, pmnist_table, run_pmnist_on, save_pmnist_figures,
};
use xbar::synapses::OuterProductUpdate;
use xbar::synapses::{BinarySynapses, SynapticLayer, WriteTally};

/// A small MNIST-10k split: the first `train` / `test` digits.
fn small_mnist(train: usize, test: usize) -> Split {
    let data = mnist10k().expect("embedded MNIST-10k");
    Split {
        train: data.train.take(train),
        test: data.test.take(test),
    }
}

fn rram() -> AnyDevice {
    preset::load("rram_hfo2", &toml::Table::new()).expect("rram preset")
}

/// 2T2R tiles as the experiment's default: binary encoding, open-loop programming.
fn binary_tile() -> TileConfig {
    PmnistConfig::default().tile
}

/// A network of `sizes` on RRAM 2T2R pairs, programmed to its initial signs, and its
/// metaplastic Adam rule (paper hyper-parameters).
fn rram_net(sizes: &[usize], seed: u64, meta: MetaRule) -> (MetaplasticBnn, MetaplasticAdam) {
    let (mut net, hidden) =
        MetaplasticBnn::new(sizes, 0.1, rram(), &binary_tile(), seed).expect("network");
    net.program_all().expect("initial programming");
    let rule = MetaplasticAdam::new(hidden, AdamHyper::paper(), meta).expect("rule");
    (net, rule)
}

/// `+1` for `w ≥ 0`, else `−1`.
fn sign(w: f32) -> f32 {
    if w >= 0.0 { 1.0 } else { -1.0 }
}

/// The first `batch` images of `data` and their labels.
fn batch_of(data: &Dataset, start: usize, batch: usize) -> (Vec<f32>, Vec<u8>) {
    let d = data.features();
    (
        data.images[start * d..(start + batch) * d].to_vec(),
        data.labels[start..start + batch].to_vec(),
    )
}

/// Train `steps` mini-batches of 50 images with `meta`; returns the trained network and
/// its rule.
fn train_steps(meta: MetaRule, steps: usize, data: &Dataset) -> (MetaplasticBnn, MetaplasticAdam) {
    let (mut net, mut rule) = rram_net(&[784, 64, 10], 7, meta);
    let mut bn_adam = net.batch_norm_adam(AdamHyper::paper());
    for s in 0..steps {
        let (x, y) = batch_of(data, (s * 50) % (data.len() - 50), 50);
        net.train_step(&mut rule, &mut bn_adam, &x, &y)
            .expect("train step");
    }
    (net, rule)
}

/// With m = 0, f_meta = 1 − tanh²(0) = 1 exactly, so the metaplastic rule must be the
/// plain BNN update bit for bit (hidden weights, binary weights and batch norm); m = 1.35
/// must differ (the comparison can fail).
#[test]
fn m_zero_is_bit_identical_to_the_plain_bnn_update() {
    let data = small_mnist(1000, 10).train;
    let plain = train_steps(MetaRule::Plain, 40, &data);
    let m0 = train_steps(MetaRule::Metaplastic { m: 0.0 }, 40, &data);
    let m135 = train_steps(MetaRule::Metaplastic { m: 1.35 }, 40, &data);
    for l in 0..plain.0.depth() {
        let bits = |r: &MetaplasticAdam| -> Vec<u32> {
            r.hidden_weights(l)
                .unwrap()
                .iter()
                .map(|w| w.to_bits())
                .collect()
        };
        let binary = |n: &MetaplasticBnn| n.synapses(l).unwrap().weights().to_vec();
        assert_eq!(bits(&plain.1), bits(&m0.1), "layer {l} hidden weights");
        assert_eq!(binary(&plain.0), binary(&m0.0), "layer {l} binary weights");
        assert_ne!(
            bits(&plain.1),
            bits(&m135.1),
            "layer {l}: m = 1.35 changed nothing"
        );
    }
    assert_eq!(plain.0.batch_norm(), m0.0.batch_norm());
}

/// The paper's rule: an update that moves W_h towards zero (sign(W_h)·Δ < 0) is scaled by
/// f_meta = 1 − tanh²(m·W_h); an update away from zero is unchanged. Checked for both
/// signs of W_h and of Δ against tanh computed in f64.
#[test]
fn f_meta_attenuates_only_updates_towards_zero() {
    let m = 1.35f32;
    for &w in &[0.8f32, -0.8, 0.05, -2.5, 3.0] {
        let expected = 1.0 - (f64::from(m) * f64::from(w)).tanh().powi(2);
        assert!(
            (f64::from(f_meta(m, w)) - expected).abs() < 1e-6,
            "f_meta({w})"
        );
        for &delta in &[0.01f32, -0.01] {
            let got = modulate(MetaRule::Metaplastic { m }, w, delta);
            let towards_zero = w * delta < 0.0;
            if towards_zero {
                let want = f64::from(delta) * expected;
                assert!(
                    (f64::from(got) - want).abs() < 1e-8,
                    "w {w} Δ {delta}: {got}"
                );
                assert!(
                    got.abs() < delta.abs() && got * delta > 0.0,
                    "w {w} Δ {delta}"
                );
            } else {
                assert_eq!(
                    got, delta,
                    "w {w} Δ {delta}: an update away from zero changed"
                );
            }
            assert_eq!(modulate(MetaRule::Plain, w, delta), delta);
        }
    }
    // f_meta is 1 at W_h = 0 and for m = 0, even in W_h, and falls with |W_h|.
    assert_eq!(f_meta(m, 0.0), 1.0);
    assert_eq!(f_meta(0.0, 1.7), 1.0);
    assert_eq!(f_meta(m, 0.6), f_meta(m, -0.6));
    assert!(f_meta(m, 2.0) < f_meta(m, 1.0) && f_meta(m, 1.0) < f_meta(m, 0.5));
    // Strongly consolidated weights (|W_h| = 5/m) barely move towards zero.
    assert!(modulate(MetaRule::Metaplastic { m }, 5.0 / m, -0.01).abs() < 1e-5);
}

/// Every permutation is a rearrangement of 0..784, fixed by (seed, task), task 0 the
/// identity when asked; applying it moves pixel `perm[i]` to position `i`.
#[test]
fn permutations_are_permutations_fixed_by_seed() {
    let tasks = permuted_tasks(784, 5, 11, true).unwrap();
    assert_eq!(tasks[0].permutation, (0..784).collect::<Vec<_>>());
    for t in &tasks[1..] {
        let mut sorted = t.permutation.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..784).collect::<Vec<_>>(), "task {}", t.index);
        assert_eq!(t.permutation, pixel_permutation(784, 11, t.index));
        let moved = t
            .permutation
            .iter()
            .enumerate()
            .filter(|(i, p)| i != *p)
            .count();
        assert!(moved > 700, "task {}: only {moved} pixels moved", t.index);
    }
    assert_ne!(tasks[1].permutation, tasks[2].permutation);
    assert_ne!(tasks[1].permutation, pixel_permutation(784, 12, 1));
    // A shorter sequence is a prefix of a longer one; seed-only dependence.
    assert_eq!(
        permuted_tasks(784, 3, 11, true).unwrap(),
        tasks[..3].to_vec()
    );
    assert_ne!(permuted_tasks(784, 2, 11, false).unwrap()[0], tasks[0]);
    let data = small_mnist(3, 1).train;
    let permuted = tasks[2].apply(&data).unwrap();
    for n in 0..data.len() {
        for (i, &p) in tasks[2].permutation.iter().enumerate() {
            assert_eq!(permuted.image(n)[i], data.image(n)[p]);
        }
    }
    assert_eq!(permuted.labels, data.labels);
}

/// A write happens exactly when a hidden weight changes sign: the flips a step reports
/// equal the sign changes of W_h, each write is two pulses (SET + RESET of the 2T2R
/// pair), and RRAM writes cost energy.
#[test]
fn writes_are_the_sign_flips_of_the_hidden_weights() {
    let data = small_mnist(200, 10).train;
    let (mut net, mut rule) = rram_net(&[784, 64, 10], 3, MetaRule::Metaplastic { m: 1.35 });
    let mut bn_adam = net.batch_norm_adam(AdamHyper::paper());
    let mut total_flips = 0;
    for s in 0..3 {
        let before: Vec<Vec<f32>> = (0..2)
            .map(|l| rule.hidden_weights(l).unwrap().to_vec())
            .collect();
        let (x, y) = batch_of(&data, s * 50, 50);
        let r = net.train_step(&mut rule, &mut bn_adam, &x, &y).unwrap();
        for (l, old) in before.iter().enumerate() {
            let hidden = rule.hidden_weights(l).unwrap();
            let changed = old
                .iter()
                .zip(hidden)
                .filter(|(a, b)| sign(**a) != sign(**b))
                .count() as u64;
            assert_eq!(r.flips_per_layer[l], changed, "step {s} layer {l}");
            let signs: Vec<f32> = hidden.iter().map(|&w| sign(w)).collect();
            assert_eq!(net.synapses(l).unwrap().weights(), signs.as_slice());
        }
        let flips: u64 = r.flips_per_layer.iter().sum();
        assert_eq!(r.writes.synapse_writes, flips);
        assert_eq!(r.writes.pulses, 2 * flips);
        assert!(flips == 0 || r.writes.energy_j > 0.0);
        total_flips += flips;
    }
    assert!(total_flips > 0, "three Adam steps flipped no weight");
}

/// Shapes of the single-layer checks of the rule and the 2T2R layer.
const OUTPUTS: usize = 24;
const INPUTS: usize = 40;
const BATCH: usize = 16;

/// `n` values uniform in `range` from stream `(seed, [stream])`.
fn uniform(n: usize, range: std::ops::Range<f32>, seed: u64, stream: u64) -> Vec<f32> {
    let mut r = xbar::rng::stream(seed, &[stream]);
    (0..n).map(|_| r.random_range(range.clone())).collect()
}

/// Hidden weights of one layer: every other weight near zero (`±0.02`, so one Adam step of
/// 0.05 can flip it), the others far from it (`±3`; `f_meta(1.35, W_h) < 0.01` beyond
/// `|W_h| ≈ 2.2`).
fn mixed_hidden_weights() -> Vec<f32> {
    let near = uniform(OUTPUTS * INPUTS, -0.02..0.02, 21, 0);
    let far = uniform(OUTPUTS * INPUTS, -3.0..3.0, 21, 1);
    (0..OUTPUTS * INPUTS)
        .map(|i| if i % 2 == 0 { near[i] } else { far[i] })
        .collect()
}

/// A fabricated and programmed RRAM 2T2R layer of binary weights `sign(initial)`.
fn rram_layer(initial: &[f32]) -> BinarySynapses {
    let mut layer =
        BinarySynapses::fabricate(rram(), INPUTS, OUTPUTS, initial, binary_tile(), 4).unwrap();
    let mut initial_writes = WriteTally::default();
    layer.program_all(&mut initial_writes).unwrap();
    assert_eq!(initial_writes.synapse_writes, (OUTPUTS * INPUTS) as u64);
    assert_eq!(layer.take_writes(), WriteTally::default());
    layer
}

/// `y = x · Wᵀ` for a batch, in f64 (`w` is `OUTPUTS x INPUTS`).
fn product(x: &[f32], w: &[f32]) -> Vec<f64> {
    x.chunks(INPUTS)
        .flat_map(|xv| {
            w.chunks(INPUTS).map(move |row| {
                row.iter()
                    .zip(xv)
                    .map(|(&a, &b)| f64::from(a) * f64::from(b))
                    .sum::<f64>()
            })
        })
        .collect()
}

fn assert_close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!((f64::from(g) - w).abs() < 1e-4, "{what}[{i}]: {g} vs {w}");
    }
}

/// RRAM without stuck cells at programming compliance current `i_cc` (A).
fn rram_at(i_cc: f64) -> AnyDevice {
    let overrides: toml::Table = toml::from_str(&format!(
        "i_compliance_a = {i_cc:e}\np_stuck_lrs = 0.0\np_stuck_hrs = 0.0"
    ))
    .unwrap();
    preset::load("rram_hfo2", &overrides).unwrap()
}

/// The binary weights are read through the 2T2R precharge sense amplifiers of the
/// crossbar (`crossbar::sense`, as in the `bnn_2t2r` inference experiment), not as the
/// stored sign: with well-separated LRS/HRS (100 µA), no offset and no read noise every
/// sensed bit is the programmed sign; at 5 µA the LRS and HRS distributions overlap
/// (bit-error rate 8.6 % in `bnn_2t2r`), so sensed bits differ from the programmed signs,
/// the forward read multiplies by the sensed bits, each forward read senses afresh and is
/// recorded in the energy ledger, and the transposed read uses the bits latched by the
/// last forward read.
#[test]
fn binary_synapses_read_through_the_sense_amplifiers() {
    let initial = mixed_hidden_weights();
    let signs: Vec<f32> = initial.iter().map(|&w| sign(w)).collect();
    let x = uniform(BATCH * INPUTS, -1.0..1.0, 25, 0);
    let d = uniform(BATCH * OUTPUTS, -1.0..1.0, 25, 1);
    let mut y = vec![0.0; BATCH * OUTPUTS];
    let mut dx = vec![0.0; BATCH * INPUTS];

    let mut quiet = binary_tile();
    quiet.periphery.read_noise = false;
    quiet.periphery.sense_amp.offset_sigma_s = 0.0;
    let mut layer =
        BinarySynapses::fabricate(rram_at(1e-4), INPUTS, OUTPUTS, &initial, quiet, 6).unwrap();
    layer.program_all(&mut WriteTally::default()).unwrap();
    let err = layer
        .transposed(&d, BATCH, &mut dx)
        .unwrap_err()
        .to_string();
    assert!(err.contains("read forward first"), "{err}");
    layer.forward(&x, BATCH, &mut y).unwrap();
    assert_eq!(layer.sensed_weights(), signs.as_slice());
    assert_eq!(layer.bit_error_rate(), 0.0);
    assert_close(&y, &product(&x, &signs), "quiet forward read");
    let one_read = layer.energy().read_j();
    assert!(one_read > 0.0, "sensing is not in the ledger");
    layer.forward(&x, BATCH, &mut y).unwrap();
    let two_reads = layer.energy().read_j();
    assert!((two_reads - 2.0 * one_read).abs() < 1e-9 * two_reads);

    let mut layer =
        BinarySynapses::fabricate(rram_at(5e-6), INPUTS, OUTPUTS, &initial, binary_tile(), 6)
            .unwrap();
    layer.program_all(&mut WriteTally::default()).unwrap();
    layer.forward(&x, BATCH, &mut y).unwrap();
    let first = layer.sensed_weights().to_vec();
    let wrong = first.iter().zip(&signs).filter(|(a, b)| a != b).count();
    assert!(
        wrong > 10 && wrong < OUTPUTS * INPUTS / 4,
        "{wrong} of {} bits sensed wrong at 5 µA",
        OUTPUTS * INPUTS
    );
    assert_eq!(layer.weights(), signs.as_slice(), "programmed signs kept");
    assert_close(&y, &product(&x, &first), "forward read of the sensed bits");
    layer.transposed(&d, BATCH, &mut dx).unwrap();
    let first_t: Vec<f32> = (0..INPUTS * OUTPUTS)
        .map(|k| first[(k % OUTPUTS) * INPUTS + k / OUTPUTS])
        .collect();
    let want_dx: Vec<f64> = d
        .chunks(OUTPUTS)
        .flat_map(|dv| {
            first_t.chunks(OUTPUTS).map(move |col| {
                col.iter()
                    .zip(dv)
                    .map(|(&a, &b)| f64::from(a) * f64::from(b))
                    .sum::<f64>()
            })
        })
        .collect();
    assert_close(&dx, &want_dx, "transposed read of the latched bits");
    layer.forward(&x, BATCH, &mut y).unwrap();
    assert_ne!(
        layer.sensed_weights(),
        first.as_slice(),
        "a second sensing drew no fresh read noise or offset"
    );
    let rate = layer.bit_error_rate();
    assert!(rate > 0.01 && rate < 0.25, "bit-error rate {rate}");
}

/// One proposal of the rule for a single layer (inputs uniform in [0, 1), errors in
/// ±1), with Adam's step size raised to 0.05; returns the hidden weights before and after
/// and the proposed change.
fn propose_once(meta: MetaRule) -> (Vec<f32>, Vec<f32>, WeightChange) {
    let before = mixed_hidden_weights();
    let hyper = AdamHyper {
        learning_rate: 0.05,
        ..AdamHyper::paper()
    };
    let mut rule = MetaplasticAdam::new(vec![before.clone()], hyper, meta).unwrap();
    assert!(rule.signals().error && !rule.signals().second_phase);
    let inputs = uniform(BATCH * INPUTS, 0.0..1.0, 22, 0);
    let outputs = vec![0.0; BATCH * OUTPUTS];
    let error = uniform(BATCH * OUTPUTS, -1.0..1.0, 22, 1);
    let signals = LocalSignals {
        layer: 0,
        batch: BATCH,
        rows: BATCH,
        phase: Phase {
            inputs: &inputs,
            outputs: &outputs,
            beta: 0.0,
        },
        error: Some(&error),
        second_phase: None,
    };
    let change = rule.propose(&signals).unwrap();
    let after = rule.hidden_weights(0).unwrap().to_vec();
    (before, after, change)
}

/// Through the learning-rule API (`propose` + `apply_change`), the metaplastic rule
/// proposes the change of the binary weights, sign(W_h') − sign(W_h) (±2 at a flip, 0
/// elsewhere), and the 2T2R layer re-programs exactly the flipped pairs: its write count
/// is the number of sign flips, two pulses each, and its weights are then sign(W_h').
#[test]
fn the_rule_through_the_api_reprograms_only_the_flipped_pairs() {
    for meta in [MetaRule::Plain, MetaRule::Metaplastic { m: 1.35 }] {
        let (before, after, change) = propose_once(meta);
        let WeightChange::Dense(delta) = &change else {
            panic!("{meta:?}: expected a dense change, got {change:?}");
        };
        let expected: Vec<f32> = before
            .iter()
            .zip(&after)
            .map(|(&b, &a)| sign(a) - sign(b))
            .collect();
        assert_eq!(delta, &expected, "{meta:?}");
        assert!(delta.iter().all(|&d| d == 0.0 || d.abs() == 2.0));
        let flips = delta.iter().filter(|&&d| d != 0.0).count() as u64;
        assert!(flips > 0, "{meta:?}: one step flipped no weight");
        assert!(
            flips < (OUTPUTS * INPUTS / 2) as u64,
            "{meta:?}: far weights flipped"
        );

        let mut layer = rram_layer(&before);
        apply_change(&mut layer, &change).unwrap();
        let writes = layer.take_writes();
        assert_eq!(writes.synapse_writes, flips, "{meta:?}");
        assert_eq!(writes.pulses, 2 * flips, "{meta:?}: SET + RESET per write");
        assert!(writes.energy_j > 0.0);
        let signs: Vec<f32> = after.iter().map(|&w| sign(w)).collect();
        assert_eq!(layer.weights(), signs.as_slice(), "{meta:?}");
        // No flip, no write.
        apply_change(&mut layer, &WeightChange::Dense(vec![0.0; delta.len()])).unwrap();
        assert_eq!(layer.take_writes(), WriteTally::default());
        assert_eq!(layer.weights(), signs.as_slice());
    }
}

/// Through the API, f_meta = 1 − tanh²(m·W_h) only attenuates steps towards zero: from the
/// same weights and signals, Adam's first step δ is the same for m = 0 and m = 1.35 (it
/// does not depend on m), so every weight moving away from zero must land on the same
/// value bit for bit, and every weight moving towards zero must move by δ·f_meta (checked
/// against tanh in f64) — hence the metaplastic flips are a subset of the plain ones.
#[test]
fn the_rule_through_the_api_attenuates_only_steps_towards_zero() {
    let m = 1.35f32;
    let (before, plain, _) = propose_once(MetaRule::Plain);
    let (_, meta, _) = propose_once(MetaRule::Metaplastic { m });
    let (mut towards, mut away, mut consolidated) = (0, 0, 0);
    for ((&w, &p), &q) in before.iter().zip(&plain).zip(&meta) {
        let (d_plain, d_meta) = (f64::from(p - w), f64::from(q - w));
        if f64::from(w) * d_plain < 0.0 {
            towards += 1;
            let f = 1.0 - (f64::from(m) * f64::from(w)).tanh().powi(2);
            assert!(
                (d_meta - d_plain * f).abs() < 1e-6,
                "W_h {w}: step {d_meta}, expected {d_plain} x {f}"
            );
            // Never amplified nor reversed (up to the f32 rounding of W_h + δ).
            assert!(
                d_meta.abs() <= d_plain.abs() + 1e-6 && d_meta * d_plain >= 0.0,
                "W_h {w}: step {d_meta}, plain {d_plain}"
            );
            consolidated += usize::from(f < 0.01);
        } else {
            away += 1;
            assert_eq!(
                p.to_bits(),
                q.to_bits(),
                "W_h {w}: a step away from zero changed"
            );
        }
        if sign(q) != sign(w) {
            assert_ne!(sign(p), sign(w), "W_h {w} flipped only with metaplasticity");
        }
    }
    assert!(towards > 50 && away > 50, "{towards} towards, {away} away");
    assert!(
        consolidated > 20,
        "only {consolidated} strongly attenuated steps"
    );
}

/// An outer-product change is carried out by a binary layer as its dense form,
/// W ← sign(W + ΔW): same weights and same writes, one per sign change.
#[test]
fn an_outer_product_change_is_rebinarised_like_its_dense_form() {
    let initial = mixed_hidden_weights();
    let update = OuterProductUpdate {
        post: uniform(BATCH * OUTPUTS, -1.0..1.0, 23, 0),
        pre: uniform(BATCH * INPUTS, -1.0..1.0, 23, 1),
        rows: BATCH,
        scale: 0.5,
    };
    let dense = update.dense();
    let mut by_outer = rram_layer(&initial);
    let mut by_dense = rram_layer(&initial);
    apply_change(&mut by_outer, &WeightChange::OuterProduct(update)).unwrap();
    apply_change(&mut by_dense, &WeightChange::Dense(dense.clone())).unwrap();
    let expected: Vec<f32> = initial
        .iter()
        .zip(&dense)
        .map(|(&w, &d)| sign(sign(w) + d))
        .collect();
    let changes = initial
        .iter()
        .zip(&expected)
        .filter(|(w, e)| sign(**w) != **e)
        .count() as u64;
    assert!(changes > 0 && changes < (OUTPUTS * INPUTS) as u64);
    assert_eq!(by_outer.weights(), expected.as_slice());
    assert_eq!(by_dense.weights(), expected.as_slice());
    let writes = by_outer.take_writes();
    assert_eq!(writes.synapse_writes, changes);
    assert_eq!(writes, by_dense.take_writes());
    let bad = apply_change(
        &mut by_dense,
        &WeightChange::Dense(vec![f32::NAN; dense.len()]),
    );
    assert!(format!("{:#}", bad.unwrap_err()).contains("non-finite"));
}

/// A rule that asks for a second phase, which a binarized network does not run.
struct TwoPhaseRule;

impl LearningRule for TwoPhaseRule {
    fn name(&self) -> &str {
        "two_phase"
    }

    fn signals(&self) -> SignalRequest {
        SignalRequest {
            error: false,
            second_phase: true,
        }
    }

    fn propose(&mut self, _: &LocalSignals<'_>) -> anyhow::Result<WeightChange> {
        Ok(WeightChange::None)
    }
}

/// The network refuses a rule whose signals it cannot provide, naming the rule.
#[test]
fn a_rule_needing_a_second_phase_is_refused() {
    let (mut net, _) = MetaplasticBnn::new(&[20, 8, 3], 0.1, rram(), &binary_tile(), 1).unwrap();
    let mut bn_adam = net.batch_norm_adam(AdamHyper::paper());
    let x = uniform(4 * 20, 0.0..1.0, 24, 0);
    let err = net
        .train_step(&mut TwoPhaseRule, &mut bn_adam, &x, &[0, 1, 2, 1])
        .unwrap_err();
    let message = format!("{err:#}");
    assert!(
        message.contains("two_phase") && message.contains("second phase"),
        "{message}"
    );
}

/// A tiny permuted-MNIST configuration (784-64-64-10, 2 tasks).
fn tiny_config(meta: f32) -> PmnistConfig {
    PmnistConfig {
        hidden: vec![64, 64],
        meta,
        updates_per_task: 20,
        batch_size: 50,
        tasks: 2,
        eval_batch_size: 250,
        ..PmnistConfig::default()
    }
}

fn without_timing(mut r: PmnistReport) -> PmnistReport {
    r.train_seconds = 0.0;
    r
}

/// Same seed ⇒ identical report (accuracies, writes, energies) with 1 and 2 threads: the
/// products are split by shape only and every random stream is named by (seed, path).
#[test]
fn a_run_is_identical_with_one_and_two_threads() {
    let data = small_mnist(1000, 500);
    let run = |threads: usize| {
        common::on_threads(threads, || {
            run_pmnist_on(&tiny_config(1.35), &data, 5).unwrap()
        })
    };
    let (one, two) = (without_timing(run(1)), without_timing(run(2)));
    assert_eq!(one, two);
    assert!(one.task_writes.iter().all(|t| t.writes.synapse_writes > 0));
}

/// Catastrophic forgetting and its mitigation (Laborieux et al. 2021, Fig. 2): after
/// learning a second permuted task, a plain BNN (m = 0) has lost much of task 0, while a
/// metaplastic BNN keeps more of it. Scaled down (784-128-128-10, 2,000 images, 400
/// updates per task at η = 0.02 so that |W_h| reaches 1/m within the run; m = 3).
#[test]
fn metaplasticity_reduces_forgetting_of_the_first_task() {
    let data = small_mnist(2000, 1000);
    let config = |meta: f32| PmnistConfig {
        hidden: vec![128, 128],
        meta,
        learning_rate: 0.02,
        updates_per_task: 400,
        batch_size: 100,
        tasks: 2,
        eval_batch_size: 500,
        ..PmnistConfig::default()
    };
    let plain = run_pmnist_on(&config(0.0), &data, 2).unwrap();
    let meta = run_pmnist_on(&config(3.0), &data, 2).unwrap();
    let task0_after = |r: &PmnistReport| (r.accuracy[0][0], r.accuracy[1][0]);
    let (p_learned, p_kept) = task0_after(&plain);
    let (m_learned, m_kept) = task0_after(&meta);
    assert!(
        p_learned > 0.8 && m_learned > 0.75,
        "task 0 not learned: {p_learned} {m_learned}"
    );
    assert!(
        p_kept < p_learned - 0.1,
        "m = 0 did not forget: {p_learned} -> {p_kept}"
    );
    assert!(
        m_kept > p_kept + 0.05,
        "m = 3 kept {m_kept} of task 0, m = 0 kept {p_kept}"
    );
    assert!(meta.accuracy[1][1] > 0.6, "m = 3 could not learn task 1");
}

/// Bad settings are refused with the field named; unknown fields are refused.
#[test]
fn config_errors_name_the_field() {
    let err = |c: PmnistConfig| format!("{:#}", c.validate().unwrap_err());
    assert!(
        err(PmnistConfig {
            meta: -1.0,
            ..Default::default()
        })
        .contains("meta")
    );
    assert!(
        err(PmnistConfig {
            batch_size: 1,
            ..Default::default()
        })
        .contains("batch_size")
    );
    assert!(
        err(PmnistConfig {
            hidden: vec![],
            ..Default::default()
        })
        .contains("hidden")
    );
    assert!(
        err(PmnistConfig {
            learning_rate: 0.0,
            ..Default::default()
        })
        .contains("learning_rate")
    );
    let unknown = toml::from_str::<PmnistConfig>("hiden = [10]");
    assert!(unknown.unwrap_err().to_string().contains("hiden"));
    let parsed: PmnistConfig = toml::from_str("meta = 0.5\nupdates_per_task = 7").unwrap();
    assert_eq!(
        (parsed.meta, parsed.updates_per_task, parsed.tasks),
        (0.5, 7, 6)
    );
    let data = small_mnist(200, 10);
    let bad_device = PmnistConfig {
        device: "no_such_device".into(),
        ..tiny_config(0.0)
    };
    let e = format!("{:#}", run_pmnist_on(&bad_device, &data, 1).unwrap_err());
    assert!(e.contains("device"), "{e}");
}

/// The results table holds one row per (run, task trained) with the accuracy matrix, and the
/// forgetting and mean-accuracy figures are written as PNG and SVG.
#[test]
fn outputs_hold_the_forgetting_matrix_and_plots() {
    let data = small_mnist(500, 250);
    let reports: Vec<PmnistReport> = [0.0, 1.35]
        .iter()
        .map(|&m| run_pmnist_on(&tiny_config(m), &data, 9).unwrap())
        .collect();
    for r in &reports {
        assert_eq!(r.accuracy.len(), 2);
        assert!(r.accuracy.iter().all(|row| row.len() == 2));
        let mean1 = (r.accuracy[1][0] + r.accuracy[1][1]) / 2.0;
        assert!((r.mean_accuracy_learned[1] - mean1).abs() < 1e-12);
        assert_eq!(r.mean_accuracy_learned[0], r.accuracy[0][0]);
    }
    let dir = tempfile::tempdir().unwrap();
    let table = pmnist_table(&reports).unwrap();
    table.write(&dir.path().join("table.csv")).unwrap();
    let csv = std::fs::read_to_string(dir.path().join("table.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 2 * 2, "{csv}");
    assert!(csv.lines().next().unwrap().contains("accuracy_task_1"));
    save_pmnist_figures(&reports, dir.path()).unwrap();
    for stem in ["pmnist_forgetting", "pmnist_mean_accuracy"] {
        for ext in ["png", "svg"] {
            let f = dir.path().join(format!("{stem}.{ext}"));
            assert!(
                std::fs::metadata(&f).unwrap().len() > 1000,
                "{}",
                f.display()
            );
        }
    }
}
