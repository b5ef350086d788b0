//! PCM statistical model (Nandakumar et al., ICECS 2019; Joshi et al., Nat. Commun. 2020):
//! drift exponent, programming noise and 1/f read noise against their published formulas.

use xbar::device::pcm::Pcm;
use xbar::device::{AnyDevice, Device, Polarity, preset};

const G_MAX_S: f64 = 25e-6;

fn pcm(overrides: &[(&str, f64)]) -> Pcm {
    let mut table = toml::Table::new();
    for (name, v) in overrides {
        table.insert((*name).into(), toml::Value::Float(*v));
    }
    match preset::load("pcm_gst", &table).unwrap() {
        AnyDevice::Pcm(p) => p,
        other => panic!("pcm_gst is not a PCM: {other:?}"),
    }
}

/// Published mean drift exponent mu_nu = clip(-0.0155 ln g + 0.0244, 0.049, 0.1).
fn published_mu_nu(g: f64) -> f64 {
    (-0.0155 * g.ln() + 0.0244).clamp(0.049, 0.1)
}

/// Published programming noise sigma = 0.26348 + 1.9650 g - 1.1731 g^2 (uS).
fn published_sigma_prog_s(g: f64) -> f64 {
    (0.26348 + 1.9650 * g - 1.1731 * g * g) * 1e-6
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

#[test]
fn drift_exponent_fitted_from_reads_matches_the_published_mean() {
    // G(t) = G_prog (t/t0)^-nu: the slope of ln G against ln t after t0 is -nu. Averaged over
    // 4000 devices it must match the published mean mu_nu(g) within 5 %. Programming noise
    // is switched off so that no cell is programmed to exactly 0 S (ln 0).
    let device = pcm(&[("prog_noise_scale", 0.0)]);
    let times: Vec<f64> = (0..6).map(|k| 20.0 * 10f64.powi(k)).collect();
    for g in [0.1, 0.5, 1.0] {
        let mut fitted = Vec::new();
        for d in 0..4000u64 {
            let mut rng = xbar::rng::stream(11, &[(g * 10.0) as u64, d]);
            let mut state = device.fabricate(&mut rng);
            device.program(&mut state, g * G_MAX_S, &mut rng);
            fitted.push(log_log_slope(&times, |t| device.conductance_at(&state, t)));
        }
        let (nu_mean, _) = mean_std(&fitted);
        let mu = published_mu_nu(g);
        assert!(
            (-nu_mean / mu - 1.0).abs() < 0.05,
            "g = {g}: fitted nu {} vs mu {mu}",
            -nu_mean
        );
    }
}

/// Least-squares slope of ln f(t) against ln t.
fn log_log_slope(times: &[f64], f: impl Fn(f64) -> f64) -> f64 {
    let xs: Vec<f64> = times.iter().map(|t| t.ln()).collect();
    let ys: Vec<f64> = times.iter().map(|&t| f(t).ln()).collect();
    let n = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    sxy / sxx
}

#[test]
fn there_is_no_drift_before_t0() {
    let device = pcm(&[]);
    let mut rng = xbar::rng::stream(5, &[]);
    let mut state = device.fabricate(&mut rng);
    device.program(&mut state, 10e-6, &mut rng);
    let g0 = device.conductance_at(&state, 0.0);
    assert_eq!(device.conductance_at(&state, 19.9), g0);
    assert!(device.conductance_at(&state, 200.0) < g0);
}

#[test]
fn programming_noise_std_matches_its_formula() {
    // G_prog = G_target + N(0, sigma_prog(g)); with 20,000 cells the sample standard deviation
    // has a relative standard error of 0.5 %, so 3 % is a 6-sigma tolerance.
    let device = pcm(&[]);
    for g in [0.2, 0.5, 0.8] {
        let target = g * G_MAX_S;
        let values: Vec<f64> = (0..20_000u64)
            .map(|d| {
                let mut rng = xbar::rng::stream(21, &[(g * 10.0) as u64, d]);
                let mut state = device.fabricate(&mut rng);
                device.program(&mut state, target, &mut rng);
                device.conductance_at(&state, 0.0)
            })
            .collect();
        let (mean, std) = mean_std(&values);
        let sigma = published_sigma_prog_s(g);
        assert!((device.programming_sigma_s(target) / sigma - 1.0).abs() < 1e-9);
        assert!(
            (std / sigma - 1.0).abs() < 0.03,
            "g = {g}: std {std} vs {sigma}"
        );
        assert!(
            (mean - target).abs() < 5.0 * sigma / (values.len() as f64).sqrt(),
            "unbiased"
        );
    }
}

#[test]
fn read_noise_std_matches_the_1_over_f_formula() {
    // sigma_read = G(t) Q_s sqrt(ln((t + t_read) / (2 t_read))), Q_s = min(0.0088 / g^0.65, 0.2).
    let device = pcm(&[]);
    let mut rng = xbar::rng::stream(31, &[]);
    let mut state = device.fabricate(&mut rng);
    let g = 0.3;
    device.program(&mut state, g * G_MAX_S, &mut rng);
    for t in [1.0, 1e4] {
        let reads: Vec<f64> = (0..20_000)
            .map(|_| device.read(&mut state, t, &mut rng))
            .collect();
        let (mean, std) = mean_std(&reads);
        let q_s = (0.0088 / g.powf(0.65)).min(0.2);
        let expected = device.conductance_at(&state, t) * q_s * ((t + 250e-9) / 500e-9).ln().sqrt();
        assert!(
            (std / expected - 1.0).abs() < 0.03,
            "t = {t}: std {std} vs {expected}"
        );
        assert!((mean / device.conductance_at(&state, t) - 1.0).abs() < 0.01);
    }
}

#[test]
fn set_is_gradual_and_saturating_and_reset_is_abrupt() {
    // Crystallisation: mean increments shrink as G approaches saturation; RESET melts back
    // to the amorphous level in one pulse.
    let device = pcm(&[("d2d_g_max_sigma", 0.0)]);
    let set = device.nominal_pulse(Polarity::Set);
    let reset = device.nominal_pulse(Polarity::Reset);
    let (n_dev, n_pulses) = (500, 80);
    let mut mean = vec![0.0; n_pulses + 1];
    let mut after_reset = Vec::new();
    for d in 0..n_dev {
        let mut rng = xbar::rng::stream(41, &[d]);
        let mut state = device.fabricate(&mut rng);
        mean[0] += device.conductance_at(&state, 0.0) / n_dev as f64;
        for m in mean.iter_mut().skip(1) {
            device.apply_pulse(&mut state, &set, &mut rng);
            *m += device.conductance_at(&state, 0.0) / n_dev as f64;
        }
        device.apply_pulse(&mut state, &reset, &mut rng);
        after_reset.push(device.conductance_at(&state, 0.0));
    }
    let first = mean[5] - mean[0];
    let last = mean[n_pulses] - mean[n_pulses - 5];
    assert!(
        first > 5.0 * last,
        "increments shrink: first {first}, last {last}"
    );
    assert!(mean[n_pulses] > 0.9 * G_MAX_S && mean[n_pulses] <= G_MAX_S);
    let (reset_mean, _) = mean_std(&after_reset);
    assert!(reset_mean < 0.02 * G_MAX_S, "abrupt RESET to {reset_mean}");
    // A pulse below the threshold voltage does nothing.
    let weak = xbar::device::Pulse {
        amplitude_v: 0.5 * device.params.set_threshold_v,
        ..set
    };
    let mut rng = xbar::rng::stream(42, &[]);
    let mut state = device.fabricate(&mut rng);
    let before = state.clone();
    assert!(!device.apply_pulse(&mut state, &weak, &mut rng).switched);
    assert_eq!(state, before);
}
