//! Tests of equilibrium propagation (`xbar::learning::ep`).
//!
//! Theory checked (Scellier & Bengio, Front. Comput. Neurosci. 2017; Ernoult et al.,
//! NeurIPS 2019; Laborieux et al., Front. Neurosci. 2021): with the hard sigmoid
//! `ρ = clip(·, 0, 1)` the synchronous update `s ← ρ(∂Φ/∂s − β ∂L/∂s)` is a projected
//! gradient step of unit length on the energy `E = ½‖s‖² − Φ + βL` over the box `[0, 1]ⁿ`,
//! so the free phase descends `E` to a fixed point when the couplings are contracting; at
//! that fixed point `(∂E/∂θ(s^β) − ∂E/∂θ(s⁰))/β → ∂L/∂θ` as `β → 0`, the gradient obtained
//! by implicit differentiation of the fixed point (recurrent backprop), computed here
//! independently with a dense f64 linear solve.

use nalgebra::{DMatrix, DVector};
use rand::RngExt;
use xbar::learning::ep::{
    Activation, EpConfig, EpNetwork, EpOptimizerState, EquilibriumPropagation, Nudging, States,
    evaluate, one_hot, train, train_epoch,
};
use xbar::learning::rule::{LearningRule, WeightChange};
use xbar::synapses::{DigitalSynapses, OuterProductUpdate, PlasticSynapses, SynapticLayer};

/// Per-layer (weight, bias) gradients or estimates, in f64.
type LayerGradient = (Vec<f64>, Vec<f64>);

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

/// A small network whose couplings are `gain` times the default initialisation (strong
/// enough that feedback matters, weak enough that the dynamics contract), with random
/// inputs in [0, 1] and one-hot targets.
fn small_problem(
    sizes: &[usize],
    gain: f32,
    batch: usize,
) -> (EpNetwork<DigitalSynapses>, Vec<f32>, Vec<f32>) {
    let mut synapses = Vec::new();
    let mut biases = Vec::new();
    let mut rng = xbar::rng::stream(7, &[99]);
    for (k, pair) in sizes.windows(2).enumerate() {
        let w = DigitalSynapses::uniform_random(pair[0], pair[1], 7, k as u64).unwrap();
        let scaled = w.weight().iter().map(|v| v * gain).collect();
        synapses.push(DigitalSynapses::new(pair[0], pair[1], scaled).unwrap());
        biases.push(
            (0..pair[1])
                .map(|_| rng.random_range(0.0..0.5f32))
                .collect(),
        );
    }
    let net = EpNetwork::new(synapses, biases, Activation::HardSigmoid).unwrap();
    let x: Vec<f32> = (0..batch * sizes[0])
        .map(|_| rng.random_range(0.0..1.0f32))
        .collect();
    let labels: Vec<u8> = (0..batch).map(|_| rng.random_range(0..10u8)).collect();
    (net, x, one_hot(&labels, sizes[sizes.len() - 1]))
}

/// The loss gradient `∂L/∂θ` (batch mean of `L = ½‖s_L − y‖²`) at the free fixed point,
/// by implicit differentiation: `s = ρ(Hs + c)` gives `ds = D(H ds + ∂_θ(Hs + c))` with
/// `D` = 1 on unsaturated units, so `∂L/∂θ = μᵀ ∂_θ(Hs + c)` with `μ = D (I − HD)⁻¹ ∂L/∂s`
/// (`H` symmetric: the block matrix of the `W_k`). Returns per layer (∂L/∂W_k, ∂L/∂b_k).
fn implicit_gradient(
    net: &EpNetwork<DigitalSynapses>,
    x: &[f32],
    target: &[f32],
    free: &States,
    batch: usize,
) -> Vec<LayerGradient> {
    let sizes = net.sizes();
    let layers = sizes.len() - 1;
    let offsets: Vec<usize> = (0..layers).map(|k| sizes[1..=k].iter().sum()).collect();
    let n: usize = sizes[1..].iter().sum();
    let mut h = DMatrix::<f64>::zeros(n, n);
    for k in 1..layers {
        let w = net.synapses()[k].weight();
        for i in 0..sizes[k + 1] {
            for j in 0..sizes[k] {
                let v = f64::from(w[i * sizes[k] + j]);
                h[(offsets[k] + i, offsets[k - 1] + j)] = v;
                h[(offsets[k - 1] + j, offsets[k] + i)] = v;
            }
        }
    }
    let mut grads: Vec<LayerGradient> = (0..layers)
        .map(|k| (vec![0.0; sizes[k + 1] * sizes[k]], vec![0.0; sizes[k + 1]]))
        .collect();
    for b in 0..batch {
        let s = DVector::from_iterator(
            n,
            (0..layers).flat_map(|k| {
                free[k][b * sizes[k + 1]..(b + 1) * sizes[k + 1]]
                    .iter()
                    .map(|&v| f64::from(v))
            }),
        );
        // Pre-activation u = Hs + c, with c = W_1 x + b on top of the biases.
        let mut u = &h * &s;
        for k in 0..layers {
            for i in 0..sizes[k + 1] {
                u[offsets[k] + i] += f64::from(net.biases()[k][i]);
            }
        }
        let w0 = net.synapses()[0].weight();
        for i in 0..sizes[1] {
            u[i] += (0..sizes[0])
                .map(|j| f64::from(w0[i * sizes[0] + j]) * f64::from(x[b * sizes[0] + j]))
                .sum::<f64>();
        }
        let d = DVector::from_iterator(
            n,
            u.iter()
                .map(|&v| if v > 0.0 && v < 1.0 { 1.0 } else { 0.0 }),
        );
        let mut g = DVector::<f64>::zeros(n);
        let out = sizes[layers];
        for i in 0..out {
            g[offsets[layers - 1] + i] =
                s[offsets[layers - 1] + i] - f64::from(target[b * out + i]);
        }
        let system = DMatrix::<f64>::identity(n, n) - &h * DMatrix::from_diagonal(&d);
        let lambda = system.lu().solve(&g).expect("I - HD is invertible");
        let mu = lambda.component_mul(&d);
        for k in 0..layers {
            let (gw, gb) = &mut grads[k];
            for i in 0..sizes[k + 1] {
                let mu_i = mu[offsets[k] + i];
                let s_i = s[offsets[k] + i];
                gb[i] += mu_i / batch as f64;
                for j in 0..sizes[k] {
                    let (below, mu_below) = if k == 0 {
                        (f64::from(x[b * sizes[0] + j]), 0.0)
                    } else {
                        (s[offsets[k - 1] + j], mu[offsets[k - 1] + j])
                    };
                    gw[i * sizes[k] + j] += (mu_i * below + s_i * mu_below) / batch as f64;
                }
            }
        }
    }
    grads
}

/// EP estimates of `−∂L/∂θ` per layer as (weights, biases), in f64.
fn ep_estimate(
    net: &mut EpNetwork<DigitalSynapses>,
    x: &[f32],
    target: &[f32],
    batch: usize,
    config: &EpConfig,
) -> (Vec<LayerGradient>, States) {
    let eq = net.equilibria(x, target, batch, config, 1.0).unwrap();
    let mut rule = EquilibriumPropagation {
        learning_rates: vec![1.0; net.synapses().len()],
    };
    let out = (0..net.synapses().len())
        .map(|k| {
            let WeightChange::OuterProduct(update) =
                rule.propose(&eq.signals(x, k).unwrap()).unwrap()
            else {
                panic!("EP proposes outer products")
            };
            let w = update.dense().iter().map(|&v| f64::from(v)).collect();
            let b = eq
                .bias_estimate(k)
                .unwrap()
                .iter()
                .map(|&v| f64::from(v))
                .collect();
            (w, b)
        })
        .collect();
    (out, eq.free)
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// Relative error `‖est − (−grad)‖ / ‖grad‖` over all parameters.
fn relative_error(est: &[LayerGradient], grad: &[LayerGradient]) -> f64 {
    let (mut err, mut norm) = (0.0, 0.0);
    for ((ew, eb), (gw, gb)) in est.iter().zip(grad) {
        for (e, g) in ew.iter().chain(eb).zip(gw.iter().chain(gb)) {
            err += (e + g).powi(2);
            norm += g * g;
        }
    }
    (err / norm).sqrt()
}

fn long_phases(beta: f32, nudging: Nudging, layers: usize) -> EpConfig {
    EpConfig {
        free_steps: 300,
        nudged_steps: 300,
        beta,
        nudging,
        learning_rates: vec![0.0; layers],
        ..EpConfig::default()
    }
}

/// The free phase is a projected gradient descent on the energy: the energy of every sample
/// never increases from one step to the next, and the state reaches a fixed point
/// (`max |Δs| < 1e-6` per step) well within 100 steps, for a network trained for an epoch.
#[test]
fn free_phase_descends_the_energy_to_a_fixed_point() {
    let split = xbar::data::mnist10k().unwrap();
    let mut net = EpNetwork::digital(&[784, 128, 10], Activation::HardSigmoid, 3).unwrap();
    let config = EpConfig::default();
    train_epoch(
        &mut net,
        &split.train.take(2000),
        &config,
        &mut config.rule(),
        &mut EpOptimizerState::new(&config),
        0,
    )
    .unwrap();
    let batch = 20;
    let x = &split.test.images[..batch * 784];
    let drive = net.input_drive(x, batch).unwrap();
    let mut states = net.zero_states(batch);
    let mut energy = net.energy(x, batch, &states, None).unwrap();
    let mut last_change = f32::INFINITY;
    for step in 0..100 {
        let before = states.clone();
        net.relax(&drive, batch, None, &mut states, 1).unwrap();
        let next = net.energy(x, batch, &states, None).unwrap();
        for (e0, e1) in energy.iter().zip(&next) {
            assert!(
                *e1 <= e0 + 1e-5 * e0.abs().max(1.0),
                "step {step}: energy rose {e0} -> {e1}"
            );
        }
        energy = next;
        last_change = states
            .iter()
            .zip(&before)
            .flat_map(|(a, b)| a.iter().zip(b).map(|(p, q)| (p - q).abs()))
            .fold(0.0, f32::max);
    }
    assert!(
        last_change < 1e-6,
        "state still moving by {last_change} after 100 steps"
    );
    // The fixed point satisfies s = ρ(∂Φ/∂s): one more step leaves it (almost) unchanged.
    let before = states.clone();
    net.relax(&drive, batch, None, &mut states, 1).unwrap();
    for (a, b) in states.iter().zip(&before) {
        assert!(a.iter().zip(b).all(|(p, q)| (p - q).abs() < 1e-6));
    }
}

/// EP with small β matches the implicit-differentiation gradient at the free fixed point
/// (the EP theorem): cosine similarity > 0.99 for every weight matrix and bias vector of a
/// two-hidden-layer network, for symmetric and for one-sided nudging. The couplings are the
/// default initialisation (stronger ones, 1.5x and more, stop the synchronous dynamics of
/// this small network from contracting, and EP needs a fixed point); the test first checks
/// that the free phase did reach one.
#[test]
fn ep_update_matches_the_recurrent_backprop_gradient_for_small_beta() {
    let sizes = [30, 20, 15, 10];
    let batch = 4;
    for nudging in [Nudging::Symmetric, Nudging::OneSided] {
        let (mut net, x, target) = small_problem(&sizes, 1.0, batch);
        let config = long_phases(1e-3, nudging, 3);
        let (est, free) = ep_estimate(&mut net, &x, &target, batch, &config);
        let mut next = free.clone();
        let drive = net.input_drive(&x, batch).unwrap();
        net.relax(&drive, batch, None, &mut next, 1).unwrap();
        for (a, b) in next.iter().zip(&free) {
            assert!(
                a.iter().zip(b).all(|(p, q)| (p - q).abs() < 1e-6),
                "no fixed point"
            );
        }
        let grad = implicit_gradient(&net, &x, &target, &free, batch);
        for (k, ((ew, eb), (gw, gb))) in est.iter().zip(&grad).enumerate() {
            let neg_w: Vec<f64> = gw.iter().map(|g| -g).collect();
            let neg_b: Vec<f64> = gb.iter().map(|g| -g).collect();
            let (cw, cb) = (cosine(ew, &neg_w), cosine(eb, &neg_b));
            assert!(cw > 0.99, "{nudging:?}, layer {k}: weight cosine {cw}");
            assert!(cb > 0.99, "{nudging:?}, layer {k}: bias cosine {cb}");
        }
    }
}

/// Symmetric nudging cancels the first-order term in β of the one-sided estimate's bias
/// (Laborieux et al. 2021): the one-sided error against the true gradient grows
/// linearly with β, the symmetric one quadratically, and at β = 0.01-0.02 the symmetric
/// error is over ten times smaller (at β = 0.1 units start to change saturation regime
/// inside ±β and both errors grow, but the symmetric one stays smaller).
#[test]
fn symmetric_nudging_has_a_smaller_bias_than_one_sided() {
    let sizes = [30, 20, 15, 10];
    let batch = 4;
    let (mut net, x, target) = small_problem(&sizes, 1.0, batch);
    let mut errors = Vec::new();
    for beta in [0.01f32, 0.02, 0.1] {
        let one_sided = long_phases(beta, Nudging::OneSided, 3);
        let (one, free) = ep_estimate(&mut net, &x, &target, batch, &one_sided);
        let symmetric = long_phases(beta, Nudging::Symmetric, 3);
        let (sym, _) = ep_estimate(&mut net, &x, &target, batch, &symmetric);
        let grad = implicit_gradient(&net, &x, &target, &free, batch);
        errors.push((relative_error(&one, &grad), relative_error(&sym, &grad)));
    }
    let [(one_1, sym_1), (one_2, sym_2), (one_10, sym_10)] = errors[..] else {
        unreachable!("three values of beta")
    };
    assert!(
        sym_1 < 0.1 * one_1 && sym_2 < 0.1 * one_2,
        "errors {errors:?}"
    );
    let (linear, quadratic) = (one_2 / one_1, sym_2 / sym_1);
    assert!(
        (1.6..2.4).contains(&linear),
        "one-sided error ratio {linear} for 2x beta"
    );
    assert!(
        quadratic > 3.0,
        "symmetric error ratio {quadratic} for 2x beta"
    );
    assert!(sym_10 < one_10, "errors at beta 0.1 {errors:?}");
}

/// Same seed, same weights, bit for bit, with 1 and 2 threads (one and two hidden layers,
/// symmetric and random-sign nudging).
#[test]
fn training_is_bit_identical_with_one_and_two_threads() {
    let split = xbar::data::mnist10k().unwrap();
    let data = split.train.take(400);
    for (sizes, nudging) in [
        (vec![784, 512, 10], Nudging::Symmetric),
        (vec![784, 256, 256, 10], Nudging::RandomSign),
    ] {
        let config = EpConfig {
            nudging,
            learning_rates: vec![0.05; sizes.len() - 1],
            epochs: 1,
            ..EpConfig::default()
        };
        let run = |threads| {
            pool(threads).install(|| {
                let mut net = EpNetwork::digital(&sizes, Activation::HardSigmoid, 11).unwrap();
                train(&mut net, &data, &config).unwrap();
                net
            })
        };
        let (a, b) = (run(1), run(2));
        for (sa, sb) in a.synapses().iter().zip(b.synapses()) {
            assert!(
                sa.weight() == sb.weight(),
                "{sizes:?}: weights differ between 1 and 2 threads"
            );
        }
        assert_eq!(a.biases(), b.biases());
    }
}

/// One epoch of the reference settings (784-512-10, T1 30, T2 10, β 0.1, symmetric) on
/// MNIST-10k's 8,000 training digits already gives > 85 % on the 2,000 test digits
/// (the authors' code: 91.4 % after one epoch).
#[test]
fn one_epoch_of_reference_ep_learns_mnist() {
    let split = xbar::data::mnist10k().unwrap();
    let config = EpConfig::default();
    let mut net = EpNetwork::digital(&[784, 512, 10], Activation::HardSigmoid, 1).unwrap();
    let before = evaluate(&mut net, &split.test, config.free_steps).unwrap();
    let report = train(&mut net, &split.train, &config).unwrap();
    let after = evaluate(&mut net, &split.test, config.free_steps).unwrap();
    assert!(
        before < 0.3,
        "an untrained network should be near chance, got {before}"
    );
    assert!(
        after > 0.85,
        "test accuracy after one epoch {after} (train {report:?})"
    );
}

/// The transposed read is the adjoint of the forward read (`⟨y, W x⟩ = ⟨Wᵀ y, x⟩`, the
/// property the feedback term relies on), and an outer-product update adds
/// `scale · postᵀ pre` to the weights.
#[test]
fn digital_synapses_read_both_ways_and_apply_outer_products() {
    let mut syn = DigitalSynapses::uniform_random(7, 5, 3, 0).unwrap();
    let mut rng = xbar::rng::stream(3, &[1]);
    let x: Vec<f32> = (0..2 * 7).map(|_| rng.random_range(-1.0..1.0f32)).collect();
    let y: Vec<f32> = (0..2 * 5).map(|_| rng.random_range(-1.0..1.0f32)).collect();
    let (mut wx, mut wty) = (vec![0.0; 2 * 5], vec![0.0; 2 * 7]);
    syn.forward(&x, 2, &mut wx).unwrap();
    syn.transposed(&y, 2, &mut wty).unwrap();
    let lhs: f32 = y.iter().zip(&wx).map(|(a, b)| a * b).sum();
    let rhs: f32 = wty.iter().zip(&x).map(|(a, b)| a * b).sum();
    assert!((lhs - rhs).abs() < 1e-5, "{lhs} vs {rhs}");
    let before = syn.weight().to_vec();
    let update = OuterProductUpdate {
        post: y.clone(),
        pre: x.clone(),
        rows: 2,
        scale: 0.5,
    };
    syn.apply_update(&update).unwrap();
    for i in 0..5 {
        for j in 0..7 {
            let want = before[i * 7 + j] + 0.5 * (y[i] * x[j] + y[5 + i] * x[7 + j]);
            assert!((syn.weight()[i * 7 + j] - want).abs() < 1e-6);
        }
    }
    let bad = OuterProductUpdate {
        post: y,
        pre: x[..7].to_vec(),
        rows: 2,
        scale: 1.0,
    };
    assert!(syn.apply_update(&bad).is_err());
}

/// Bad settings are rejected with a message naming the field.
#[test]
fn bad_settings_are_rejected_with_clear_errors() {
    let split = xbar::data::mnist10k().unwrap();
    let data = split.train.take(10);
    let mut net = EpNetwork::digital(&[784, 16, 10], Activation::HardSigmoid, 1).unwrap();
    let wrong_rates = EpConfig {
        learning_rates: vec![0.1],
        ..EpConfig::default()
    };
    let err = format!("{:#}", train(&mut net, &data, &wrong_rates).unwrap_err());
    assert!(err.contains("learning_rates"), "{err}");
    let zero_beta = EpConfig {
        beta: 0.0,
        ..EpConfig::default()
    };
    let err = format!("{:#}", train(&mut net, &data, &zero_beta).unwrap_err());
    assert!(err.contains("beta"), "{err}");
    let mut wrong_input = EpNetwork::digital(&[100, 16, 10], Activation::HardSigmoid, 1).unwrap();
    let config = EpConfig::default();
    assert!(train(&mut wrong_input, &data, &config).is_err());
}

/// The EP rule reads the second phase and divides by the difference of the two phases'
/// nudging strengths: without a second phase, with equal β or without a learning rate
/// for the layer it refuses with a message saying what is missing, and an EP network
/// refuses a rule that needs an error signal it cannot provide.
#[test]
fn the_ep_rule_needs_a_second_phase_a_nudge_and_a_learning_rate() {
    use xbar::learning::rule::{LocalSignals, Phase, SignalRequest};
    let (inputs, outputs) = ([0.5f32, 1.0], [0.2f32]);
    let phase = |beta| Phase {
        inputs: &inputs,
        outputs: &outputs,
        beta,
    };
    let signals = |second| LocalSignals {
        layer: 0,
        batch: 1,
        rows: 1,
        phase: phase(0.0),
        error: None,
        second_phase: second,
    };
    let mut rule = EquilibriumPropagation {
        learning_rates: vec![0.1],
    };
    assert!(rule.signals().second_phase && !rule.signals().error);
    let err = format!("{:#}", rule.propose(&signals(None)).unwrap_err());
    assert!(err.contains("second phase"), "{err}");
    let err = format!(
        "{:#}",
        rule.propose(&signals(Some(phase(0.0)))).unwrap_err()
    );
    assert!(err.contains("β"), "{err}");
    let mut no_rates = EquilibriumPropagation {
        learning_rates: Vec::new(),
    };
    let err = format!(
        "{:#}",
        no_rates.propose(&signals(Some(phase(0.1)))).unwrap_err()
    );
    assert!(err.contains("learning rate"), "{err}");

    struct NeedsError;
    impl LearningRule for NeedsError {
        fn name(&self) -> &str {
            "needs_error"
        }
        fn signals(&self) -> SignalRequest {
            SignalRequest {
                error: true,
                second_phase: false,
            }
        }
        fn propose(&mut self, _: &LocalSignals<'_>) -> anyhow::Result<WeightChange> {
            Ok(WeightChange::None)
        }
    }
    let split = xbar::data::mnist10k().unwrap();
    let mut net = EpNetwork::digital(&[784, 8, 10], Activation::HardSigmoid, 1).unwrap();
    let config = EpConfig {
        learning_rates: vec![0.1, 0.1],
        ..EpConfig::default()
    };
    let err = format!(
        "{:#}",
        train_epoch(
            &mut net,
            &split.train.take(10),
            &config,
            &mut NeedsError,
            &mut EpOptimizerState::new(&config),
            0,
        )
        .unwrap_err()
    );
    assert!(
        err.contains("needs_error") && err.contains("error signal"),
        "{err}"
    );
}
