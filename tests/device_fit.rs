//! `xbar fit`'s library part (`device::fit`): data simulated from a known device of every
//! step family is fitted back within stated tolerances, and bad measurement files give
//! errors that name the file and the line or field.
//!
//! Every generated data set uses a fixed seed. The tolerances are in standard errors (SE) of
//! what the fit estimates: a nominal value is a mean over `DEVICES` devices, so its SE is
//! the device-to-device spread over sqrt(DEVICES); a spread is a sample standard deviation of
//! `DEVICES` values, whose relative SE is 1 / sqrt(2 (DEVICES - 1)) = 12.7 %. Each device
//! contributes thousands of steps, so its own estimation error (about 1 % of a step scale)
//! is small against these.

use xbar::device::AnyDevice;
use xbar::device::fit::{self, FitOptions, Measurements};
use xbar::device::preset;
use xbar::device::pulsed::{
    ExpStepParams, LinearStepParams, PiecewiseStepParams, PowStepParams, PulsedDevice,
    PulsedParams, SoftBoundsParams, StepFamily, interpolate,
};
use xbar::rng::stream;

/// Devices per generated file.
const DEVICES: usize = 32;
/// Potentiation/depression cycles per device.
const CYCLES: usize = 4;
/// Pulses per half cycle: enough for every test device to cross its window.
const HALF: usize = 800;
/// Allowed deviation in standard errors.
const SIGMAS: f64 = 4.0;
/// Relative SE of a sample standard deviation of `DEVICES` values.
fn spread_rel_se() -> f64 {
    1.0 / (2.0 * (DEVICES as f64 - 1.0)).sqrt()
}

// The test devices' spreads.
const W_DTOD: f64 = 0.05;
const DW_DTOD: f64 = 0.1;
const UD_DTOD: f64 = 0.02;
const C2C: f64 = 0.3;
const UP_DOWN: f64 = 0.1;

/// Shared parameters of the test devices: window [-1, 1] on [5, 25] uS, in the gauge the fit
/// uses (so the nominal values themselves come back, not an equivalent set).
fn params() -> PulsedParams {
    PulsedParams {
        w_min_dtod: W_DTOD,
        w_max_dtod: W_DTOD,
        dw_min_dtod: DW_DTOD,
        dw_min_std: C2C,
        up_down: UP_DOWN,
        up_down_dtod: UD_DTOD,
        ..PulsedParams::noise_free((5e-6, 25e-6), (-1.0, 1.0), 0.01, (1.0, 100e-9))
    }
}

/// One test device of every family, in the conventions the fit writes.
fn every_family() -> Vec<StepFamily> {
    vec![
        StepFamily::ConstantStep,
        StepFamily::LinearStep(LinearStepParams {
            gamma_up: 0.5,
            gamma_down: 0.4,
            gamma_up_dtod: 0.05,
            gamma_down_dtod: 0.05,
            allow_increasing: false,
            mean_bound_reference: false,
            mult_noise: true,
        }),
        StepFamily::SoftBounds(SoftBoundsParams { mult_noise: false }),
        StepFamily::ExpStep(ExpStepParams {
            a_up: 0.1,
            a_down: 0.15,
            gamma_up: 2.0,
            gamma_down: 1.5,
            a: 1.0,
            b: 0.0,
            dw_min_std_add: 0.0,
            dw_min_std_slope: 0.0,
        }),
        StepFamily::PowStep(PowStepParams {
            pow_gamma: 0.5,
            pow_gamma_dtod: 0.05,
            pow_up_down: 0.2,
            pow_up_down_dtod: 0.0,
        }),
        StepFamily::PiecewiseStep(PiecewiseStepParams {
            piecewise_up: vec![1.0, 0.5, 0.25],
            piecewise_down: vec![0.25, 0.5, 0.9],
        }),
    ]
}

/// Simulated measurement of `device`: `devices` cells over `cycles` cycles of `half` up then
/// `half` down pulses, written as CSV and parsed back.
fn measure(device: &PulsedDevice, devices: usize, cycles: usize, half: usize) -> Measurements {
    let schedule = fit::cycle_schedule(cycles, half, half);
    let responses: Vec<Vec<f64>> = (0..devices as u64)
        .map(|d| fit::simulate_response(device, &schedule, &mut stream(7, &[d])))
        .collect();
    fit::parse_csv(&fit::to_csv(&schedule, &responses), "generated.csv").unwrap()
}

/// `got` within `tol` of `want`, with a message naming the quantity.
fn close(what: &str, got: f64, want: f64, tol: f64) {
    println!(
        "{what}: fitted {got:.4e}, true {want:.4e}, |diff| {:.3e}, tolerance {tol:.3e}",
        (got - want).abs()
    );
    assert!(
        (got - want).abs() <= tol,
        "{what}: fitted {got}, true {want}, tolerance {tol}"
    );
}

/// Mean step of the nominal device in siemens (invariant under the choice of weight units).
fn step_s(p: &PulsedParams) -> f64 {
    p.dw_min * (p.g_max_s - p.g_min_s) / (p.w_max - p.w_min)
}

#[test]
fn every_family_is_fitted_back_within_tolerance() {
    let sqrt_n = (DEVICES as f64).sqrt();
    for family in every_family() {
        let name = family.name();
        let truth = PulsedDevice::new(params(), family.clone());
        truth.validate().unwrap();
        let data = measure(&truth, DEVICES, CYCLES, HALF);
        let fitted = fit::fit(&data, name, &FitOptions::default()).unwrap();
        let (f, t) = (&fitted.device.params, &truth.params);
        let r = &fitted.report;
        assert_eq!(r.devices, DEVICES, "{name}");
        assert_eq!(r.readings, DEVICES * (2 * CYCLES * HALF + 1), "{name}");
        // Window: the mean of the devices' bounds, each spread by W_DTOD of its half-window
        // (10 uS): SE = 10 uS W_DTOD / sqrt(DEVICES).
        let window_se = 10e-6 * W_DTOD / sqrt_n;
        close(
            &format!("{name} g_min_s"),
            f.g_min_s,
            t.g_min_s,
            SIGMAS * window_se,
        );
        close(
            &format!("{name} g_max_s"),
            f.g_max_s,
            t.g_max_s,
            SIGMAS * window_se,
        );
        // Mean step (siemens): SE = DW_DTOD / sqrt(DEVICES) of it; for a step that falls with
        // w, the shift of w = 0 (below) adds up to W_DTOD / sqrt(2 N) of it.
        let step_se =
            ((DW_DTOD / sqrt_n).powi(2) + (W_DTOD / (2.0 * DEVICES as f64).sqrt()).powi(2)).sqrt();
        close(
            &format!("{name} step (S)"),
            step_s(f),
            step_s(t),
            SIGMAS * step_se * step_s(t),
        );
        // Asymmetry: the mean of up_down + 2 r over the devices, SE = 2 UD_DTOD / sqrt(N).
        // It also moves with the weight units: the fit puts w = 0 at the centre of the
        // devices' mean window, which lies W_DTOD / sqrt(2 N) (one SE) from the nominal centre,
        // and a shift δ of w = 0 changes up_down of a step that falls with w by up to
        // 2 δ (soft bounds with bounds at ±1: 1/b_max + 1/|b_min|); both SEs are combined.
        // The piecewise fit puts the asymmetry into its tables instead (the true tables'
        // largest nodes differ): its tables are compared below.
        if name != "piecewise_step" {
            let se = ((2.0 * UD_DTOD / sqrt_n).powi(2)
                + (2.0 * W_DTOD / (2.0 * DEVICES as f64).sqrt()).powi(2))
            .sqrt();
            close(
                &format!("{name} up_down"),
                f.up_down,
                t.up_down,
                SIGMAS * se,
            );
            close(
                &format!("{name} up_down_dtod"),
                f.up_down_dtod,
                UD_DTOD,
                SIGMAS * spread_rel_se() * UD_DTOD,
            );
        }
        // Spreads: SIGMAS relative SEs of a sample standard deviation.
        let spread_tol = |v: f64| SIGMAS * spread_rel_se() * v;
        close(
            &format!("{name} dw_min_dtod"),
            f.dw_min_dtod,
            DW_DTOD,
            spread_tol(DW_DTOD),
        );
        close(
            &format!("{name} w_max_dtod"),
            f.w_max_dtod,
            W_DTOD,
            spread_tol(W_DTOD),
        );
        close(
            &format!("{name} w_min_dtod"),
            f.w_min_dtod,
            W_DTOD,
            spread_tol(W_DTOD),
        );
        // Cycle-to-cycle noise: estimated from ~10^5 residual steps (SE < 0.5 %); 10 % allows
        // for the steps near the bounds that clipping truncates or leaves out.
        close(&format!("{name} dw_min_std"), f.dw_min_std, C2C, 0.1 * C2C);
        check_shape(&fitted.device.family, &family, f, t);
    }
}

/// The family's own parameters. Tolerances: linear γ is a mean over the devices (spread 0.05,
/// SE 0.009) plus each device's slope error (about 0.01 each); exponential and power shapes
/// have no or little spread, so their tolerance (5 % of the value) covers the per-device fit
/// error averaged over the devices and the clipping bias near the bounds; table nodes are
/// compared as steps in units of the true `dw_min`, to 0.03 (3 % of the largest step).
fn check_shape(fitted: &StepFamily, truth: &StepFamily, f: &PulsedParams, t: &PulsedParams) {
    let sqrt_n = (DEVICES as f64).sqrt();
    match (fitted, truth) {
        (StepFamily::ConstantStep, StepFamily::ConstantStep) => {}
        (StepFamily::LinearStep(a), StepFamily::LinearStep(b)) => {
            let tol = SIGMAS * (0.05f64.powi(2) + 0.01f64.powi(2)).sqrt() / sqrt_n;
            close("gamma_up", a.gamma_up, b.gamma_up, tol);
            close("gamma_down", a.gamma_down, b.gamma_down, tol);
            let spread = SIGMAS * spread_rel_se() * 0.05;
            close("gamma_up_dtod", a.gamma_up_dtod, 0.05, spread);
            close("gamma_down_dtod", a.gamma_down_dtod, 0.05, spread);
            assert!(
                a.mult_noise,
                "linear_step: multiplicative noise not recognised"
            );
            assert!(!a.mean_bound_reference && !a.allow_increasing);
        }
        (StepFamily::SoftBounds(a), StepFamily::SoftBounds(_)) => {
            assert!(!a.mult_noise, "soft_bounds: additive noise not recognised");
        }
        (StepFamily::ExpStep(a), StepFamily::ExpStep(b)) => {
            close("A_up", a.a_up, b.a_up, 0.05 * b.a_up);
            close("A_down", a.a_down, b.a_down, 0.05 * b.a_down);
            close("exp gamma_up", a.gamma_up, b.gamma_up, 0.05 * b.gamma_up);
            close(
                "exp gamma_down",
                a.gamma_down,
                b.gamma_down,
                0.05 * b.gamma_down,
            );
        }
        (StepFamily::PowStep(a), StepFamily::PowStep(b)) => {
            close("pow_gamma", a.pow_gamma, b.pow_gamma, 0.05 * b.pow_gamma);
            // pow_up_down: mean of the devices' exponent asymmetry; 0.03 absolute covers the
            // per-device exponent errors (about 2 % each) and the spread of pow_gamma.
            close("pow_up_down", a.pow_up_down, b.pow_up_down, 0.03);
            // The spread of the exponents: SIGMAS relative SEs of a standard deviation, plus
            // 0.01 for each device's own exponent error (about 2 % of 0.5) inflating it.
            let spread = SIGMAS * spread_rel_se() * 0.05;
            close("pow_gamma_dtod", a.pow_gamma_dtod, 0.05, spread + 0.01);
        }
        (StepFamily::PiecewiseStep(a), StepFamily::PiecewiseStep(b)) => {
            // Steps (in units of the true dw_min) at positions across the window: the fitted
            // table's nodes times its dw_min, against the truth's, with each direction's
            // asymmetry factor of aihwkit's up_down bias.
            let bias = |up_down: f64| {
                if up_down > 0.0 {
                    (1.0, 1.0 - up_down)
                } else {
                    (1.0 + up_down, 1.0)
                }
            };
            let (tu, td) = bias(t.up_down);
            let (fu, fd) = bias(f.up_down);
            let f_scale = step_s(f) / step_s(t);
            for k in 0..=20 {
                let x = k as f64 / 20.0;
                let want_up = tu * interpolate(&b.piecewise_up, x);
                let got_up = fu * f_scale * interpolate(&a.piecewise_up, x);
                let want_down = td * interpolate(&b.piecewise_down, x);
                let got_down = fd * f_scale * interpolate(&a.piecewise_down, x);
                // The mean step's own SE (DW_DTOD / sqrt(N)) scales every node; 0.03 on top.
                let tol = SIGMAS * DW_DTOD / sqrt_n + 0.03;
                close(&format!("piecewise up at {x}"), got_up, want_up, tol);
                close(&format!("piecewise down at {x}"), got_down, want_down, tol);
            }
        }
        (a, b) => panic!("fitted {} for {}", a.name(), b.name()),
    }
}

/// A built-in preset (Gokmen and Vlasov's constant-step device, large spreads) is fitted back:
/// its window and mean step in siemens and its noise.
#[test]
fn a_builtin_constant_step_preset_is_fitted_back() {
    let AnyDevice::Pulsed(truth) = preset::load("gokmen_vlasov", &toml::Table::new()).unwrap()
    else {
        panic!("gokmen_vlasov is a pulsed preset");
    };
    let t = &truth.params;
    // 1,250 nominal pulses cross the window; 4,000 per half cycle let the slow devices (step
    // spread 0.3, window spread 0.3) cross it too, so that every device shows both bounds.
    let data = measure(&truth, DEVICES, 2, 4_000);
    let fitted = fit::fit(&data, "constant_step", &FitOptions::default()).unwrap();
    let f = &fitted.device.params;
    let sqrt_n = (DEVICES as f64).sqrt();
    let half_window = 0.5 * (t.g_max_s - t.g_min_s);
    let tol = SIGMAS * t.w_max_dtod * half_window / sqrt_n;
    close("g_min_s", f.g_min_s, t.g_min_s, tol);
    close("g_max_s", f.g_max_s, t.g_max_s, tol);
    close(
        "step (S)",
        step_s(f),
        step_s(t),
        SIGMAS * t.dw_min_dtod / sqrt_n * step_s(t),
    );
    close("dw_min_std", f.dw_min_std, t.dw_min_std, 0.1 * t.dw_min_std);
    close(
        "dw_min_dtod",
        f.dw_min_dtod,
        t.dw_min_dtod,
        SIGMAS * spread_rel_se() * t.dw_min_dtod,
    );
}

/// The fitted device predicts the data: the report's residual RMS is the cycle-to-cycle noise
/// of the steps, and a file of one device has no device-to-device spread.
#[test]
fn residuals_and_a_single_device() {
    let truth = PulsedDevice::new(params(), StepFamily::ConstantStep);
    let data = measure(&truth, 1, 3, 300);
    let fitted = fit::fit(&data, "constant_step", &FitOptions::default()).unwrap();
    let p = &fitted.device.params;
    assert_eq!(p.dw_min_dtod, 0.0);
    assert_eq!(p.w_max_dtod, 0.0);
    // Residual RMS relative to dw_min = C2C x the RMS step relative to dw_min, which lies
    // between the shorter and the longer direction's step (1 - UP_DOWN and 1 for a device
    // without spread; 25 % margin for the single device's own draws).
    let rel = fitted.report.residual_rms_rel;
    assert!(
        rel > 0.75 * C2C * (1.0 - UP_DOWN) && rel < 1.25 * C2C,
        "residual RMS {rel} dw_min"
    );
    assert!(fitted.report.steps > 1000);
}

/// Every bad input is an error naming the file and the line or field, never a panic.
#[test]
fn bad_measurement_files_are_refused_with_file_and_line() {
    // One device, 20 up then 20 down pulses whose steps grow with the conductance (which no
    // soft-bounds device does). Row k is on line k + 2.
    let rows: Vec<String> = (0..=40)
        .map(|k| {
            let (polarity, j, sign, base) = if k <= 20 {
                ("up", k, 1.0, 10.0)
            } else {
                ("down", k - 20, -1.0, 50.0)
            };
            let g = base + sign * (j as f64 + 0.05 * (j * j) as f64);
            format!("d0,{k},{polarity},{g}e-6")
        })
        .collect();
    let header = "device,pulse,polarity,conductance_s";
    let file = |header: &str, rows: &[String]| format!("{header}\n{}\n", rows.join("\n"));
    let with_row = |k: usize, row: &str| {
        let mut r = rows.clone();
        r[k] = row.to_string();
        file(header, &r)
    };
    let good = file(header, &rows);
    fit::parse_csv(&good, "m.csv").expect("the reference file is good");
    let cases: Vec<(&str, String, &[&str])> = vec![
        (
            "too few points",
            file(header, &rows[..8]),
            &["m.csv", "device `d0`", "line 2", "too few points"],
        ),
        (
            "non-monotonic pulse numbers",
            with_row(7, "d0,3,up,20e-6"),
            &["m.csv", "line 9", "pulse", "non-monotonic"],
        ),
        (
            "negative conductance",
            with_row(5, "d0,5,up,-15e-6"),
            &["m.csv", "line 7", "conductance_s", "negative"],
        ),
        (
            "NaN",
            with_row(5, "d0,5,up,NaN"),
            &["m.csv", "line 7", "conductance_s", "not a finite number"],
        ),
        (
            "mixed units",
            file("device,pulse,polarity,conductance_s,conductance_us", &rows),
            &["m.csv", "line 1", "mixed units"],
        ),
        (
            "unit suffix in a value",
            with_row(5, "d0,5,up,15uS"),
            &["m.csv", "line 7", "conductance_s", "not a number"],
        ),
        (
            "siemens column holding microsiemens",
            with_row(5, "d0,5,up,15"),
            &["m.csv", "line 7", "conductance_us"],
        ),
        (
            "unknown polarity",
            with_row(5, "d0,5,sideways,15e-6"),
            &["m.csv", "line 7", "polarity"],
        ),
        (
            "missing header",
            rows.join("\n"),
            &["m.csv", "line 1", "unknown column"],
        ),
        ("empty file", String::new(), &["m.csv", "empty file"]),
        (
            "short row",
            with_row(5, "d0,5,up"),
            &["m.csv", "line 7", "3 fields"],
        ),
    ];
    for (what, text, needles) in cases {
        let err = match fit::parse_csv(&text, "m.csv") {
            Ok(_) => panic!("{what}: accepted"),
            Err(e) => format!("{e:#}"),
        };
        for needle in needles {
            assert!(
                err.contains(needle),
                "{what}: `{needle}` missing from: {err}"
            );
        }
    }
    // A byte-order mark, quoted fields and Windows line ends are read as a spreadsheet
    // writes them.
    let quoted = format!(
        "\u{feff}\"device\",\"pulse\",\"polarity\",\"conductance_s\"\r\n{}\r\n",
        rows.join("\r\n")
    );
    assert_eq!(
        fit::parse_csv(&quoted, "m.csv").unwrap(),
        fit::parse_csv(&good, "m.csv").unwrap()
    );
    // Microsiemens are accepted in their own column and scaled.
    let us = file(
        "device,pulse,polarity,conductance_us",
        &rows
            .iter()
            .map(|r| r.replace("e-6", ""))
            .collect::<Vec<_>>(),
    );
    let data = fit::parse_csv(&us, "m.csv").unwrap();
    let g5 = 10.0 + 5.0 + 0.05 * 25.0;
    assert!((data.devices[0].readings[5].g_s - g5 * 1e-6).abs() < 1e-18);
    // A family that cannot describe the data is an error naming the file and the device.
    let err = format!(
        "{:#}",
        fit::fit(&data, "soft_bounds", &FitOptions::default()).unwrap_err()
    );
    assert!(
        err.contains("m.csv") && err.contains("device `d0`"),
        "{err}"
    );
    assert!(fit::fit(&data, "no_such_family", &FitOptions::default()).is_err());
}

/// Soft-bounds data (steps linear in the conductance) fit the exponential step only in its
/// degenerate limit `A -> 1`, `γ -> 0`, whose `dw_min` means nothing: refused, naming the
/// families that fit.
#[test]
fn a_degenerate_exponential_fit_is_refused() {
    let truth = PulsedDevice::new(
        params(),
        StepFamily::SoftBounds(SoftBoundsParams { mult_noise: true }),
    );
    let data = measure(&truth, 8, 2, 400);
    let err = format!(
        "{:#}",
        fit::fit(&data, "exp_step", &FitOptions::default()).unwrap_err()
    );
    assert!(
        err.contains("generated.csv") && err.contains("degenerate") && err.contains("soft_bounds"),
        "{err}"
    );
    // The family that generated them fits.
    fit::fit(&data, "soft_bounds", &FitOptions::default()).unwrap();
}

/// Noisy readings (aihwkit's write noise, three times the step): the fit finds their noise
/// from the anticorrelation of successive steps, and its straight-line fit of the soft
/// bounds is not biased by it (a step shares the noise of its starting reading, about
/// var(noise) / var(w) = 0.03² / 0.5, a fifth of the rate `s / b`, for least squares). The
/// devices have no spread, so the rates are known to the estimation error of 32 devices x 8
/// cycles of 800 pulses each direction (residual 0.043 per step, weights spread over about
/// 0.7: 1.3 % SE); SIGMAS SEs are allowed.
#[test]
fn noisy_readings_are_fitted_as_write_noise() {
    let mut p = params();
    (p.w_min_dtod, p.w_max_dtod, p.dw_min_dtod, p.up_down_dtod) = (0.0, 0.0, 0.0, 0.0);
    p.write_noise_std = 3.0;
    let truth = PulsedDevice::new(
        p.clone(),
        StepFamily::SoftBounds(SoftBoundsParams { mult_noise: false }),
    );
    let data = measure(&truth, DEVICES, 8, HALF);
    let fitted = fit::fit(&data, "soft_bounds", &FitOptions::default()).unwrap();
    let f = &fitted.device.params;
    // The rates of the steps' fall per pulse, up (s_up / b_max) and down (s_down / |b_min|),
    // in weight units per weight unit (the same in every choice of weight units).
    let rates = |q: &PulsedParams| {
        let (bias_up, bias_down) = if q.up_down > 0.0 {
            (0.0, -q.up_down)
        } else {
            (q.up_down, 0.0)
        };
        (
            (1.0 + bias_up) * q.dw_min / q.w_max,
            (1.0 + bias_down) * q.dw_min / -q.w_min,
        )
    };
    let ((fu, fd), (tu, td)) = (rates(f), rates(&p));
    let se = 0.043 / (80.0 * 0.7) / 0.01 / (DEVICES as f64).sqrt();
    close("rate up (relative)", fu / tu, 1.0, SIGMAS * se);
    close("rate down (relative)", fd / td, 1.0, SIGMAS * se);
    // The noise of one reading in siemens: 0.03 weight units of a 10 uS half-window, from
    // about 4 x 10^5 step pairs (SE well below 1 %); 5 % allows for the reads clipped at the
    // bounds.
    let truth_noise_s = p.write_noise_std * p.dw_min * 10e-6;
    close(
        "noise of a reading (S)",
        fitted.report.reading_noise_s,
        truth_noise_s,
        0.05 * truth_noise_s,
    );
    close(
        "write_noise_std",
        f.write_noise_std,
        p.write_noise_std,
        0.05 * p.write_noise_std,
    );
    // The cycle-to-cycle noise is a small difference of two large variances here (0.3² of
    // the step against 2 x 3² of it): only its order of magnitude is determined, and without
    // the subtraction it would be about 4.3.
    assert!(
        f.dw_min_std < 2.0 * C2C,
        "dw_min_std {} should be the step noise, not the reading noise",
        f.dw_min_std
    );
}
