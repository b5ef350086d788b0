//! HfOx RRAM model: binary LRS spread versus compliance current, stochastic switching
//! kinetics, NeuroSim's nonlinear pulse response and fabrication faults.

use xbar::device::rram::{NEUROSIM_DEVIATION_PER_NL, Rram, RramMode};
use xbar::device::{AnyDevice, Device, Polarity, Pulse, StuckAt, preset};

fn rram(overrides: &[(&str, f64)]) -> Rram {
    let mut table = toml::Table::new();
    for name in ["p_stuck_lrs", "p_stuck_hrs"] {
        table.insert(name.into(), toml::Value::Float(0.0));
    }
    for (name, v) in overrides {
        table.insert((*name).into(), toml::Value::Float(*v));
    }
    match preset::load("rram_hfo2", &table).unwrap() {
        AnyDevice::Rram(r) => r,
        other => panic!("rram_hfo2 is not an RRAM: {other:?}"),
    }
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

#[test]
fn lrs_log_resistance_spread_follows_the_compliance_current() {
    // R_LRS = V_c / I_cc (Ielmini, IEEE TED 2011), lognormal with
    // sigma_lnR = sigma_ref (I_ref / I_cc)^alpha: a lower compliance gives a broader LRS.
    // 20,000 cells per current: the standard error of sigma is 0.5 %, of the mean ln R 0.1 sigma %.
    let device = rram(&[]);
    let p = device.params.clone();
    let mut sigmas = Vec::new();
    for i_cc in [30e-6, 300e-6] {
        let ln_r: Vec<f64> = (0..20_000u64)
            .map(|d| {
                let mut rng = xbar::rng::stream(7, &[(i_cc * 1e6) as u64, d]);
                let mut state = device.fabricate(&mut rng);
                device.program_binary_with_compliance(&mut state, true, i_cc, &mut rng);
                assert_eq!(state.mode, RramMode::Binary);
                (1.0 / device.conductance_at(&state, 0.0)).ln()
            })
            .collect();
        let (mean, std) = mean_std(&ln_r);
        let expected_sigma = p.sigma_ln_r_lrs_ref * (p.i_ref_a / i_cc).powf(p.lrs_spread_exponent);
        assert!(
            (std / expected_sigma - 1.0).abs() < 0.03,
            "I_cc {i_cc}: {std} vs {expected_sigma}"
        );
        assert!(
            (mean - (p.v_c_v / i_cc).ln()).abs() < 0.01,
            "median R at I_cc {i_cc}"
        );
        sigmas.push(std);
    }
    assert!(
        sigmas[0] > 2.0 * sigmas[1],
        "the spread shrinks with compliance current"
    );
}

#[test]
fn the_preset_compliance_current_is_used_by_binary_programming() {
    // Overriding i_compliance_a moves the LRS median to V_c / I_cc.
    let device = rram(&[("i_compliance_a", 50e-6)]);
    let mut ln_r = Vec::new();
    for d in 0..4000u64 {
        let mut rng = xbar::rng::stream(8, &[d]);
        let mut state = device.fabricate(&mut rng);
        device.program_binary(&mut state, true, &mut rng);
        ln_r.push((1.0 / device.conductance_at(&state, 0.0)).ln());
    }
    let (mean, _) = mean_std(&ln_r);
    assert!((mean - (0.4f64 / 50e-6).ln()).abs() < 0.02);
}

#[test]
fn switching_probability_follows_the_voltage_time_relation() {
    // P = 1 - exp(-w / tau(V)), tau(V) = tau0 exp(-V/V0) (Gaba, Sheridan & Lu, Nanoscale 2013).
    // A pulse that does not switch leaves the conductance unchanged.
    const TRIALS: u64 = 20_000;
    let device = rram(&[]);
    let p = device.params.clone();
    for (polarity, v, w) in [
        (Polarity::Set, 0.9, 100e-9),
        (Polarity::Set, 1.0, 30e-9),
        (Polarity::Reset, 1.2, 100e-9),
        (Polarity::Reset, 1.3, 50e-9),
    ] {
        let (tau0, v0) = match polarity {
            Polarity::Set => (p.tau0_set_s, p.v0_set_v),
            Polarity::Reset => (p.tau0_reset_s, p.v0_reset_v),
        };
        let expected = 1.0 - (-w / (tau0 * (-v / v0).exp())).exp();
        assert!(
            expected > 0.05 && expected < 0.95,
            "{polarity:?} {v} V {w} s: {expected}"
        );
        let pulse = Pulse {
            polarity,
            amplitude_v: v,
            width_s: w,
        };
        let mut switched = 0u64;
        for k in 0..TRIALS {
            let mut rng = xbar::rng::stream(9, &[polarity as u64, (v * 100.0) as u64, k]);
            let mut state = device.fabricate(&mut rng);
            device.program_binary(&mut state, polarity == Polarity::Reset, &mut rng);
            let before = state.clone();
            if device.apply_pulse(&mut state, &pulse, &mut rng).switched {
                switched += 1;
            } else {
                assert_eq!(
                    state, before,
                    "a pulse that does not switch changes nothing"
                );
            }
        }
        let measured = switched as f64 / TRIALS as f64;
        let sigma = (expected * (1.0 - expected) / TRIALS as f64).sqrt();
        assert!(
            (measured - expected).abs() < 4.0 * sigma,
            "{measured} vs {expected}"
        );
    }
}

#[test]
fn noise_free_pulse_response_has_neurosims_nonlinearity() {
    // Without noise or spread, `levels` potentiation pulses take the cell from g_min to g_max,
    // and the largest deviation of the normalised curve from a straight line is
    // NL x 0.0989949 (the definition behind NeuroSim's getParamA table).
    let device = rram(&[
        ("c2c_sigma", 0.0),
        ("d2d_window_sigma", 0.0),
        ("d2d_step_sigma", 0.0),
    ]);
    let p = device.params.clone();
    let mut rng = xbar::rng::stream(10, &[]);
    let mut state = device.fabricate(&mut rng);
    let pulse = Pulse {
        polarity: Polarity::Set,
        amplitude_v: 5.0,
        width_s: 1e-3,
    };
    let mut curve = vec![device.conductance_at(&state, 0.0)];
    for _ in 0..p.levels_ltp {
        device.apply_pulse(&mut state, &pulse, &mut rng);
        curve.push(device.conductance_at(&state, 0.0));
    }
    assert!((curve[0] - p.g_min_s).abs() < 1e-15);
    assert!((curve.last().unwrap() / p.g_max_s - 1.0).abs() < 1e-9);
    let n = f64::from(p.levels_ltp);
    let deviation = curve
        .iter()
        .enumerate()
        .map(|(k, g)| (g - p.g_min_s) / (p.g_max_s - p.g_min_s) - k as f64 / n)
        .fold(0.0, f64::max);
    let expected = p.nonlinearity_ltp * NEUROSIM_DEVIATION_PER_NL;
    // The discrete curve samples the continuous maximum within one pulse (40 levels).
    assert!(
        (deviation - expected).abs() < 0.01,
        "{deviation} vs {expected}"
    );
    // Depression saturates towards g_min: its first step is its largest.
    let reset = Pulse {
        polarity: Polarity::Reset,
        ..pulse
    };
    let g0 = device.conductance_at(&state, 0.0);
    device.apply_pulse(&mut state, &reset, &mut rng);
    let first = g0 - device.conductance_at(&state, 0.0);
    for _ in 0..p.levels_ltd - 2 {
        device.apply_pulse(&mut state, &reset, &mut rng);
    }
    let g1 = device.conductance_at(&state, 0.0);
    device.apply_pulse(&mut state, &reset, &mut rng);
    let last = g1 - device.conductance_at(&state, 0.0);
    assert!(first > last, "depression steps shrink: {first} then {last}");
    assert!((device.conductance_at(&state, 0.0) / p.g_min_s - 1.0).abs() < 1e-9);
}

#[test]
fn stuck_at_faults_occur_at_their_rates() {
    // Fabrication draws stuck-at-LRS/HRS faults with the preset's probabilities.
    let device = rram(&[("p_stuck_lrs", 0.05), ("p_stuck_hrs", 0.02)]);
    const N: u64 = 40_000;
    let (mut lrs, mut hrs) = (0u64, 0u64);
    for d in 0..N {
        let mut rng = xbar::rng::stream(12, &[d]);
        let state = device.fabricate(&mut rng);
        match state.stuck {
            Some(StuckAt::Lrs) => {
                lrs += 1;
                assert_eq!(device.conductance_at(&state, 0.0), state.g_max_s);
            }
            Some(StuckAt::Hrs) => hrs += 1,
            None => {}
        }
    }
    for (count, p) in [(lrs, 0.05), (hrs, 0.02)] {
        let sigma = (p * (1.0 - p) / N as f64).sqrt();
        assert!(
            (count as f64 / N as f64 - p).abs() < 4.0 * sigma,
            "{count} of {N} vs {p}"
        );
    }
}

#[test]
fn relaxation_spread_grows_with_log_time() {
    // Simple relaxation model: G(t) = G_prog + z s (G_max - G_min) log10(1 + t/t_relax).
    // Programmed without noise to mid-window, the spread after t is s * span * log10(1 + t/t_relax).
    let s = 0.01;
    let device = rram(&[
        ("relax_sigma_per_decade", s),
        ("program_sigma", 0.0),
        ("d2d_window_sigma", 0.0),
    ]);
    let p = device.params.clone();
    let span = p.g_max_s - p.g_min_s;
    let mid = 0.5 * (p.g_min_s + p.g_max_s);
    let states: Vec<_> = (0..20_000u64)
        .map(|d| {
            let mut rng = xbar::rng::stream(13, &[d]);
            let mut state = device.fabricate(&mut rng);
            device.program(&mut state, mid, &mut rng);
            state
        })
        .collect();
    for t in [0.0, 9.0 * p.t_relax_s, 999.0 * p.t_relax_s] {
        let g: Vec<f64> = states
            .iter()
            .map(|st| device.conductance_at(st, t))
            .collect();
        let (mean, std) = mean_std(&g);
        let expected = s * span * (1.0 + t / p.t_relax_s).log10();
        assert!((mean - mid).abs() < 0.002 * span, "t = {t}: mean {mean}");
        if expected == 0.0 {
            assert!(std < 1e-9 * span, "no relaxation at t = 0: {std}");
        } else {
            assert!(
                (std / expected - 1.0).abs() < 0.03,
                "t = {t}: {std} vs {expected}"
            );
        }
    }
}

/// Median and log-spread of the LRS drawn by `draws` RESET-then-SET re-programmings at
/// compliance `i_cc` of a cell that has spent `cycles` cycles, checked against the law:
/// the fraction below the law's median is binomial(n, 1/2) (4 standard deviations,
/// sqrt(n/4)), and (n-1) s^2 / sigma^2 is chi-square with n-1 degrees of freedom (mean n-1,
/// standard deviation sqrt(2(n-1)), 4 of them allowed).
fn check_reprogramming_law(device: &Rram, i_cc: f64, cycles: u64) {
    let draws = 4000u64;
    let mut rng = xbar::rng::stream(21, &[cycles, (i_cc * 1e6) as u64]);
    let mut state = device.fabricate(&mut rng);
    state.stuck = None;
    state.cycles = cycles;
    let ln_g: Vec<f64> = (0..draws)
        .map(|_| {
            let before = state.cycles;
            let report = device.reprogram_lrs(&mut state, i_cc, &mut rng);
            assert_eq!(report.pulses, 2, "a RESET and a SET");
            assert_eq!(state.cycles, before + 1, "one endurance cycle");
            state.cycles = cycles;
            state.g_s.ln()
        })
        .collect();
    let n = draws as f64;
    let median = device.lrs_median_conductance_s(i_cc).ln();
    let below = ln_g.iter().filter(|&&v| v < median).count() as f64;
    assert!(
        (below - n / 2.0).abs() < 4.0 * (n / 4.0).sqrt(),
        "I_cc {i_cc}, {cycles} cycles: {below} of {n} below the median"
    );
    let sigma = device.lrs_sigma_ln_r(i_cc, cycles + 1);
    let (_, s) = mean_std(&ln_g);
    let chi2 = (n - 1.0) * s * s / (sigma * sigma);
    assert!(
        (chi2 - (n - 1.0)).abs() < 4.0 * (2.0 * (n - 1.0)).sqrt(),
        "I_cc {i_cc}, {cycles} cycles: s = {s}, law {sigma}"
    );
}

#[test]
fn reprogramming_draws_the_lrs_of_the_compliance_current_and_the_wear() {
    let device = rram(&[]);
    for (i_cc, cycles) in [(20e-6, 0), (80e-6, 0), (40e-6, 10_000_000)] {
        check_reprogramming_law(&device, i_cc, cycles);
    }
    // The compliance that targets a median gives that median back.
    let g = 123e-6;
    let i = device.compliance_for_median_a(g);
    assert!((device.lrs_median_conductance_s(i) / g - 1.0).abs() < 1e-12);
    // Endurance: the spread grows and the HRS median falls as (1 + n/n_0)^beta.
    let p = &device.params;
    let wear: f64 = 1.0 + 1e7 / p.endurance_onset_cycles;
    let ratio = device.lrs_sigma_ln_r(40e-6, 10_000_000) / device.lrs_sigma_ln_r(40e-6, 0);
    assert!((ratio - wear.powf(p.endurance_spread_exponent)).abs() < 1e-12);
    assert!(device.hrs_median_resistance_ohm(10_000_000) < 0.6 * p.r_hrs_median_ohm);
}

/// The log density of the LRS conductance integrates to 1 (trapezoid rule over ±8 sigma
/// in ln G, where the lognormal density of G times G is the normal density of ln G).
#[test]
fn the_lrs_density_is_normalised() {
    let device = rram(&[]);
    let (i_cc, cycles) = (30e-6, 1000);
    let mu = device.lrs_median_conductance_s(i_cc).ln();
    let sigma = device.lrs_sigma_ln_r(i_cc, cycles);
    let steps = 4000;
    let h = 16.0 * sigma / steps as f64;
    let integral: f64 = (0..=steps)
        .map(|k| {
            let ln_g = mu - 8.0 * sigma + k as f64 * h;
            let w = if k == 0 || k == steps { 0.5 } else { 1.0 };
            w * h * (device.lrs_log_density(ln_g.exp(), i_cc, cycles) + ln_g).exp()
        })
        .sum();
    assert!((integral - 1.0).abs() < 1e-6, "{integral}");
}
