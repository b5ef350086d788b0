//! The three-terminal SOT-MRAM cell (`sot_mram`: the MTJ model with `sot_write = true`):
//! written through its heavy-metal line, read through its junction.
//!
//! The switching law is the MTJ model's (see `devices_mram.rs`): with the line current
//! `I = V / (R_HM + R_access)`, `P = 1 - (1 - P_th)(1 - P_prec)`, `P_th = 1 - exp(-t/tau)`,
//! `tau = tau0 exp(Delta (1 - I/Ic0)^b)` (barrier clamped at 0), and, above Ic0,
//! `P_prec = exp(-(pi^2 Delta/4) exp(-2 (I/Ic0 - 1) t/tau_D))`.

mod common;
use common::mtj_switching_probability;
use xbar::device::mram::Mram;
use xbar::device::{AnyDevice, Device, Polarity, Pulse, preset};

/// Junctions per switching-probability estimate.
const TRIALS: u64 = 20_000;
/// Allowed deviation of a measured frequency, in binomial standard errors.
const SIGMAS: f64 = 5.0;

fn load(name: &str, overrides: &[(&str, f64)]) -> Mram {
    let mut table = toml::Table::new();
    for (k, v) in overrides {
        table.insert((*k).into(), toml::Value::Float(*v));
    }
    match preset::load(name, &table).unwrap() {
        AnyDevice::Mram(m) => m,
        other => panic!("{name} is not an MTJ: {other:?}"),
    }
}

/// The switching probability of an SOT cell follows the law with the heavy-metal line's
/// current, whatever the junction's resistance: a SET pulse (AP -> P) and a RESET pulse
/// (P -> AP) of one amplitude switch with the same probability, and junctions of different
/// R_P switch alike. Measured over 20,000 fresh junctions per current.
#[test]
fn switching_probability_follows_the_line_current() {
    let m = load("sot_mram", &[]);
    assert!(m.params.sot_write);
    let p = m.params.clone();
    let path_ohm = p.r_hm_ohm + p.r_access_ohm;
    let width_s = p.set_pulse_width_s;
    let mut last = 0.0;
    for ratio in [0.6, 0.9, 1.0, 1.1, 1.3, 1.6, 2.0] {
        let current_a = ratio * p.ic0_a;
        let expected = mtj_switching_probability(&m, current_a, width_s);
        assert!(expected >= last, "non-decreasing in the current");
        last = expected;
        for (polarity, parallel, r_scale, seed) in [
            (Polarity::Set, false, 1.0, 1),
            (Polarity::Reset, true, 1.0, 2),
            (Polarity::Set, false, 3.0, 3),
        ] {
            let pulse = Pulse {
                polarity,
                amplitude_v: current_a * path_ohm,
                width_s,
            };
            let mut state = m.nominal_state(parallel);
            state.r_p_ohm *= r_scale;
            assert!((m.current_a(&state, pulse.amplitude_v) - current_a).abs() < 1e-12);
            let p_model = m.switching_probability(&state, &pulse);
            assert!(
                (p_model - expected).abs() < 1e-12,
                "{p_model} vs {expected}"
            );
            let mut switched = 0u64;
            for k in 0..TRIALS {
                let mut rng = xbar::rng::stream(seed, &[k, (ratio * 100.0) as u64]);
                let mut s = state.clone();
                if m.apply_pulse(&mut s, &pulse, &mut rng).switched {
                    assert_eq!(s.parallel, !parallel);
                    switched += 1;
                }
            }
            let measured = switched as f64 / TRIALS as f64;
            let sigma = (expected * (1.0 - expected) / TRIALS as f64).sqrt();
            assert!(
                (measured - expected).abs() <= SIGMAS * sigma + 1e-12,
                "I = {ratio} Ic0, {polarity:?}, R_P x {r_scale}: {measured} vs {expected}"
            );
        }
    }
    // The preset's nominal pulses switch reliably (about 2 Ic0 for 1 ns).
    let set = m.nominal_pulse(Polarity::Set);
    assert!(m.switching_probability(&m.nominal_state(false), &set) > 0.99);
}

/// The write energy is dissipated in the line, I^2 R_HM t, not in the junction.
#[test]
fn write_energy_is_dissipated_in_the_heavy_metal_line() {
    let m = load("sot_mram", &[]);
    let pulse = m.nominal_pulse(Polarity::Set);
    let p = &m.params;
    let i = pulse.amplitude_v / (p.r_hm_ohm + p.r_access_ohm);
    let expected = i * i * p.r_hm_ohm * pulse.width_s;
    for parallel in [false, true] {
        let mut state = m.nominal_state(parallel);
        let mut rng = xbar::rng::stream(5, &[0]);
        let e = m.apply_pulse(&mut state, &pulse, &mut rng).energy_j;
        assert!(
            (e - expected).abs() <= 1e-12 * expected,
            "{e} vs {expected}"
        );
    }
}

/// A read never switches an SOT cell, even at a read voltage that disturbs an STT cell of the
/// same junction almost every time.
#[test]
fn a_read_never_switches_an_sot_cell() {
    let loud = [("v_read_v", 2.0)];
    let sot = load("sot_mram", &loud);
    let stt = load("stt_mram", &loud);
    assert!(stt.read_disturb_probability(&stt.nominal_state(false)) > 0.5);
    assert_eq!(sot.read_disturb_probability(&sot.nominal_state(false)), 0.0);
    let mut rng = xbar::rng::stream(6, &[0]);
    for parallel in [false, true] {
        let mut state = sot.nominal_state(parallel);
        let g = sot.conductance_at(&state, 0.0);
        for _ in 0..10_000 {
            sot.read(&mut state, 0.0, &mut rng);
            assert_eq!(state.parallel, parallel, "a read switched the cell");
        }
        assert_eq!(sot.conductance_at(&state, 0.0), g);
    }
}

/// The STT preset is unchanged by the SOT option: two terminals, written through the junction.
#[test]
fn the_stt_preset_stays_a_two_terminal_cell() {
    let stt = load("stt_mram", &[]);
    assert!(!stt.params.sot_write);
    assert_eq!(stt.params.r_hm_ohm, 0.0);
    let state = stt.nominal_state(false);
    let i = stt.current_a(&state, 0.85);
    assert_eq!(i, 0.85 / (state.r_ap_ohm() + stt.params.r_access_ohm));
}

/// A three-terminal cell needs its line's resistance, and a line on a two-terminal cell is
/// refused: both errors name `r_hm_ohm`.
#[test]
fn inconsistent_write_paths_are_refused_by_name() {
    let text = preset::read("sot_mram").unwrap();
    let mut zero = toml::Table::new();
    zero.insert("r_hm_ohm".into(), toml::Value::Float(0.5));
    let msg = format!("{:#}", text.build(&zero).unwrap_err());
    assert!(msg.contains("r_hm_ohm"), "{msg}");
    let mut stt = toml::Table::new();
    stt.insert("sot_write".into(), toml::Value::Boolean(false));
    let msg = format!("{:#}", text.build(&stt).unwrap_err());
    assert!(msg.contains("r_hm_ohm"), "{msg}");
}
