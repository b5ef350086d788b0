//! Pulsed on-chip learning: stochastic pulse-train updates on crossbar tiles, the
//! learning-rule API, analog SGD and equilibrium propagation on tiles.

use xbar::crossbar::update::{PairUpdate, PulsedUpdateConfig};
use xbar::crossbar::{Tile, TileConfig};
use xbar::device::{AnyDevice, preset};

fn device(name: &str) -> AnyDevice {
    preset::load(name, &toml::Table::new()).unwrap()
}

/// Gokmen & Vlasov (Front. Neurosci. 2016): with coincident stochastic pulse trains of
/// `slots` bits and bit probabilities p_i (row) and q_j (column), device ij receives
/// Binomial(slots, p_i q_j) pulses; the scheme scales p, q so that the mean weight change
/// slots p_i q_j Δw_min equals the requested ΔW_ij. For the ideal linear device every pulse
/// is exactly ±Δw_min, so the mean over N updates must match ΔW_ij within a few standard
/// errors sqrt(slots p q (1 - p q) / N) Δw_min (bound: 5 standard errors, per element).
#[test]
fn ideal_device_mean_weight_change_equals_the_requested_update() {
    let (n_in, n_out) = (4, 3);
    let x = [0.9f32, -0.5, 0.2, 0.0];
    let delta = [0.8f32, -0.3, 0.6];
    let scale = 0.05f32;
    let updates = 400;
    for policy in [PairUpdate::Canonical, PairUpdate::SetOnly] {
        let config = PulsedUpdateConfig {
            pulse_train_length: 10,
            pair_update: policy,
            ..Default::default()
        };
        let mut tile = Tile::new(device("ideal"), n_in, n_out, TileConfig::ideal(), 7, 0).unwrap();
        let zeros = vec![0.0; n_in * n_out];
        let mut sum = vec![0.0f64; n_in * n_out];
        let mut dw = 0.0;
        for k in 0..updates {
            tile.program_with_scale(&zeros, 1.0).unwrap();
            dw = tile.weight_step().unwrap();
            tile.apply_outer_product(&delta, &x, 1, scale, &config, k)
                .unwrap();
            for (s, w) in sum.iter_mut().zip(tile.effective_weights().unwrap()) {
                *s += w;
            }
        }
        // Ideal preset: 100 levels over the window, w_max = 1 -> one pulse = 0.01.
        assert!((dw - 0.01).abs() < 1e-12, "weight step {dw}");
        // Plan of the scheme: n = scale max|x| max|δ| / Δw = 3.6 pulses < BL = 10 slots.
        let slots = 10.0;
        let peak = (0.05f64 * 0.9 * 0.8 / dw / slots).sqrt();
        for j in 0..n_out {
            for i in 0..n_in {
                let requested = f64::from(scale * delta[j] * x[i]);
                let mean = sum[j * n_in + i] / updates as f64;
                let pq =
                    peak * f64::from(x[i].abs()) / 0.9 * peak * f64::from(delta[j].abs()) / 0.8;
                let se = (slots * pq * (1.0 - pq) / updates as f64).sqrt() * dw;
                assert!(
                    (mean - requested).abs() <= 5.0 * se + 1e-12,
                    "{policy:?} ({j},{i}): mean {mean} vs requested {requested} (se {se})"
                );
            }
        }
    }
}

/// Dense updates use stochastic rounding: device ij gets floor(|ΔW_ij|/Δw) pulses plus one
/// with probability frac(|ΔW_ij|/Δw), so for the ideal device the mean change over N
/// updates is ΔW_ij within 5 standard errors sqrt(f (1 - f) / N) Δw (f the fraction).
#[test]
fn ideal_device_mean_dense_change_equals_the_requested_update() {
    let (n_in, n_out) = (3, 2);
    // Row-major n_out x n_in, in units of the 0.01 step: 2.3, -0.7, 0, 1.5, -3.25, 0.05.
    let delta_w = [0.023f32, -0.007, 0.0, 0.015, -0.0325, 0.0005];
    let updates = 400;
    let config = PulsedUpdateConfig::default();
    let mut tile = Tile::new(device("ideal"), n_in, n_out, TileConfig::ideal(), 3, 0).unwrap();
    let zeros = vec![0.0; n_in * n_out];
    let mut sum = vec![0.0f64; n_in * n_out];
    for k in 0..updates {
        tile.program_with_scale(&zeros, 1.0).unwrap();
        tile.apply_dense_update(&delta_w, &config, k).unwrap();
        for (s, w) in sum.iter_mut().zip(tile.effective_weights().unwrap()) {
            *s += w;
        }
    }
    let dw = 0.01;
    for (k, &d) in delta_w.iter().enumerate() {
        let f = (f64::from(d).abs() / dw).fract();
        let se = (f * (1.0 - f) / updates as f64).sqrt() * dw;
        let mean = sum[k] / updates as f64;
        assert!(
            (mean - f64::from(d)).abs() <= 5.0 * se + 1e-6,
            "element {k}: mean {mean} vs requested {d}"
        );
    }
}

/// After a pulsed update the tile refreshes only the touched pairs of its read cache; the
/// result must equal a full rebuild (weights and noisy reads with the same noise stream).
#[test]
fn incremental_cache_refresh_equals_a_full_rebuild() {
    use xbar::crossbar::Direction;
    let (n_in, n_out) = (12, 9);
    let mut config = TileConfig::ideal();
    config.periphery.read_noise = true;
    let mut tile = Tile::new(device("rram_hfo2"), n_in, n_out, config, 4, 1).unwrap();
    let w: Vec<f64> = (0..n_in * n_out)
        .map(|k| (k as f64 * 0.3).sin() * 0.4)
        .collect();
    tile.program(&w).unwrap();
    let x: Vec<f32> = (0..2 * n_in)
        .map(|k| ((k % 5) as f32 - 2.0) / 2.0)
        .collect();
    let d: Vec<f32> = (0..2 * n_out)
        .map(|k| ((k % 3) as f32 - 1.0) / 2.0)
        .collect();
    let pulsed = PulsedUpdateConfig::default();
    tile.apply_outer_product(&d, &x, 2, 0.3, &pulsed, 0)
        .unwrap();
    let dense: Vec<f32> = (0..n_in * n_out)
        .map(|k| ((k % 7) as f32 - 3.0) * 0.01)
        .collect();
    tile.apply_dense_update(&dense, &pulsed, 1).unwrap();
    let read = |tile: &Tile<AnyDevice>| {
        let mut y = vec![0.0; n_out];
        tile.read_batch_at(Direction::Forward, &x[..n_in], 1, &mut y, 99)
            .unwrap();
        (tile.effective_weights().unwrap(), y)
    };
    let (w_incremental, y_incremental) = read(&tile);
    tile.set_read_time(tile.read_time_s().unwrap()).unwrap();
    let (w_full, y_full) = read(&tile);
    assert_eq!(w_incremental, w_full);
    assert_eq!(y_incremental, y_full);
    assert!(tile.ledger().total.programming_pulses > 0);
}

/// The update draws every random number from (seed, tile, UPDATE, update index, row), so
/// the devices end in bit-identical states whatever the number of threads.
#[test]
fn pulsed_updates_are_bit_identical_for_one_and_two_threads() {
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let (n_in, n_out) = (20, 15);
            let mut tile = Tile::new(
                device("rram_hfo2"),
                n_in,
                n_out,
                TileConfig::default(),
                11,
                2,
            )
            .unwrap();
            let w: Vec<f64> = (0..n_in * n_out)
                .map(|k| (k as f64 * 0.71).cos() * 0.5)
                .collect();
            tile.program(&w).unwrap();
            let rows = 4;
            let x: Vec<f32> = (0..rows * n_in)
                .map(|k| ((k * 7 % 11) as f32 - 5.0) / 5.0)
                .collect();
            let d: Vec<f32> = (0..rows * n_out)
                .map(|k| ((k * 5 % 9) as f32 - 4.0) / 4.0)
                .collect();
            for k in 0..3 {
                tile.apply_outer_product(&d, &x, rows, 0.2, &PulsedUpdateConfig::default(), k)
                    .unwrap();
            }
            (tile.effective_weights().unwrap(), tile.ledger().total)
        })
    };
    let (w1, e1) = run(1);
    let (w2, e2) = run(2);
    assert!(e1.programming_pulses > 0);
    assert_eq!(e1, e2);
    assert!(w1.iter().zip(&w2).all(|(a, b)| a.to_bits() == b.to_bits()));
}

use xbar::learning::ep::{
    Activation, EpConfig, EpNetwork, EpOptimizerState, Equilibria, EquilibriumPropagation,
};
use xbar::synapses::CrossbarSynapses;
use xbar::synapses::{PlasticSynapses, SynapticLayer};

/// A crossbar EP network with the same weights and biases as `digital`, on ideal tiles.
fn crossbar_twin(
    digital: &EpNetwork<xbar::synapses::DigitalSynapses>,
    seed: u64,
) -> EpNetwork<CrossbarSynapses<AnyDevice>> {
    let synapses = digital
        .synapses()
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let (inputs, outputs) = (s.inputs(), s.outputs());
            CrossbarSynapses::program(
                device("ideal"),
                inputs,
                outputs,
                s.weight(),
                1.0,
                TileConfig::ideal(),
                PulsedUpdateConfig::default(),
                seed,
                k as u64,
            )
            .unwrap()
        })
        .collect();
    EpNetwork::new(
        synapses,
        digital.biases().to_vec(),
        Activation::SteepSigmoid,
    )
    .unwrap()
}

fn small_batch() -> (Vec<f32>, Vec<f32>, usize) {
    let (batch, inputs, classes) = (3, 8, 3);
    let x: Vec<f32> = (0..batch * inputs)
        .map(|k| ((k * 5 % 7) as f32) / 6.0)
        .collect();
    let target = xbar::learning::ep::one_hot(&[0, 2, 1], classes);
    (x, target, batch)
}

/// With ideal devices and ideal periphery the tile's forward and transposed MVMs are the
/// digital products (up to f32 rounding of the conductance mapping), so the free and
/// nudged equilibria and the EP estimate -- the requested update -- equal floating-point EP.
#[test]
fn ideal_crossbar_ep_reproduces_digital_equilibria_and_estimates() {
    let mut digital = EpNetwork::digital(&[8, 6, 3], Activation::SteepSigmoid, 5).unwrap();
    let mut analog = crossbar_twin(&digital, 9);
    let (x, target, batch) = small_batch();
    let config = EpConfig::default();
    let eq_d = digital
        .equilibria(&x, &target, batch, &config, 1.0)
        .unwrap();
    let eq_a = analog.equilibria(&x, &target, batch, &config, 1.0).unwrap();
    let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(p, q)| (p - q).abs() < 1e-5);
    for (sd, sa) in eq_d.free.iter().zip(&eq_a.free) {
        assert!(close(sd, sa), "free phase differs");
    }
    for (sd, sa) in eq_d.plus.iter().zip(&eq_a.plus) {
        assert!(close(sd, sa), "nudged phase differs");
    }
    let mut rule = config.rule();
    for k in 0..2 {
        let proposed = |eq: &Equilibria, rule: &mut EquilibriumPropagation| match rule
            .propose(&eq.signals(&x, k).unwrap())
            .unwrap()
        {
            WeightChange::OuterProduct(update) => update.dense(),
            other => panic!("EP proposes outer products, got {other:?}"),
        };
        assert!(
            close(&proposed(&eq_d, &mut rule), &proposed(&eq_a, &mut rule)),
            "EP update of layer {k} differs"
        );
        let (bias_d, bias_a) = (
            eq_d.bias_estimate(k).unwrap(),
            eq_a.bias_estimate(k).unwrap(),
        );
        assert!(
            close(&bias_d, &bias_a),
            "bias estimate of layer {k} differs"
        );
    }
}

/// One EP training step on ideal tiles changes each weight by the digital step in
/// expectation (the pulse scheme is unbiased, module `crossbar::update`): the mean over
/// 200 independent pulse streams matches the digital change within 5 standard errors
/// (sample standard deviation / sqrt(200)) plus f32 rounding.
#[test]
fn ideal_crossbar_ep_step_matches_digital_step_in_expectation() {
    let repeats = 200;
    let digital0 = EpNetwork::digital(&[8, 6, 3], Activation::SteepSigmoid, 5).unwrap();
    let (x, target, batch) = small_batch();
    let config = EpConfig {
        learning_rates: vec![2.0, 2.0],
        ..EpConfig::default()
    };
    let mut rule = config.rule();
    let mut digital = digital0.clone();
    let eq = digital
        .equilibria(&x, &target, batch, &config, 1.0)
        .unwrap();
    digital
        .learn(&x, &eq, &mut rule, &mut EpOptimizerState::new(&config))
        .unwrap();
    for k in 0..2 {
        let before = digital0.synapses()[k].weight();
        let want: Vec<f32> = digital.synapses()[k]
            .weight()
            .iter()
            .zip(before)
            .map(|(a, b)| a - b)
            .collect();
        let (mut sum, mut sq) = (vec![0f64; want.len()], vec![0f64; want.len()]);
        for r in 0..repeats {
            let mut analog = crossbar_twin(&digital0, 100 + r);
            let eq = analog.equilibria(&x, &target, batch, &config, 1.0).unwrap();
            let start = analog.synapses()[k].weight().unwrap();
            analog
                .learn(&x, &eq, &mut rule, &mut EpOptimizerState::new(&config))
                .unwrap();
            let after = analog.synapses()[k].weight().unwrap();
            for (i, (a, b)) in after.iter().zip(&start).enumerate() {
                let d = f64::from(a - b);
                sum[i] += d;
                sq[i] += d * d;
            }
        }
        let n = repeats as f64;
        let mut moved = 0;
        for (i, &w) in want.iter().enumerate() {
            let mean = sum[i] / n;
            let sd = (sq[i] / n - mean * mean).max(0.0).sqrt();
            moved += usize::from(mean != 0.0);
            assert!(
                (mean - f64::from(w)).abs() <= 5.0 * sd / n.sqrt() + 1e-5,
                "layer {k} weight {i}: mean change {mean} vs digital {w}"
            );
        }
        assert!(moved > want.len() / 2, "layer {k}: too few weights moved");
    }
}

use xbar::learning::rule::{LearningRule, WeightChange};

/// SET-only updates push both devices of every pair up their window (the weight is the
/// difference, the headroom shrinks); a refresh reads the weights and programs them back
/// in canonical form, one device of each pair at the bottom of the window. Ideal devices
/// program exactly, so the weights are unchanged and every lower device is back at
/// g_min = 0. With `refresh_interval = 3` this happens by itself after every third update.
#[test]
fn refresh_restores_the_headroom_of_set_only_pairs() {
    use xbar::device::Polarity;
    use xbar::synapses::OuterProductUpdate;
    let (n_in, n_out) = (8, 6);
    let set_only = PulsedUpdateConfig {
        pulse_train_length: 10,
        pair_update: PairUpdate::SetOnly,
        ..Default::default()
    };
    let w0: Vec<f32> = (0..n_in * n_out)
        .map(|k| (k as f32 * 0.37).sin() * 0.3)
        .collect();
    let program = |interval| {
        let mut syn = CrossbarSynapses::program(
            device("ideal"),
            n_in,
            n_out,
            &w0,
            1.0,
            TileConfig::ideal(),
            set_only,
            2,
            0,
        )
        .unwrap();
        syn.set_refresh_interval(interval);
        syn
    };
    // Updates of alternating sign: every pair receives pulses on both of its devices
    // (about 7 per update and device: 0.1 x 0.8 x 0.9 / 0.01).
    let update = |k: usize| OuterProductUpdate {
        post: vec![0.8; n_out],
        pre: vec![0.9; n_in],
        rows: 1,
        scale: if k.is_multiple_of(2) { 0.1 } else { -0.1 },
    };
    let lower_devices = |syn: &CrossbarSynapses<AnyDevice>| {
        let tile = syn.tile();
        let (gp, gn) = (
            tile.conductances(0, Polarity::Set).unwrap(),
            tile.conductances(0, Polarity::Reset).unwrap(),
        );
        gp.iter()
            .zip(&gn)
            .map(|(p, n)| p.min(*n))
            .collect::<Vec<f64>>()
    };
    let mut manual = program(0);
    for k in 0..3 {
        manual.apply_update(&update(k)).unwrap();
    }
    assert!(
        lower_devices(&manual).iter().all(|&g| g > 0.0),
        "SET-only pulses should lift both devices of every pair"
    );
    let before = manual.weight().unwrap();
    manual.refresh().unwrap();
    let after = manual.weight().unwrap();
    assert!(before.iter().zip(&after).all(|(a, b)| (a - b).abs() < 1e-6));
    assert!(lower_devices(&manual).iter().all(|&g| g == 0.0));
    let mut automatic = program(3);
    for k in 0..3 {
        automatic.apply_update(&update(k)).unwrap();
    }
    assert_eq!(automatic.weight().unwrap(), after);
    assert!(lower_devices(&automatic).iter().all(|&g| g == 0.0));
}

/// NeuroSim's weight update (MLP_NeuroSim_V3.0 Cell.cpp `RealDevice::Write`): one device
/// per weight read against a reference column, `numPulse = round(ΔW / (maxWeight -
/// minWeight) · maxNumLevel)` with formula.cpp's `truncate` (halves up), each pulse one
/// step of the device's curve. With a linear noise-free RRAM of L_LTP = 50 and L_LTD = 40
/// levels on the reference encoding (w_max = 1: the window spans [-1, 1], one
/// potentiation pulse = 2/50, one depression pulse = 2/40), every dense update must give
/// NeuroSim's weight, pulse for pulse (to 1e-6: the weights are programmed as f32).
#[test]
fn neurosim_reference_update_counts_window_levels_and_rounds_to_nearest() {
    use xbar::crossbar::WeightEncoding;
    use xbar::crossbar::update::{PulseCount, PulseRounding};
    let mut overrides = toml::Table::new();
    for (k, v) in [
        ("nonlinearity_ltp", 0.0),
        ("nonlinearity_ltd", 0.0),
        ("c2c_sigma", 0.0),
    ] {
        overrides.insert(k.into(), toml::Value::Float(v));
    }
    for (k, v) in [("levels_ltp", 50), ("levels_ltd", 40)] {
        overrides.insert(k.into(), toml::Value::Integer(v));
    }
    let device = preset::load("neurosim_alox_hfo2", &overrides).unwrap();
    let mut tile_config = TileConfig::ideal();
    tile_config.mapping.encoding = WeightEncoding::Reference;
    let (n_in, n_out) = (3, 2);
    let mut tile = Tile::new(device, n_in, n_out, tile_config, 5, 0).unwrap();
    let w0 = [0.0, 0.5, -0.5, 0.2, -1.0, 0.9];
    tile.program_with_scale(&w0, 1.0).unwrap();
    let back = tile.effective_weights().unwrap();
    for (b, w) in back.iter().zip(w0) {
        assert!((b - w).abs() < 1e-6, "programmed {b} vs {w}");
    }
    let config = PulsedUpdateConfig {
        rounding: PulseRounding::Nearest,
        pulse_count: PulseCount::WindowLevels,
        ..Default::default()
    };
    // Requested changes in pulses: +0.49 (0), +0.51 (1), -1.49 (1), +2.6 (3), -0.6 (1),
    // +3 (clipped at the top of the window after 2.5).
    let (up, down) = (2.0 / 50.0, 2.0 / 40.0);
    let delta = [
        0.49 * up,
        0.51 * up,
        -1.49 * down,
        2.6 * up,
        -0.6 * down,
        3.0 * up,
    ];
    let pulses = [0.0, 1.0, -1.0, 3.0, -1.0, 3.0];
    let delta_f32: Vec<f32> = delta.iter().map(|&d| d as f32).collect();
    let report = tile.apply_dense_update(&delta_f32, &config, 0).unwrap();
    assert_eq!(report.write.pulses, 9, "0 + 1 + 1 + 3 + 1 + 3 pulses");
    let after = tile.effective_weights().unwrap();
    for k in 0..6 {
        let step = if pulses[k] > 0.0 { up } else { down };
        let want = (w0[k] + pulses[k] * step).clamp(-1.0, 1.0);
        assert!(
            (after[k] - want).abs() < 1e-6,
            "weight {k}: {} vs NeuroSim {want}",
            after[k]
        );
    }
}

/// Window-level pulse counts need a device with level counts, and apply to dense updates
/// only: both refusals name the setting.
#[test]
fn window_level_counts_are_refused_where_they_do_not_apply() {
    use xbar::crossbar::update::PulseCount;
    let config = PulsedUpdateConfig {
        pulse_count: PulseCount::WindowLevels,
        ..Default::default()
    };
    let mut tile = Tile::new(device("ideal"), 2, 2, TileConfig::ideal(), 1, 0).unwrap();
    tile.program_with_scale(&[0.0; 4], 1.0).unwrap();
    let dense = tile.apply_dense_update(&[0.1; 4], &config, 0).unwrap_err();
    assert!(format!("{dense:#}").contains("window_levels"), "{dense:#}");
    let outer = tile
        .apply_outer_product(&[0.1, 0.2], &[0.3, 0.4], 1, 1.0, &config, 0)
        .unwrap_err();
    assert!(format!("{outer:#}").contains("window_levels"), "{outer:#}");
}
