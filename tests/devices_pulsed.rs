//! Pulsed step-model devices (aihwkit's families): the mean step of each family against its
//! formula, device-to-device statistics against the parameters, pulse responses that
//! saturate at the bounds, the aihwkit presets on a crossbar tile, and validation errors
//! that name the field.
//!
//! Every statistical check uses a fixed seed and enough samples for its tolerance (stated
//! next to it, in standard errors).

use xbar::crossbar::{Tile, TileConfig};
use xbar::device::pulsed::{
    ExpStepParams, LinearStepParams, PiecewiseStepParams, PowStepParams, PulsedDevice,
    PulsedParams, PulsedState, SoftBoundsParams, StepFamily,
};
use xbar::device::{AnyDevice, Device, Polarity, Pulse, StuckAt, preset};

/// Pulses averaged per mean-step estimate.
const PULSES: usize = 20_000;
/// Devices averaged per device-to-device estimate.
const DEVICES: usize = 20_000;
/// Cycle-to-cycle spread of the test devices, relative to the step.
const C2C: f64 = 0.3;
/// Allowed deviation of a sample mean, in standard errors.
const SIGMAS: f64 = 5.0;
/// The new built-in presets.
const NEW_PRESETS: [&str; 8] = [
    "reram_es",
    "reram_sb",
    "ecram",
    "ecram_mo",
    "capacitor",
    "gokmen_vlasov",
    "idealized",
    "aihwkit_pcm",
];

/// Shared parameters of a test device: window [-1, 1] mapped to [20, 25] uS (so that the
/// spread bounds never reach 0 S), no device-to-device spread, `C2C` cycle-to-cycle noise.
fn params() -> PulsedParams {
    PulsedParams {
        dw_min_std: C2C,
        ..PulsedParams::noise_free((20e-6, 25e-6), (-1.0, 1.0), 0.01, (1.0, 100e-9))
    }
}

fn device(params: PulsedParams, family: StepFamily) -> PulsedDevice {
    let d = PulsedDevice::new(params, family);
    d.validate().unwrap();
    d
}

fn linear(gamma: f64, mult_noise: bool) -> StepFamily {
    StepFamily::LinearStep(LinearStepParams {
        gamma_up: gamma,
        gamma_down: gamma,
        gamma_up_dtod: 0.0,
        gamma_down_dtod: 0.0,
        allow_increasing: false,
        mean_bound_reference: true,
        mult_noise,
    })
}

/// One of every family, with moderate shapes.
fn every_family() -> Vec<StepFamily> {
    vec![
        StepFamily::ConstantStep,
        linear(0.5, true),
        StepFamily::SoftBounds(SoftBoundsParams { mult_noise: false }),
        StepFamily::ExpStep(ExpStepParams {
            a_up: 0.1,
            a_down: 0.1,
            gamma_up: 2.0,
            gamma_down: 2.0,
            a: 1.0,
            b: 0.0,
            dw_min_std_add: 0.0,
            dw_min_std_slope: 0.0,
        }),
        // An exponent below 1 reaches the bound in finitely many pulses (above 1 the approach
        // is a slow power law).
        StepFamily::PowStep(PowStepParams {
            pow_gamma: 0.5,
            pow_gamma_dtod: 0.0,
            pow_up_down: 0.0,
            pow_up_down_dtod: 0.0,
        }),
        StepFamily::PiecewiseStep(PiecewiseStepParams {
            piecewise_up: vec![1.0, 0.5, 0.25],
            piecewise_down: vec![0.25, 0.5, 1.0],
        }),
    ]
}

fn pulse(d: &PulsedDevice, polarity: Polarity) -> Pulse {
    d.nominal_pulse(polarity)
}

/// Mean and standard error of the step a `polarity` pulse makes from weight `w` (the cell is
/// put back to `w` before every pulse), signed, weight units.
fn measured_step(
    d: &PulsedDevice,
    cell: &PulsedState,
    polarity: Polarity,
    w: f64,
    seed: u64,
) -> (f64, f64) {
    let mut rng = xbar::rng::stream(seed, &[1]);
    let p = pulse(d, polarity);
    let steps: Vec<f64> = (0..PULSES)
        .map(|_| {
            let mut s = cell.clone();
            s.w = w;
            d.apply_pulse(&mut s, &p, &mut rng);
            s.w - w
        })
        .collect();
    mean_and_error(&steps)
}

fn mean_and_error(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

fn assert_close(what: &str, (mean, error): (f64, f64), expected: f64) {
    assert!(
        (mean - expected).abs() <= SIGMAS * error + 1e-15,
        "{what}: measured {mean} +- {error}, formula {expected}"
    );
}

fn fabricate_one(d: &PulsedDevice, seed: u64) -> PulsedState {
    d.fabricate(&mut xbar::rng::stream(seed, &[0]))
}

/// Soft bounds: the mean up step at weight w is dw_min (1 - w / w_max), the mean down step
/// dw_min (1 - w / w_min) (aihwkit's SoftBoundsDevice).
#[test]
fn soft_bounds_mean_step_falls_linearly_to_each_bound() {
    for mult_noise in [true, false] {
        let d = device(
            params(),
            StepFamily::SoftBounds(SoftBoundsParams { mult_noise }),
        );
        let cell = fabricate_one(&d, 1);
        for w in [-0.8, -0.3, 0.0, 0.4, 0.9] {
            let up = measured_step(&d, &cell, Polarity::Set, w, 2);
            assert_close("soft bounds up", up, 0.01 * (1.0 - w / 1.0));
            let down = measured_step(&d, &cell, Polarity::Reset, w, 3);
            assert_close("soft bounds down", down, -0.01 * (1.0 - w / -1.0));
        }
    }
}

/// Linear step (mean bound reference): the mean up step at w is dw_min (1 - γ w / w_max),
/// the mean down step dw_min (1 - γ w / w_min).
#[test]
fn linear_step_mean_step_follows_its_slope() {
    let gamma = 0.4;
    let d = device(params(), linear(gamma, true));
    let cell = fabricate_one(&d, 4);
    for w in [-0.7, 0.0, 0.6] {
        let up = measured_step(&d, &cell, Polarity::Set, w, 5);
        assert_close("linear up", up, 0.01 * (1.0 - gamma * w));
        let down = measured_step(&d, &cell, Polarity::Reset, w, 6);
        assert_close("linear down", down, -0.01 * (1.0 + gamma * w));
    }
}

/// Constant step with asymmetry `up_down = β`: aihwkit's C++ code shortens the down step to
/// dw_min (1 - β) for β > 0 and the up step to dw_min (1 + β) for β < 0; the other
/// direction keeps dw_min, wherever the weight is.
#[test]
fn constant_step_with_asymmetry_shortens_one_direction() {
    for (beta, up_expected, down_expected) in [(0.2, 0.01, 0.008), (-0.2, 0.008, 0.01)] {
        let mut p = params();
        p.up_down = beta;
        let d = device(p, StepFamily::ConstantStep);
        let cell = fabricate_one(&d, 7);
        for w in [-0.5, 0.5] {
            let up = measured_step(&d, &cell, Polarity::Set, w, 8);
            assert_close("constant up", up, up_expected);
            let down = measured_step(&d, &cell, Polarity::Reset, w, 9);
            assert_close("constant down", down, -down_expected);
        }
    }
}

/// Exponential step: with z = 2 a w / (b_max - b_min) + b the mean up step is
/// Δ⁺ = dw_min max(1 - A_up e^{γ_up z}, 0), the down step Δ⁻ = dw_min max(1 - A_down
/// e^{-γ_down z}, 0). The step's standard deviation is σ Δ (multiplicative noise), or
/// σ (Δ + dw_min_std_add + dw_min_std_slope |w|) with aihwkit's state-dependent noise.
#[test]
fn exp_step_mean_step_follows_the_exponential() {
    let (a_up, a_down, gamma_up, gamma_down, a, b) = (0.2, 0.3, 1.5, 2.0, 0.8, 0.1);
    for (add, slope) in [(0.0, 0.0), (0.01, 0.02)] {
        let family = StepFamily::ExpStep(ExpStepParams {
            a_up,
            a_down,
            gamma_up,
            gamma_down,
            a,
            b,
            dw_min_std_add: add,
            dw_min_std_slope: slope,
        });
        let d = device(params(), family);
        let cell = fabricate_one(&d, 10);
        for w in [-0.9f64, -0.2, 0.5] {
            let z = 2.0 * a * w / 2.0 + b;
            let up_formula = 0.01 * (1.0 - a_up * (gamma_up * z).exp()).max(0.0);
            let down_formula = 0.01 * (1.0 - a_down * (-gamma_down * z).exp()).max(0.0);
            for (polarity, formula, sign, seed) in [
                (Polarity::Set, up_formula, 1.0, 11),
                (Polarity::Reset, down_formula, -1.0, 12),
            ] {
                let (mean, error) = measured_step(&d, &cell, polarity, w, seed);
                assert_close("exp step", (mean, error), sign * formula);
                let sd = error * (PULSES as f64).sqrt();
                let sd_formula = C2C * (formula + add + slope * w.abs());
                assert!(
                    (sd - sd_formula).abs() <= SIGMAS * sd_formula / (2.0 * PULSES as f64).sqrt(),
                    "exp step sd at {w}: {sd} vs {sd_formula}"
                );
            }
        }
    }
}

/// Power step: with ω = (b_max - w) / (b_max - b_min) the mean up step is dw_min ω^γ, the
/// mean down step dw_min (1 - ω)^γ.
#[test]
fn pow_step_mean_step_is_a_power_of_the_distance_to_the_bound() {
    let gamma = 2.0;
    let family = StepFamily::PowStep(PowStepParams {
        pow_gamma: gamma,
        pow_gamma_dtod: 0.0,
        pow_up_down: 0.0,
        pow_up_down_dtod: 0.0,
    });
    let d = device(params(), family);
    let cell = fabricate_one(&d, 13);
    for w in [-0.5, 0.25] {
        let omega: f64 = (1.0 - w) / 2.0;
        let up = measured_step(&d, &cell, Polarity::Set, w, 14);
        assert_close("pow up", up, 0.01 * omega.powf(gamma));
        let down = measured_step(&d, &cell, Polarity::Reset, w, 15);
        assert_close("pow down", down, -0.01 * (1.0 - omega).powf(gamma));
    }
}

/// Piecewise step: nodes spread evenly over [b_min, b_max]; at a weight between two nodes
/// the mean step is dw_min times the linear interpolation of their values.
#[test]
fn piecewise_step_interpolates_its_table() {
    let family = StepFamily::PiecewiseStep(PiecewiseStepParams {
        piecewise_up: vec![2.0, 1.0, 0.5],
        piecewise_down: vec![0.5, 1.0, 3.0],
    });
    let d = device(params(), family);
    let cell = fabricate_one(&d, 16);
    // Nodes at w = -1, 0, 1: w = -0.5 is halfway between the first two, w = 0.75 three
    // quarters of the way between the last two.
    for (w, up_factor, down_factor) in [(-0.5, 1.5, 0.75), (0.75, 0.625, 2.5), (0.0, 1.0, 1.0)] {
        let up = measured_step(&d, &cell, Polarity::Set, w, 17);
        assert_close("piecewise up", up, 0.01 * up_factor);
        let down = measured_step(&d, &cell, Polarity::Reset, w, 18);
        assert_close("piecewise down", down, -0.01 * down_factor);
    }
}

/// Device-to-device spread: over many devices, the bounds average to the preset's w_min and
/// w_max with standard deviations w_dtod |w|, and the step scales average to dw_min with
/// standard deviation dw_min_dtod dw_min (Gaussian spreads, as aihwkit draws them).
#[test]
fn device_spreads_average_to_the_parameters() {
    let mut p = params();
    p.w_min = -0.8;
    p.w_max = 1.2;
    p.w_min_dtod = 0.2;
    p.w_max_dtod = 0.1;
    p.dw_min_dtod = 0.3;
    let d = device(p.clone(), StepFamily::ConstantStep);
    let mut rng = xbar::rng::stream(19, &[0]);
    let cells: Vec<PulsedState> = (0..DEVICES).map(|_| d.fabricate(&mut rng)).collect();
    let n = DEVICES as f64;
    let checks = [
        (
            "b_min",
            cells.iter().map(|c| c.b_min).collect::<Vec<_>>(),
            p.w_min,
            0.2 * 0.8,
        ),
        (
            "b_max",
            cells.iter().map(|c| c.b_max).collect(),
            p.w_max,
            0.1 * 1.2,
        ),
        (
            "s_up",
            cells.iter().map(|c| c.scale_up).collect(),
            p.dw_min,
            0.3 * p.dw_min,
        ),
        (
            "s_down",
            cells.iter().map(|c| c.scale_down).collect(),
            p.dw_min,
            0.3 * p.dw_min,
        ),
    ];
    for (what, values, mean, sd) in checks {
        let (m, e) = mean_and_error(&values);
        assert_close(what, (m, e), mean);
        let measured_sd = e * n.sqrt();
        // The standard error of a Gaussian standard deviation is sd / sqrt(2 n).
        assert!(
            (measured_sd - sd).abs() < SIGMAS * sd / (2.0 * n).sqrt(),
            "{what}: sd {measured_sd} vs {sd}"
        );
    }
}

/// Pulse response of every family: from the lower bound, potentiation pulses take the mean
/// conductance to the upper end of the window, then as many depression pulses take it
/// back to the lower end (saturation at the bounds, not beyond).
#[test]
fn every_family_saturates_at_its_bounds_under_potentiation_then_depression() {
    const CELLS: usize = 50;
    /// Pulses per phase, in nominal window crossings (slow soft-bound tails included).
    const CROSSINGS: f64 = 6.0;
    /// Allowed gap between the mean conductance and the window end, fraction of the window.
    const GAP: f64 = 0.02;
    for family in every_family() {
        let name = family.name();
        let d = device(params(), family);
        let pulses = (CROSSINGS * f64::from(d.pulses_across_window())) as usize;
        let mut rng = xbar::rng::stream(20, &[0]);
        let mut cells: Vec<PulsedState> = (0..CELLS).map(|_| d.fabricate(&mut rng)).collect();
        let (g_lo, g_hi) = d.nominal_window();
        let span = g_hi - g_lo;
        let mean_g = |cells: &[PulsedState]| {
            cells.iter().map(|c| d.conductance_at(c, 0.0)).sum::<f64>() / CELLS as f64
        };
        assert!(
            (mean_g(&cells) - g_lo).abs() < 1e-12,
            "{name}: starts at g_min"
        );
        for (polarity, end) in [(Polarity::Set, g_hi), (Polarity::Reset, g_lo)] {
            let p = pulse(&d, polarity);
            for cell in cells.iter_mut() {
                for _ in 0..pulses {
                    d.apply_pulse(cell, &p, &mut rng);
                }
                let g = d.conductance_at(cell, 0.0);
                assert!(
                    g >= g_lo - 1e-12 && g <= g_hi + 1e-12,
                    "{name}: {g} outside"
                );
            }
            let g = mean_g(&cells);
            assert!(
                (g - end).abs() < GAP * span,
                "{name} {polarity:?}: mean {g} not within {GAP} of the window from {end}"
            );
        }
    }
}

/// Every new preset loads, is a pulsed device of the family its file names, and has at
/// least a hundred nominal steps across its window.
#[test]
fn every_new_preset_loads_as_its_family() {
    for (name, family) in NEW_PRESETS.into_iter().zip([
        "exp_step",
        "soft_bounds",
        "linear_step",
        "linear_step",
        "linear_step",
        "constant_step",
        "constant_step",
        "exp_step",
    ]) {
        let device = preset::load(name, &toml::Table::new()).unwrap();
        assert_eq!(device.model_name(), family, "{name}");
        let AnyDevice::Pulsed(d) = &device else {
            panic!("{name} is not a pulsed device");
        };
        assert!(d.pulses_across_window() >= 100, "{name}");
    }
}

/// Every family, and every new preset, works on a crossbar tile: programmed weights are
/// read back by a forward read close to the exact product.
#[test]
fn every_family_and_preset_programs_and_reads_on_a_tile() {
    let (n_in, n_out) = (8, 6);
    let w: Vec<f64> = (0..n_in * n_out)
        .map(|k| 0.8 * (k as f64 * 0.37).sin())
        .collect();
    let x: Vec<f32> = (0..n_in).map(|i| 0.5 - 0.1 * i as f32).collect();
    let exact: Vec<f64> = (0..n_out)
        .map(|j| (0..n_in).map(|i| w[j * n_in + i] * f64::from(x[i])).sum())
        .collect();
    let scale = exact.iter().fold(0.0f64, |m, y| m.max(y.abs()));
    let mut devices: Vec<(String, AnyDevice)> = every_family()
        .into_iter()
        .map(|f| (f.name().to_string(), AnyDevice::Pulsed(device(params(), f))))
        .collect();
    for name in NEW_PRESETS {
        devices.push((
            name.to_string(),
            preset::load(name, &toml::Table::new()).unwrap(),
        ));
    }
    for (name, dev) in devices {
        let mut tile = Tile::new(dev, n_in, n_out, TileConfig::ideal(), 21, 0).unwrap();
        tile.program(&w).unwrap();
        let y = tile.forward(&x).unwrap();
        let worst = y
            .iter()
            .zip(&exact)
            .map(|(&a, b)| (f64::from(a) - b).abs())
            .fold(0.0, f64::max);
        // Device-to-device bounds (up to 30 %) and write noise (up to 5 % of the window)
        // perturb single weights; the products stay within half of the largest output.
        assert!(
            worst < 0.5 * scale,
            "{name}: worst error {worst} of {scale}"
        );
    }
}

// ---- validation --------------------------------------------------------------------------

/// The built-in text of `name` with the `[params.FIELD]` value replaced by `value`.
fn with_value(name: &str, field: &str, value: &str) -> String {
    let text = preset::BUILTIN.iter().find(|(n, _)| *n == name).unwrap().1;
    let header = format!("[params.{field}]\nvalue = ");
    let start = text.find(&header).unwrap() + header.len();
    let end = start + text[start..].find('\n').unwrap();
    format!("{}{value}{}", &text[..start], &text[end..])
}

fn build_error(text: &str) -> String {
    let err = preset::parse(text, "bad.toml")
        .and_then(|p| p.build(&toml::Table::new()))
        .unwrap_err();
    format!("{err:#}")
}

/// Crossing bounds, a zero step, a negative spread, a missing family parameter, a bad step
/// table and a switch given as a number are refused with the file and the field.
#[test]
fn bad_pulsed_parameters_are_refused_by_name() {
    let cases = [
        (
            with_value("gokmen_vlasov", "w_max", "-2.0"),
            "params.w_max: must be > w_min",
        ),
        (
            with_value("gokmen_vlasov", "dw_min", "0.0"),
            "params.dw_min: must be > 0",
        ),
        (
            with_value("reram_sb", "w_max_dtod", "-0.1"),
            "params.w_max_dtod: must be >= 0",
        ),
        (
            with_value("ecram", "gamma_up_dtod", "-0.1"),
            "params.gamma_up_dtod: must be >= 0",
        ),
        (
            with_value("reram_es", "up_down", "1.5"),
            "params.up_down: must be within (-1, 1)",
        ),
        (
            with_value("gokmen_vlasov", "w_min", "0.5"),
            "must contain 0",
        ),
        (with_value("ecram", "mult_noise", "1"), "mult_noise"),
    ];
    for (text, expected) in cases {
        let err = build_error(&text);
        assert!(err.contains("bad.toml") && err.contains(expected), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let missing = preset::BUILTIN
        .iter()
        .find(|(n, _)| *n == "ecram")
        .unwrap()
        .1
        .replace("[params.gamma_down]", "[params.gamma_dawn]");
    let err = build_error(&missing);
    assert!(err.contains("gamma_down"), "{err}");
    let table = |up: &str, down: &str| {
        let mut o = toml::Table::new();
        o.insert(
            "piecewise_up".into(),
            toml::from_str::<toml::Table>(&format!("v = {up}")).unwrap()["v"].clone(),
        );
        o.insert(
            "piecewise_down".into(),
            toml::from_str::<toml::Table>(&format!("v = {down}")).unwrap()["v"].clone(),
        );
        o
    };
    let piecewise = piecewise_preset();
    for (up, down, expected) in [
        (
            "[1.0, 0.5]",
            "[1.0]",
            "params.piecewise_down: must have as many nodes",
        ),
        (
            "[1.0, -0.5]",
            "[1.0, 1.0]",
            "params.piecewise_up[1]: must be >= 0",
        ),
        (
            "[0.0, 0.0]",
            "[1.0, 1.0]",
            "params.piecewise_up: needs at least one node",
        ),
        ("[]", "[]", "params.piecewise_up: needs at least one node"),
    ] {
        let err = format!(
            "{:#}",
            preset::parse(&piecewise, "table.toml")
                .and_then(|p| p.build(&table(up, down)))
                .unwrap_err()
        );
        assert!(
            err.contains("table.toml") && err.contains(expected),
            "{err}"
        );
    }
}

/// A user's piecewise-step preset: the Gokmen-Vlasov file with a measured table.
fn piecewise_preset() -> String {
    let text = preset::BUILTIN
        .iter()
        .find(|(n, _)| *n == "gokmen_vlasov")
        .unwrap()
        .1
        .replace("model = \"constant_step\"", "model = \"piecewise_step\"");
    format!(
        "{text}\n[params.piecewise_up]\nvalue = [1.0, 0.8, 0.5]\nunit = \"1 (units of dw_min)\"\n\
         source = \"test table\"\n\n[params.piecewise_down]\nvalue = [0.5, 0.8, 1.0]\n\
         unit = \"1 (units of dw_min)\"\nsource = \"test table\"\n"
    )
}

/// A user preset file of the piecewise family loads by path and overrides its table.
#[test]
fn a_piecewise_preset_file_loads_and_its_table_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("measured.toml");
    std::fs::write(&path, piecewise_preset()).unwrap();
    let device = preset::load(path.to_str().unwrap(), &toml::Table::new()).unwrap();
    assert_eq!(device.model_name(), "piecewise_step");
    let overrides = preset::parse_overrides(&["piecewise_up=[2.0, 1.0, 0.0]"]).unwrap();
    let AnyDevice::Pulsed(d) = preset::load(path.to_str().unwrap(), &overrides).unwrap() else {
        panic!("not a pulsed device");
    };
    let StepFamily::PiecewiseStep(table) = &d.family else {
        panic!("not piecewise");
    };
    assert_eq!(table.piecewise_up, [2.0, 1.0, 0.0]);
}

/// Write noise (aihwkit's `write_noise_std`, in units of dw_min): reads see the hidden weight
/// plus a Gaussian of standard deviation write_noise_std dw_min, redrawn at every write,
/// while the hidden weight moves by the noise-free family's steps.
#[test]
fn write_noise_perturbs_what_reads_see_but_not_the_hidden_weight() {
    const WRITE_NOISE: f64 = 5.0;
    let mut p = params();
    p.write_noise_std = WRITE_NOISE;
    p.dw_min_std = 0.0;
    let d = device(p, StepFamily::ConstantStep);
    let mut rng = xbar::rng::stream(22, &[0]);
    let cell = d.fabricate(&mut rng);
    let set = pulse(&d, Polarity::Set);
    let seen: Vec<f64> = (0..PULSES)
        .map(|_| {
            let mut s = cell.clone();
            s.w = 0.0;
            d.apply_pulse(&mut s, &set, &mut rng);
            assert_eq!(s.w, 0.01, "the hidden weight takes the noise-free step");
            s.w_seen
        })
        .collect();
    let (mean, error) = mean_and_error(&seen);
    assert_close("seen weight", (mean, error), 0.01);
    let sd = error * (PULSES as f64).sqrt();
    let expected = WRITE_NOISE * 0.01;
    assert!(
        (sd - expected).abs() < SIGMAS * expected / (2.0 * PULSES as f64).sqrt(),
        "write noise sd {sd} vs {expected}"
    );
}

/// The shared read blocks: power-law drift G(t) = G (t/t0)^-nu after t0, read noise of
/// standard deviation read_noise_rel G(t), and stuck cells at their bounds that pulses do
/// not move.
#[test]
fn drift_read_noise_and_stuck_cells_follow_the_shared_models() {
    let (nu, t0_s, rel) = (0.05, 1.0, 0.02);
    let mut p = params();
    p.drift_nu = nu;
    p.drift_t0_s = t0_s;
    p.read_noise_rel = rel;
    let d = device(p, StepFamily::ConstantStep);
    assert!(AnyDevice::Pulsed(d.clone()).drifts());
    let mut rng = xbar::rng::stream(23, &[0]);
    let mut cell = d.fabricate(&mut rng);
    d.program(&mut cell, 22e-6, &mut rng);
    let g0 = d.conductance_at(&cell, 0.0);
    assert!((g0 - 22e-6).abs() < 1e-15, "{g0}");
    assert_eq!(
        d.conductance_at(&cell, 0.5 * t0_s),
        g0,
        "no drift before t0"
    );
    let t_s = 1e4;
    let g_t = d.conductance_at(&cell, t_s);
    assert!((g_t - g0 * (t_s / t0_s).powf(-nu)).abs() < 1e-18, "{g_t}");
    assert!((d.read_noise_sigma(&cell, t_s) - rel * g_t).abs() < 1e-21);
    for (stuck, g_end) in [(StuckAt::Lrs, 25e-6), (StuckAt::Hrs, 20e-6)] {
        d.set_stuck(&mut cell, Some(stuck));
        for polarity in [Polarity::Set, Polarity::Reset] {
            let report = d.apply_pulse(&mut cell, &pulse(&d, polarity), &mut rng);
            assert!(!report.switched);
        }
        assert!((d.conductance_at(&cell, t_s) - g_end).abs() < 1e-15);
    }
}

/// A cell whose spread lower bound would lie below 0 S is floored at the weight of 0 S, so
/// no conductance is ever negative.
#[test]
fn spread_bounds_never_give_a_negative_conductance() {
    let mut p = params();
    p.g_min_s = 1e-6;
    p.w_min_dtod = 1.0;
    let d = device(p, StepFamily::ConstantStep);
    let mut rng = xbar::rng::stream(24, &[0]);
    let reset = pulse(&d, Polarity::Reset);
    let mut floored = 0;
    for _ in 0..1000 {
        let mut cell = d.fabricate(&mut rng);
        let (g_lo, _) = d.g_window(&cell);
        assert!(g_lo >= 0.0);
        floored += usize::from(g_lo < 1e-15);
        for _ in 0..10 {
            d.apply_pulse(&mut cell, &reset, &mut rng);
        }
        assert!(d.conductance_at(&cell, 0.0) >= 0.0);
    }
    assert!(floored > 0, "the test should reach the floor");
}

/// The variability scale multiplies the pulsed spreads and noises (0 = a noise-free device
/// whose cells are all nominal).
#[test]
fn variability_scale_zero_gives_nominal_pulsed_cells() {
    let AnyDevice::Pulsed(d) = preset::load_scaled("reram_es", &toml::Table::new(), 0.0).unwrap()
    else {
        panic!("reram_es is pulsed");
    };
    assert_eq!(d.params.dw_min_std, 0.0);
    assert_eq!(d.params.write_noise_std, 0.0);
    let cell = fabricate_one(&d, 25);
    assert_eq!((cell.b_min, cell.b_max), (d.params.w_min, d.params.w_max));
    // ReRamESPresetDevice's up_down = 0.259359 shortens the down step.
    assert!((cell.scale_up - d.params.dw_min).abs() < 1e-18);
    assert!((cell.scale_down - (1.0 - 0.259_359) * d.params.dw_min).abs() < 1e-15);
}

/// A tile scales its pulse trains by the step the pulsed device declares, dw_min mapped to
/// siemens (as aihwkit's pulsed update scales by dw_min), not by the mean |ΔG| of noisy
/// probe pulses: with the weight range w_max = 1 spanning the nominal window, one pulse is
/// dw_min / (w_max - w_min) of weight, however large the cycle-to-cycle and write noise.
#[test]
fn a_tile_scales_pulse_trains_by_the_declared_step() {
    for name in NEW_PRESETS {
        let AnyDevice::Pulsed(d) = preset::load(name, &toml::Table::new()).unwrap() else {
            panic!("{name} is pulsed");
        };
        let expected = d.params.dw_min / (d.params.w_max - d.params.w_min);
        let mut tile = Tile::new(d, 3, 2, TileConfig::ideal(), 26, 0).unwrap();
        tile.program_with_scale(&[0.0; 6], 1.0).unwrap();
        let step = tile.weight_step().unwrap();
        assert!(
            (step - expected).abs() < 1e-12 * expected,
            "{name}: {step} vs {expected}"
        );
    }
}

/// aihwkit's PCM training preset (`aihwkit_pcm` = `PCMPresetDevice`, an `ExpStepDevice`
/// with state-dependent "complex" noise) against aihwkit's update of one pulse,
/// `update_once_complex_noise` in `src/rpucuda/rpu_expstep_device.cpp` (aihwkit@4545f11):
/// with `z = 2 a w / (b_max - b_min) + b`, the noise-free steps
/// `Δ⁺ = s_up max(1 - A_up e^{γ_up z}, 0)` and `Δ⁻ = s_down max(1 - A_down e^{-γ_down z}, 0)`,
/// and `w ← w ± Δ + σ (Δ + dw_min_std_add + dw_min_std_slope |w|) ξ` with `σ = dw_min_std`,
/// clipped to `[b_min, b_max]`. The cell is one-sided: `w_min = 0` without spread, so every
/// cell's window starts at 0 (weight and siemens) and a new cell sits there. The weights
/// tested are at least 3.5 standard deviations of a step away from the bounds, so the
/// clipping does not bias the moments (20,000 pulses each, tolerances in standard errors).
#[test]
fn aihwkit_pcm_preset_steps_follow_aihwkits_exp_step_update() {
    let AnyDevice::Pulsed(d) = preset::load("aihwkit_pcm", &toml::Table::new()).unwrap() else {
        panic!("aihwkit_pcm is a pulsed device");
    };
    let StepFamily::ExpStep(f) = d.family.clone() else {
        panic!("aihwkit_pcm is an exp_step device");
    };
    // The values of PCMPresetDevice (aihwkit@4545f11 src/aihwkit/simulator/presets/devices.py).
    assert_eq!(
        (f.a_up, f.a_down, f.gamma_up, f.gamma_down, f.a, f.b),
        (-27.235, -2.235, 2.5, 2.5, -1.0, 0.0)
    );
    assert_eq!((f.dw_min_std_add, f.dw_min_std_slope), (0.042, 0.108));
    let p = &d.params;
    assert_eq!(
        (p.w_min, p.w_max, p.dw_min, p.dw_min_std),
        (0.0, 2.0, 0.01, 0.6)
    );
    for seed in 0..200 {
        let cell = fabricate_one(&d, 100 + seed);
        assert_eq!(cell.b_min, 0.0, "one-sided cell");
        assert_eq!(cell.w, 0.0, "a new cell sits at its lower bound");
        assert_eq!(d.conductance_at(&cell, 0.0), 0.0);
    }
    let cell = fabricate_one(&d, 40);
    let range = cell.b_max - cell.b_min;
    let sigma = p.dw_min_std;
    for (w, polarity, seed) in [
        (0.8, Polarity::Set, 41),
        (1.4, Polarity::Set, 42),
        (0.5, Polarity::Reset, 43),
        (0.7, Polarity::Reset, 44),
    ] {
        let z = 2.0 * f.a * w / range + f.b;
        let (formula, sign) = match polarity {
            Polarity::Set => (
                cell.scale_up * (1.0 - f.a_up * (f.gamma_up * z).exp()).max(0.0),
                1.0,
            ),
            Polarity::Reset => (
                cell.scale_down * (1.0 - f.a_down * (-f.gamma_down * z).exp()).max(0.0),
                -1.0,
            ),
        };
        let sd_formula = sigma * (formula + f.dw_min_std_add + f.dw_min_std_slope * w);
        let room = if sign > 0.0 {
            cell.b_max - w
        } else {
            w - cell.b_min
        };
        assert!(
            room - formula >= 3.5 * sd_formula,
            "test point {w} too close to a bound"
        );
        let (mean, error) = measured_step(&d, &cell, polarity, w, seed);
        assert_close("aihwkit_pcm step", (mean, error), sign * formula);
        let sd = error * (PULSES as f64).sqrt();
        assert!(
            (sd - sd_formula).abs() <= SIGMAS * sd_formula / (2.0 * PULSES as f64).sqrt(),
            "aihwkit_pcm step sd at {w}: {sd} vs {sd_formula}"
        );
    }
}
