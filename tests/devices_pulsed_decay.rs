//! Decay and diffusion of the pulsed devices between updates (aihwkit's `lifetime` and
//! `diffusion`, applied by its analog optimiser once per mini-batch through
//! `post_update_step` → `diffuse_weights`, then `decay_weights`; C++
//! `PulsedRPUDevice::diffuseWeights`/`decayWeights` in `src/rpucuda/rpu_pulsed_device.cpp`,
//! aihwkit@4545f11): the closed forms of one cell, the per-device spreads, a tile that
//! applies them once per update, presets that keep them off, and errors that name the field.
//!
//! Every statistical check uses a fixed seed and enough samples for its tolerance (stated
//! next to it, in standard errors).

use xbar::crossbar::update::PulsedUpdateConfig;
use xbar::crossbar::{Tile, TileConfig};
use xbar::device::pulsed::{PulsedDevice, PulsedParams, PulsedState, StepFamily};
use xbar::device::{AnyDevice, Device, preset};

/// Cells per statistical estimate.
const CELLS: usize = 20_000;
/// Allowed deviation of a sample statistic, in standard errors.
const SIGMAS: f64 = 5.0;

/// A constant-step device on the weights [-1, 1] (window [20, 25] uS) without noise.
fn params() -> PulsedParams {
    PulsedParams::noise_free((20e-6, 25e-6), (-1.0, 1.0), 0.01, (1.0, 100e-9))
}

fn device(params: PulsedParams) -> PulsedDevice {
    let d = PulsedDevice::new(params, StepFamily::ConstantStep);
    d.validate().unwrap();
    d
}

/// A cell of `d` put at weight `w`.
fn cell_at(d: &PulsedDevice, w: f64, seed: u64) -> PulsedState {
    let mut cell = d.fabricate(&mut xbar::rng::stream(seed, &[0]));
    cell.w = w;
    cell.w_seen = w;
    cell
}

fn mean_and_var(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var)
}

/// Decay: aihwkit sets the per-device factor δ = 1 - 1/lifetime (`lifetime > 1`, else 0)
/// at construction and applies `w ← (w - r) δ + r` once per mini-batch, r being the reset
/// value, so after n updates `w_n = r + (w_0 - r) (1 - 1/lifetime)^n`.
#[test]
fn decay_follows_the_closed_form_towards_the_reset_value() {
    let (lifetime, reset, w0) = (50.0, 0.2, 0.9);
    let d = device(PulsedParams {
        lifetime,
        reset,
        ..params()
    });
    assert!(d.evolves_per_update());
    let mut cell = cell_at(&d, w0, 1);
    assert_eq!(cell.decay_scale, 1.0 - 1.0 / lifetime);
    assert_eq!(cell.reset_bias, reset);
    let mut rng = xbar::rng::stream(1, &[1]);
    for n in 1..=300 {
        d.after_update(&mut cell, &mut rng);
        let closed = reset + (w0 - reset) * (1.0 - 1.0 / lifetime).powi(n);
        assert!(
            (cell.w - closed).abs() < 1e-12,
            "n = {n}: {} vs {closed}",
            cell.w
        );
        assert_eq!(
            cell.w_seen, cell.w,
            "no write noise: reads see the decayed weight"
        );
    }
    // A lifetime of at most one update resets the weight at once (δ = 0, as aihwkit).
    let d = device(PulsedParams {
        lifetime: 0.5,
        reset,
        ..params()
    });
    let mut cell = cell_at(&d, -0.7, 2);
    d.after_update(&mut cell, &mut rng);
    assert_eq!(cell.w, reset);
}

/// Diffusion: `w ← w + ρ ξ` once per update, so from a fixed weight far from the bounds the
/// mean stays and the variance grows linearly, n ρ² after n updates.
#[test]
fn diffusion_variance_grows_linearly_with_updates() {
    let rho = 0.01;
    let d = device(PulsedParams {
        diffusion: rho,
        ..params()
    });
    assert!(d.evolves_per_update());
    let mut cells: Vec<PulsedState> = (0..CELLS).map(|k| cell_at(&d, 0.0, k as u64)).collect();
    assert!(
        cells
            .iter()
            .all(|c| c.diffusion_rate == rho && c.decay_scale == 1.0)
    );
    let mut rng = xbar::rng::stream(3, &[1]);
    let mut done = 0;
    // After 100 updates the standard deviation is 0.1: the bounds at ±1 are 10 σ away.
    for n in [1, 25, 100] {
        while done < n {
            for c in &mut cells {
                d.after_update(c, &mut rng);
            }
            done += 1;
        }
        let w: Vec<f64> = cells.iter().map(|c| c.w).collect();
        let (mean, var) = mean_and_var(&w);
        let expected = n as f64 * rho * rho;
        let se_mean = (expected / CELLS as f64).sqrt();
        let se_var = expected * (2.0 / (CELLS as f64 - 1.0)).sqrt();
        assert!(mean.abs() <= SIGMAS * se_mean, "n = {n}: mean {mean}");
        assert!(
            (var - expected).abs() <= SIGMAS * se_var,
            "n = {n}: variance {var}, n rho^2 = {expected}"
        );
    }
}

/// The per-device values drawn at fabrication, as aihwkit's `populate` draws them:
/// ρ = |diffusion (1 + diffusion_dtod ξ)|, r = reset + reset_dtod ξ, lifetime
/// L = lifetime (1 + lifetime_dtod ξ) with δ = 1 - 1/L.
#[test]
fn per_device_rates_spread_as_the_parameters_say() {
    let (diffusion, diffusion_dtod) = (0.01, 0.2);
    let (lifetime, lifetime_dtod) = (100.0, 0.1);
    let (reset, reset_dtod) = (0.1, 0.05);
    let d = device(PulsedParams {
        diffusion,
        diffusion_dtod,
        lifetime,
        lifetime_dtod,
        reset,
        reset_dtod,
        ..params()
    });
    let cells: Vec<PulsedState> = (0..CELLS).map(|k| cell_at(&d, 0.0, k as u64)).collect();
    let n = CELLS as f64;
    let check = |what: &str, values: Vec<f64>, mean: f64, sd: f64| {
        let (m, v) = mean_and_var(&values);
        assert!(
            (m - mean).abs() <= SIGMAS * sd / n.sqrt(),
            "{what}: mean {m} vs {mean}"
        );
        assert!(
            (v.sqrt() - sd).abs() <= SIGMAS * sd / (2.0 * n).sqrt(),
            "{what}: sd {} vs {sd}",
            v.sqrt()
        );
    };
    // |1 + 0.2 ξ| differs from 1 + 0.2 ξ only beyond 5 σ: the absolute value does not matter.
    let rates = cells.iter().map(|c| c.diffusion_rate).collect();
    check(
        "diffusion rate",
        rates,
        diffusion,
        diffusion * diffusion_dtod,
    );
    let resets = cells.iter().map(|c| c.reset_bias).collect();
    check("reset value", resets, reset, reset_dtod);
    let lifetimes = cells.iter().map(|c| 1.0 / (1.0 - c.decay_scale)).collect();
    check("lifetime", lifetimes, lifetime, lifetime * lifetime_dtod);
}

/// Off means off: with diffusion = lifetime = 0 nothing is drawn for the spreads of these
/// processes (the cells are those of a device without the spreads, bit for bit), and every
/// built-in preset has them off, so its numbers are those from before they were modelled.
#[test]
fn decay_and_diffusion_are_off_by_default_and_draw_nothing() {
    let base = PulsedParams {
        dw_min_dtod: 0.1,
        w_max_dtod: 0.1,
        ..params()
    };
    let plain = device(base.clone());
    let spreads_only = device(PulsedParams {
        diffusion_dtod: 0.3,
        lifetime_dtod: 0.3,
        reset_dtod: 0.3,
        ..base
    });
    assert!(!spreads_only.evolves_per_update());
    for seed in 0..100 {
        assert_eq!(
            cell_at(&plain, 0.3, seed),
            cell_at(&spreads_only, 0.3, seed)
        );
    }
    for name in preset::builtin_names() {
        let d = preset::load(name, &toml::Table::new()).unwrap();
        assert!(!d.evolves_per_update(), "{name} evolves between updates");
    }
}

/// On a tile the evolution runs once per update, on every cell: with decay towards the
/// middle of the window (reset = 0 on [-1, 1]) both devices of a pair decay by the same
/// factor, so an update without pulses leaves the effective weights W δ^k after k updates,
/// and the read cache follows.
#[test]
fn a_tile_decays_its_weights_once_per_update() {
    let lifetime = 10.0;
    let d = device(PulsedParams {
        lifetime,
        ..params()
    });
    let (n_in, n_out) = (4, 3);
    let mut tile = Tile::new(d, n_in, n_out, TileConfig::ideal(), 7, 0).unwrap();
    let w: Vec<f64> = (0..n_in * n_out)
        .map(|k| 0.9 * (k as f64 * 0.7).sin())
        .collect();
    tile.program(&w).unwrap();
    let start = tile.effective_weights().unwrap();
    let config = PulsedUpdateConfig::default();
    let zero = vec![0f32; n_in * n_out];
    for k in 1..=5 {
        let report = tile.apply_dense_update(&zero, &config, k).unwrap();
        assert_eq!(report.write.pulses, 0);
        let factor = (1.0 - 1.0 / lifetime).powi(k as i32);
        for (now, before) in tile.effective_weights().unwrap().iter().zip(&start) {
            assert!(
                (now - before * factor).abs() < 1e-5,
                "after {k} updates: {now} vs {}",
                before * factor
            );
        }
    }
    // An outer-product update evolves the cells too (once, after its pulses).
    let before = tile.effective_weights().unwrap();
    tile.apply_outer_product(&[0.0; 3], &[0.0; 4], 1, 1.0, &config, 6)
        .unwrap();
    for (now, b) in tile.effective_weights().unwrap().iter().zip(&before) {
        assert!((now - b * (1.0 - 1.0 / lifetime)).abs() < 1e-5);
    }
}

/// Bad values are refused with the field's name.
#[test]
fn bad_decay_and_diffusion_parameters_are_refused_by_name() {
    for (field, value) in [
        ("lifetime", -1.0),
        ("lifetime_dtod", -0.1),
        ("diffusion", -0.01),
        ("diffusion_dtod", -0.2),
        ("reset_dtod", -0.3),
    ] {
        let mut overrides = toml::Table::new();
        overrides.insert(field.into(), toml::Value::Float(value));
        let error = match preset::load("ecram", &overrides) {
            Ok(_) => panic!("{field} = {value} accepted"),
            Err(e) => format!("{e:#}"),
        };
        assert!(error.contains(field), "{field}: {error}");
    }
    // Overriding a value aihwkit gives (the capacitor's leakage) builds a decaying device.
    let mut overrides = toml::Table::new();
    overrides.insert("lifetime".into(), toml::Value::Float(1e6));
    let AnyDevice::Pulsed(d) = preset::load("capacitor", &overrides).unwrap() else {
        panic!("capacitor is pulsed");
    };
    assert!(d.evolves_per_update());
}
