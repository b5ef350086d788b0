//! Equilibrium propagation on ConvNets (`xbar::learning::ep`, `Connection::Conv`): the
//! `P_CNN` of Laborieux et al. (Front. Neurosci. 2021), whose primitive function has the
//! term `s_kᵀ (P(W_k ⊛ s_{k-1}) + b_k)` per convolutional layer.
//!
//! Theory checked (Scellier & Bengio, Front. Comput. Neurosci. 2017): at the free fixed
//! point, the symmetric EP estimate `(∂Φ/∂θ(s^β) − ∂Φ/∂θ(s^{−β}))/2β` tends to `−∂L/∂θ` as
//! `β → 0`, `L` the batch-mean cost `½‖s_L − y‖²` of the fixed point. The reference
//! gradient here is independent of the EP code's feedback path: central finite differences
//! of `L` at re-relaxed fixed points, which only use the forward (drive) reads.

mod common;

use rand::RngExt;
use xbar::crossbar::TileConfig;
use xbar::crossbar::update::PulsedUpdateConfig;
use xbar::device::{AnyDevice, preset};
use xbar::learning::ep::{
    Activation, EpConfig, EpConv, EpNetwork, EpOptimizer, EpOptimizerState, EquilibriumPropagation,
    Nudging, one_hot, train_epoch,
};
use xbar::synapses::{CrossbarSynapses, DigitalSynapses, SynapticLayer};

/// Free-phase steps that bring the small test networks to their fixed point.
const RELAX_STEPS: usize = 400;
/// Weight mapped to a full conductance window, relative to a layer's largest weight: room
/// for the weights to move without meeting the devices' bounds (a weight at its bound
/// loses the pulses that would push it further, a real bias of bounded devices).
const WINDOW_HEADROOM: f32 = 3.0;

/// A small ConvNet on 1 x 12 x 12 images: conv 3 x 3 (3 channels) + 2 x 2 max pooling,
/// conv 2 x 2 (4 channels) + 2 x 2 max pooling, a fully connected output of 5; random
/// inputs in [0, 1], one-hot targets.
fn small_convnet(batch: usize) -> (EpNetwork<DigitalSynapses>, Vec<f32>, Vec<f32>) {
    let convs = [
        EpConv {
            out: 3,
            kernel: 3,
            padding: 0,
            pool: 2,
        },
        EpConv {
            out: 4,
            kernel: 2,
            padding: 0,
            pool: 2,
        },
    ];
    let net =
        EpNetwork::digital_convnet([1, 12, 12], &convs, &[5], Activation::HardSigmoid, 5).unwrap();
    let mut rng = xbar::rng::stream(6, &[0]);
    let x: Vec<f32> = (0..batch * 144)
        .map(|_| rng.random_range(0.0..1.0))
        .collect();
    let labels: Vec<u8> = (0..batch).map(|_| rng.random_range(0..5u8)).collect();
    (net, x, one_hot(&labels, 5))
}

/// Every weight then every bias of every layer, in f64.
fn parameters(net: &EpNetwork<DigitalSynapses>) -> Vec<f64> {
    let weights = net.synapses().iter().flat_map(|s| s.weight().to_vec());
    let biases = net.biases().iter().flat_map(|b| b.clone());
    weights.chain(biases).map(f64::from).collect()
}

/// `net` with parameter `i` (in the order of [`parameters`]) moved by `delta`.
fn nudged_parameter(
    net: &EpNetwork<DigitalSynapses>,
    i: usize,
    delta: f32,
) -> EpNetwork<DigitalSynapses> {
    let mut synapses: Vec<DigitalSynapses> = net.synapses().to_vec();
    let mut biases = net.biases().to_vec();
    let mut i = i;
    for s in &mut synapses {
        let n = s.weight().len();
        if i < n {
            s.weight_mut()[i] += delta;
            return rebuilt(net, synapses, biases);
        }
        i -= n;
    }
    for b in &mut biases {
        if i < b.len() {
            b[i] += delta;
            break;
        }
        i -= b.len();
    }
    rebuilt(net, synapses, biases)
}

fn rebuilt(
    net: &EpNetwork<DigitalSynapses>,
    synapses: Vec<DigitalSynapses>,
    biases: Vec<Vec<f32>>,
) -> EpNetwork<DigitalSynapses> {
    EpNetwork::with_connections(
        synapses,
        biases,
        net.connections().to_vec(),
        net.activation(),
    )
    .unwrap()
}

/// Batch-mean cost `½‖s_L − y‖²` at the free fixed point, after checking that the free
/// phase reached it (no state moves by more than 1e-6 in one more step).
fn fixed_point_cost(
    net: &mut EpNetwork<DigitalSynapses>,
    x: &[f32],
    target: &[f32],
    batch: usize,
) -> f64 {
    let mut states = net.free_phase(x, batch, RELAX_STEPS).unwrap();
    let before = states.clone();
    let drive = net.input_drive(x, batch).unwrap();
    net.relax(&drive, batch, None, &mut states, 1).unwrap();
    let moved = states
        .iter()
        .flatten()
        .zip(before.iter().flatten())
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        moved < 1e-6,
        "the free phase did not settle: a state moved {moved}"
    );
    let out = &states[states.len() - 1];
    let cost: f64 = out
        .iter()
        .zip(target)
        .map(|(s, y)| 0.5 * f64::from(s - y).powi(2))
        .sum();
    cost / batch as f64
}

/// The symmetric EP estimate of `−∂L/∂θ` for every parameter: one learning step with
/// learning rate 1 on digital synapses adds exactly the estimate to each parameter.
fn ep_estimate(
    net: &EpNetwork<DigitalSynapses>,
    x: &[f32],
    target: &[f32],
    batch: usize,
    beta: f32,
) -> Vec<f64> {
    let layers = net.synapses().len();
    let config = EpConfig {
        free_steps: RELAX_STEPS,
        nudged_steps: RELAX_STEPS,
        beta,
        nudging: Nudging::Symmetric,
        learning_rates: vec![1.0; layers],
        ..EpConfig::default()
    };
    let mut learner = net.clone();
    let eq = learner.equilibria(x, target, batch, &config, 1.0).unwrap();
    let mut rule = EquilibriumPropagation {
        learning_rates: vec![1.0; layers],
    };
    learner
        .learn(x, &eq, &mut rule, &mut EpOptimizerState::new(&config))
        .unwrap();
    parameters(&learner)
        .iter()
        .zip(parameters(net))
        .map(|(after, before)| after - before)
        .collect()
}

/// The EP theorem on a ConvNet with max pooling: with β = 0.01 and symmetric nudging the
/// EP estimate of every weight and bias (both convolutions, the fully connected layer)
/// agrees with `−∂L/∂θ` from central finite differences (ε = 1e-3) at the free fixed
/// point: relative error below 0.3 % (0.06 % here). The bound discriminates: routing the
/// feedback of the second convolution's pooling to every position of its window (average
/// instead of max unpooling) gives 2.1 %, because the dynamics then no longer descend Φ.
#[test]
fn conv_ep_update_matches_the_fixed_point_gradient_for_small_beta() {
    let batch = 3;
    let (net, x, target) = small_convnet(batch);
    let estimate = ep_estimate(&net, &x, &target, batch, 0.01);
    let eps = 1e-3f32;
    let fd: Vec<f64> = (0..estimate.len())
        .map(|i| {
            let cost = |delta| {
                let mut probe = nudged_parameter(&net, i, delta);
                fixed_point_cost(&mut probe, &x, &target, batch)
            };
            -(cost(eps) - cost(-eps)) / (2.0 * f64::from(eps))
        })
        .collect();
    let dot: f64 = estimate.iter().zip(&fd).map(|(a, b)| a * b).sum();
    let norm = |v: &[f64]| v.iter().map(|a| a * a).sum::<f64>().sqrt();
    let cosine = dot / (norm(&estimate) * norm(&fd));
    let diff: Vec<f64> = estimate.iter().zip(&fd).map(|(a, b)| a - b).collect();
    let relative = norm(&diff) / norm(&fd);
    assert!(
        cosine > 0.99999 && relative < 3e-3,
        "cosine {cosine}, relative error {relative}"
    );
}

/// EP with Adam on a ConvNet: Adam's first bias-corrected step is `η_k·sign(g)` (m̂ = g,
/// v̂ = g², Kingma & Ba 2015, section 2.1), so one learning step moves every weight and
/// bias of layer `k` by `η_k·g/(|g| + ε)`, its layer's rate in the direction of the plain
/// EP estimate `g` (to 1 % of `η_k` where `|g|` exceeds 1e-6, below which the estimate,
/// a difference of `f32` parameters, has lost digits; never by more than `η_k`), and a
/// parameter without gradient (a unit that is off in every phase) stays where it is.
#[test]
fn adam_moves_every_conv_parameter_by_its_rate_along_the_ep_estimate() {
    let batch = 3;
    let (net, x, target) = small_convnet(batch);
    let estimate = ep_estimate(&net, &x, &target, batch, 0.01);
    let rates = [1e-3f32, 5e-4, 2e-4];
    let config = EpConfig {
        free_steps: RELAX_STEPS,
        nudged_steps: RELAX_STEPS,
        beta: 0.01,
        nudging: Nudging::Symmetric,
        learning_rates: rates.to_vec(),
        optimizer: EpOptimizer::Adam {
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
        },
        ..EpConfig::default()
    };
    let mut learner = net.clone();
    let eq = learner
        .equilibria(&x, &target, batch, &config, 1.0)
        .unwrap();
    learner
        .learn(
            &x,
            &eq,
            &mut config.rule(),
            &mut EpOptimizerState::new(&config),
        )
        .unwrap();
    let layer_of = |i: usize| {
        let mut end = 0;
        for (k, s) in net.synapses().iter().enumerate() {
            end += s.weight().len();
            if i < end {
                return k;
            }
        }
        let mut rest = i - end;
        for (k, b) in net.biases().iter().enumerate() {
            if rest < b.len() {
                return k;
            }
            rest -= b.len();
        }
        unreachable!("parameter {i} beyond the network")
    };
    let moved: Vec<f64> = parameters(&learner)
        .iter()
        .zip(parameters(&net))
        .map(|(after, before)| after - before)
        .collect();
    let mut checked = 0;
    for (i, (step, g)) in moved.iter().zip(&estimate).enumerate() {
        let rate = f64::from(rates[layer_of(i)]);
        assert!(
            step.abs() <= rate * 1.001,
            "parameter {i}: step {step} > {rate}"
        );
        if *g == 0.0 {
            assert_eq!(*step, 0.0, "parameter {i} has no gradient but moved");
        } else if g.abs() > 1e-6 {
            checked += 1;
            let want = rate * g / (g.abs() + 1e-8);
            assert!(
                (step - want).abs() < 1e-2 * rate,
                "parameter {i}: step {step}, expected {want} (estimate {g})"
            );
        }
    }
    let zero = estimate.iter().filter(|g| **g == 0.0).count();
    assert!(
        checked + zero == estimate.len() && checked > 50,
        "{checked} of {} parameters had an estimate above 1e-6, {zero} none",
        estimate.len()
    );
}

/// Training a ConvNet with EP (two mini-batches of MNIST digits, random-sign nudging) is
/// bit-identical with 1 and 2 threads.
#[test]
fn conv_ep_training_is_bit_identical_with_one_and_two_threads() {
    let data = xbar::data::mnist10k().unwrap().train.take(64);
    let convs = [EpConv {
        out: 4,
        kernel: 5,
        padding: 0,
        pool: 2,
    }];
    let config = EpConfig {
        free_steps: 20,
        nudged_steps: 5,
        beta: 0.4,
        nudging: Nudging::RandomSign,
        learning_rates: vec![0.05, 0.02],
        batch_size: 32,
        ..EpConfig::default()
    };
    let run = |threads: usize| {
        common::on_threads(threads, || {
            let mut net =
                EpNetwork::digital_convnet([1, 28, 28], &convs, &[10], Activation::HardSigmoid, 9)
                    .unwrap();
            let mut optimizer = EpOptimizerState::new(&config);
            train_epoch(
                &mut net,
                &data,
                &config,
                &mut config.rule(),
                &mut optimizer,
                0,
            )
            .unwrap();
            parameters(&net)
        })
    };
    let one = run(1);
    assert_eq!(one, run(2));
    let untrained =
        EpNetwork::digital_convnet([1, 28, 28], &convs, &[10], Activation::HardSigmoid, 9).unwrap();
    assert_ne!(one, parameters(&untrained), "training changed nothing");
}

/// The same ConvNet on ideal-device tiles with ideal periphery: every kernel matrix is
/// programmed on its own tile and read forward (the drive) and transposed (the feedback on
/// unpooled rates) by the tile.
fn crossbar_twin(
    digital: &EpNetwork<DigitalSynapses>,
    seed: u64,
) -> EpNetwork<CrossbarSynapses<AnyDevice>> {
    let ideal = preset::load("ideal", &toml::Table::new()).unwrap();
    let synapses = digital
        .synapses()
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let w_max = WINDOW_HEADROOM * s.weight().iter().fold(0f32, |m, w| m.max(w.abs()));
            CrossbarSynapses::program(
                ideal.clone(),
                s.inputs(),
                s.outputs(),
                s.weight(),
                f64::from(w_max),
                TileConfig::ideal(),
                PulsedUpdateConfig::default(),
                seed,
                k as u64,
            )
            .unwrap()
        })
        .collect();
    EpNetwork::with_connections(
        synapses,
        digital.biases().to_vec(),
        digital.connections().to_vec(),
        digital.activation(),
    )
    .unwrap()
}

/// On ideal tiles the convolutional EP network settles to the digital network's free and
/// nudged equilibria (up to f32 rounding of the conductance mapping), and one EP step on
/// the tiles changes every weight by the digital step in expectation (the stochastic pulse
/// trains are unbiased, module `crossbar::update`): the mean change over 200 independent
/// pulse streams matches the digital change within 5 standard errors, `5 σ / √200`, with
/// σ the sample standard deviation or, if larger, the pulse-count floor `√(Δw_min |ΔW|)`
/// (a binomial count of mean `|ΔW| / Δw_min` pulses of `Δw_min`), plus f32 rounding.
#[test]
fn conv_ep_on_ideal_tiles_matches_digital_equilibria_and_steps() {
    let (batch, repeats) = (3, 200);
    let (mut digital, x, target) = small_convnet(batch);
    let config = EpConfig {
        free_steps: 60,
        nudged_steps: 20,
        beta: 0.4,
        learning_rates: vec![0.5; 3],
        ..EpConfig::default()
    };
    let eq_d = digital
        .equilibria(&x, &target, batch, &config, 1.0)
        .unwrap();
    let clean = digital.clone();
    digital
        .learn(
            &x,
            &eq_d,
            &mut config.rule(),
            &mut EpOptimizerState::new(&config),
        )
        .unwrap();
    let layers = clean.synapses().len();
    let mut sums: Vec<Vec<(f64, f64)>> = (0..layers)
        .map(|k| vec![(0.0, 0.0); clean.synapses()[k].weight().len()])
        .collect();
    for r in 0..repeats {
        let mut analog = crossbar_twin(&clean, r);
        let eq_a = analog.equilibria(&x, &target, batch, &config, 1.0).unwrap();
        if r == 0 {
            let worst = |a: &[Vec<f32>], b: &[Vec<f32>]| {
                a.iter()
                    .flatten()
                    .zip(b.iter().flatten())
                    .fold(0f32, |m, (p, q)| m.max((p - q).abs()))
            };
            assert!(worst(&eq_d.free, &eq_a.free) < 1e-4, "free phase differs");
            assert!(worst(&eq_d.plus, &eq_a.plus) < 1e-4, "nudged phase differs");
        }
        let before: Vec<Vec<f32>> = analog
            .synapses()
            .iter()
            .map(|s| s.weight().unwrap())
            .collect();
        analog
            .learn(
                &x,
                &eq_a,
                &mut config.rule(),
                &mut EpOptimizerState::new(&config),
            )
            .unwrap();
        for (k, sum) in sums.iter_mut().enumerate() {
            let after = analog.synapses()[k].weight().unwrap();
            for ((acc, a), b) in sum.iter_mut().zip(&after).zip(&before[k]) {
                let d = f64::from(a - b);
                acc.0 += d;
                acc.1 += d * d;
            }
        }
    }
    let n = f64::from(repeats as u32);
    let dw: Vec<f64> = crossbar_twin(&clean, 0)
        .synapses()
        .iter()
        .map(|s| s.tile().weight_step().unwrap())
        .collect();
    for (k, sum) in sums.iter().enumerate() {
        let want = digital.synapses()[k]
            .weight()
            .iter()
            .zip(clean.synapses()[k].weight());
        for (i, (&(s1, s2), (a, b))) in sum.iter().zip(want).enumerate() {
            let (mean, step) = (s1 / n, f64::from(a - b));
            let sample = ((s2 / n - mean * mean).max(0.0) * n / (n - 1.0)).sqrt();
            let sd = sample.max((dw[k] * step.abs()).sqrt());
            assert!(
                (mean - step).abs() <= 5.0 * sd / n.sqrt() + 1e-6,
                "layer {k}, weight {i}: mean tile step {mean} vs digital {step} (sd {sd})"
            );
        }
    }
}
