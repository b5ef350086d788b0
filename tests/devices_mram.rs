//! STT-MTJ switching statistics against the analytic model.
//!
//! Thermal regime (Koch et al., PRL 2004): P = 1 - exp(-t/tau), tau = tau0 exp(Delta (1 - I/Ic0)^b).
//! Precessional regime (Sun, Proc. SPIE 2004): P = exp(-(pi^2 Delta/4) exp(-2 (I/Ic0 - 1) t/tau_D)).
//! The model combines them as 1 - (1 - P_th)(1 - P_prec), with the barrier clamped at 0 above Ic0.

mod common;
use common::mtj_switching_probability;
use std::f64::consts::PI;
use xbar::device::mram::{Mram, MramState};
use xbar::device::{AnyDevice, Device, Polarity, Pulse, preset};

/// A nominal junction (no device-to-device spread) with these overrides.
fn mram(overrides: &[(&str, f64)]) -> Mram {
    let mut table = toml::Table::new();
    for name in ["d2d_r_p_sigma", "d2d_tmr_sigma", "d2d_ic0_sigma"] {
        table.insert(name.into(), toml::Value::Float(0.0));
    }
    for (name, v) in overrides {
        table.insert((*name).into(), toml::Value::Float(*v));
    }
    match preset::load("stt_mram", &table).unwrap() {
        AnyDevice::Mram(m) => m,
        other => panic!("stt_mram is not an MTJ: {other:?}"),
    }
}

/// The SET (AP -> P) pulse amplitude that drives `current_a` through an AP junction.
fn set_amplitude(m: &Mram, state: &MramState, current_a: f64) -> f64 {
    current_a * (state.r_ap_ohm() + m.params.r_access_ohm)
}

/// Simulated switching frequency over `trials` fresh AP junctions.
fn measure(m: &Mram, pulse: &Pulse, trials: u64, seed: u64) -> f64 {
    let mut switched = 0u64;
    for k in 0..trials {
        let mut rng = xbar::rng::stream(seed, &[k]);
        let mut state = m.nominal_state(false);
        if m.apply_pulse(&mut state, pulse, &mut rng).switched {
            assert!(state.parallel, "a SET pulse switches AP to P");
            switched += 1;
        }
    }
    switched as f64 / trials as f64
}

fn assert_binomial(measured: f64, expected: f64, trials: u64, what: &str) {
    let sigma = (expected * (1.0 - expected) / trials as f64)
        .sqrt()
        .max(1.0 / trials as f64);
    assert!(
        (measured - expected).abs() <= 4.0 * sigma,
        "{what}: measured {measured}, model {expected} (4 sigma = {})",
        4.0 * sigma
    );
}

#[test]
fn thermal_regime_switching_matches_the_analytic_probability() {
    const TRIALS: u64 = 20_000;
    for b in [1.0, 2.0] {
        let m = mram(&[("barrier_exponent", b)]);
        let state = m.nominal_state(false);
        // Widths of 0.3, 1 and 3 thermal time constants (P = 0.26, 0.63, 0.95) at each current.
        let cases = [0.6, 0.8, 0.9, 0.97].into_iter().flat_map(|ratio| {
            let tau = m.params.tau0_s * (m.params.delta * (1.0f64 - ratio).powf(b)).exp();
            [0.3, 1.0, 3.0].map(|f| (ratio, f * tau))
        });
        for (ratio, width_s) in cases {
            let current = ratio * m.params.ic0_a;
            let pulse = Pulse {
                polarity: Polarity::Set,
                amplitude_v: set_amplitude(&m, &state, current),
                width_s,
            };
            let expected = mtj_switching_probability(&m, current, width_s);
            let model = m.switching_probability(&state, &pulse);
            assert!(
                (model - expected).abs() < 1e-12,
                "model {model} vs formula {expected}"
            );
            let measured = measure(
                &m,
                &pulse,
                TRIALS,
                (ratio * 100.0) as u64 ^ width_s.to_bits(),
            );
            assert_binomial(
                measured,
                expected,
                TRIALS,
                &format!("b={b} I/Ic0={ratio} t={width_s}"),
            );
        }
    }
}

#[test]
fn precessional_regime_switching_matches_sun_model() {
    const TRIALS: u64 = 20_000;
    // A short precession time (20 ps) makes Sun's channel dominate over the clamped thermal one
    // (attempt time 1 ns) at sub-nanosecond widths. Widths are chosen where Sun's probability
    // is 0.3 or 0.7: t = tau_D ln(E0 / -ln P) / (2 (I/Ic0 - 1)), E0 = pi^2 Delta / 4.
    let m = mram(&[("tau_d_s", 20e-12)]);
    let state = m.nominal_state(false);
    let e0 = PI * PI * m.params.delta / 4.0;
    let cases = [1.5, 2.0, 3.0].into_iter().flat_map(|ratio| {
        [0.3f64, 0.7].map(|p| (ratio, 20e-12 * (e0 / -p.ln()).ln() / (2.0 * (ratio - 1.0))))
    });
    for (ratio, width_s) in cases {
        let current = ratio * m.params.ic0_a;
        let pulse = Pulse {
            polarity: Polarity::Set,
            amplitude_v: set_amplitude(&m, &state, current),
            width_s,
        };
        let expected = mtj_switching_probability(&m, current, width_s);
        assert!(
            expected > 0.05 && expected < 0.95,
            "I/Ic0={ratio}: P={expected}"
        );
        let p_prec = m.precessional_probability(current, m.params.ic0_a, width_s);
        let p_th = m.thermal_probability(current, m.params.ic0_a, width_s);
        assert!(p_prec > p_th, "precession dominates at I/Ic0={ratio}");
        let measured = measure(&m, &pulse, TRIALS, width_s.to_bits());
        assert_binomial(
            measured,
            expected,
            TRIALS,
            &format!("I/Ic0={ratio} t={width_s}"),
        );
    }
}

#[test]
fn switching_probability_is_monotone_and_continuous_in_current() {
    // P is continuous at Ic0 (up to exp(-pi^2 Delta/4)) and never decreases with current.
    let m = mram(&[]);
    let ic0 = m.params.ic0_a;
    for width_s in [1e-10, 1e-9, 1e-8] {
        let mut last = 0.0;
        for i in 0..=2000 {
            let p = m.current_switching_probability(ic0 * i as f64 / 1000.0, ic0, width_s);
            assert!(
                p >= last - 1e-15,
                "P fell from {last} to {p} at I = {i}/1000 Ic0"
            );
            last = p;
        }
        let below = m.current_switching_probability(ic0 * (1.0 - 1e-9), ic0, width_s);
        let above = m.current_switching_probability(ic0 * (1.0 + 1e-9), ic0, width_s);
        assert!(
            (above - below).abs() < 1e-6,
            "jump at Ic0: {below} -> {above}"
        );
    }
}

#[test]
fn pulses_only_switch_towards_their_state() {
    // SET only switches AP -> P, RESET only P -> AP.
    let m = mram(&[]);
    let strong_set = Pulse {
        polarity: Polarity::Set,
        amplitude_v: 5.0,
        width_s: 1e-6,
    };
    let strong_reset = Pulse {
        polarity: Polarity::Reset,
        ..strong_set
    };
    let mut rng = xbar::rng::stream(3, &[]);
    let mut p = m.nominal_state(true);
    assert!(!m.apply_pulse(&mut p, &strong_set, &mut rng).switched);
    assert!(p.parallel);
    assert!(m.apply_pulse(&mut p, &strong_reset, &mut rng).switched);
    assert!(!p.parallel);
    assert!(!m.apply_pulse(&mut p, &strong_reset, &mut rng).switched);
}

#[test]
fn retention_and_read_disturb_follow_the_thermal_formula() {
    // Retention time tau0 exp(Delta): 1 ns * e^40 = 2.35e8 s (about 7.5 years).
    let m = mram(&[]);
    let expected = 1e-9 * 40f64.exp();
    assert!((m.retention_time_s() / expected - 1.0).abs() < 1e-12);

    // An aggressive read (large V_read, long t_read) disturbs AP cells with P_th(I_read, t_read).
    const TRIALS: u64 = 20_000;
    let m = mram(&[("v_read_v", 0.6), ("t_read_s", 60e-9)]);
    let ap = m.nominal_state(false);
    let i_read = m.params.v_read_v / (ap.r_ap_ohm() + m.params.r_access_ohm);
    let p = mtj_switching_probability(&m, i_read, m.params.t_read_s);
    assert!(p > 0.05 && p < 0.95, "read disturb probability {p}");
    let mut flipped = 0;
    for k in 0..TRIALS {
        let mut rng = xbar::rng::stream(77, &[k]);
        let mut state = ap.clone();
        let g = m.read(&mut state, 0.0, &mut rng);
        assert!(
            g > 0.0 && (g * ap.r_ap_ohm() - 1.0).abs() < 0.1,
            "the read senses the AP state"
        );
        flipped += u64::from(state.parallel);
    }
    assert_binomial(flipped as f64 / TRIALS as f64, p, TRIALS, "read disturb");
    // A parallel cell is never disturbed by a read in the AP -> P direction.
    let mut state = m.nominal_state(true);
    let mut rng = xbar::rng::stream(78, &[]);
    for _ in 0..1000 {
        m.read(&mut state, 0.0, &mut rng);
    }
    assert!(state.parallel);
}
