//! `switching`: switching probability versus pulse amplitude and width, measured on the
//! devices and compared with the model's analytic probability.

use super::*;

/// Points of each measured switching sweep.
const SWEEP_POINTS: usize = 13;
/// Points of each analytic switching curve.
const CURVE_POINTS: usize = 150;
/// Switching probabilities spanned by the sweeps.
const P_SWEEP_RANGE: (f64, f64) = (0.02, 0.98);

/// Devices prepared for switching trials of one polarity: each in the state the pulse can
/// switch (HRS/AP before a SET, LRS/P before a RESET).
struct SwitchingBench<'a> {
    device: &'a AnyDevice,
    polarity: Polarity,
    states: Vec<AnyState>,
}

impl SwitchingBench<'_> {
    /// Analytic switching probability averaged over the prepared devices.
    fn p_model(&self, amplitude_v: f64, width_s: f64) -> f64 {
        let pulse = Pulse {
            polarity: self.polarity,
            amplitude_v,
            width_s,
        };
        let total: f64 = self
            .states
            .iter()
            .map(|s| self.device.switching_probability(s, &pulse).unwrap_or(0.0))
            .sum();
        total / self.states.len() as f64
    }

    /// Amplitude at which the mean probability reaches `p` for this width (bisection).
    fn amplitude_for(&self, p: f64, width_s: f64, start_v: f64) -> Option<f64> {
        let mut hi = start_v.max(1e-3);
        while self.p_model(hi, width_s) < p {
            hi *= 2.0;
            if hi > 1e4 {
                return None;
            }
        }
        let mut lo = 0.0;
        for _ in 0..100 {
            let mid = 0.5 * (lo + hi);
            if self.p_model(mid, width_s) < p {
                lo = mid
            } else {
                hi = mid
            }
        }
        Some(0.5 * (lo + hi))
    }

    /// Width at which the mean probability reaches `p` at this amplitude (log bisection).
    fn width_for(&self, p: f64, amplitude_v: f64) -> Option<f64> {
        let (mut lo, mut hi) = (1e-15f64.ln(), 1e6f64.ln());
        if self.p_model(amplitude_v, hi.exp()) < p {
            return None;
        }
        for _ in 0..100 {
            let mid = 0.5 * (lo + hi);
            if self.p_model(amplitude_v, mid.exp()) < p {
                lo = mid
            } else {
                hi = mid
            }
        }
        Some((0.5 * (lo + hi)).exp())
    }

    /// Fraction of `trials` pulses that switch (trial k on device k mod N).
    fn measure(
        &self,
        amplitude_v: f64,
        width_s: f64,
        trials: usize,
        seed: u64,
        path: [u64; 3],
    ) -> usize {
        let pulse = Pulse {
            polarity: self.polarity,
            amplitude_v,
            width_s,
        };
        (0..trials)
            .into_par_iter()
            .filter(|&k| {
                let id = Protocol::Switching.stream_id();
                let mut rng = stream(seed, &[id, path[0], path[1], path[2], k as u64]);
                let mut state = self.states[k % self.states.len()].clone();
                self.device
                    .apply_pulse(&mut state, &pulse, &mut rng)
                    .switched
            })
            .count()
    }
}

fn prepare_bench<'a>(
    device: &'a AnyDevice,
    polarity: Polarity,
    config: &CharacterizeConfig,
) -> SwitchingBench<'a> {
    let states = (0..config.devices)
        .map(|d| {
            let id = Protocol::Switching.stream_id();
            let mut rng = stream(config.seed, &[id, polarity as u64, d as u64]);
            let mut state = device.fabricate(&mut rng);
            device.program_binary(&mut state, polarity == Polarity::Reset, &mut rng);
            state
        })
        .collect();
    SwitchingBench {
        device,
        polarity,
        states,
    }
}

/// One sweep (amplitude or width) of one polarity: measured points and the analytic curve.
struct Sweep {
    polarity: Polarity,
    /// (amplitude V, width s, switched, p_model) per measured point.
    points: Vec<(f64, f64, usize, f64)>,
    /// (x, p_model) dense curve, x = amplitude or width.
    curve: Vec<(f64, f64)>,
}

fn logspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    linspace(a.ln(), b.ln(), n)
        .into_iter()
        .map(f64::exp)
        .collect()
}

pub(super) fn switching(
    device: &AnyDevice,
    label: &str,
    config: &CharacterizeConfig,
    out: &Path,
) -> Result<Outcome> {
    if !device.has_stochastic_switching() {
        return Ok(Outcome::Skipped(match device {
            AnyDevice::Pcm(_) => {
                "PCM SET is gradual crystallisation, not a binary switching event \
                                  (see the pulses protocol)"
                    .to_string()
            }
            AnyDevice::Pulsed(_) => "a pulsed step-model device moves in steps, not by \
                                     switching events (see the pulses protocol)"
                .to_string(),
            _ => "the ideal device switches deterministically".to_string(),
        }));
    }
    let mut by_amplitude = Vec::new();
    let mut by_width = Vec::new();
    for (pi, polarity) in [Polarity::Set, Polarity::Reset].into_iter().enumerate() {
        let bench = prepare_bench(device, polarity, config);
        let nominal = device.nominal_pulse(polarity);
        let w = nominal.width_s;
        let (Some(v_lo), Some(v_hi), Some(v50)) = (
            bench.amplitude_for(P_SWEEP_RANGE.0, w, nominal.amplitude_v),
            bench.amplitude_for(P_SWEEP_RANGE.1, w, nominal.amplitude_v),
            bench.amplitude_for(0.5, w, nominal.amplitude_v),
        ) else {
            bail!(
                "the {polarity:?} switching probability never reaches 98 % below 10 kV: check the kinetics parameters"
            );
        };
        let amps = linspace(v_lo, v_hi, SWEEP_POINTS);
        let measure = |amp: f64, width: f64, sweep: u64, i: usize| {
            let switched = bench.measure(
                amp,
                width,
                config.trials,
                config.seed,
                [pi as u64, sweep, i as u64],
            );
            (amp, width, switched, bench.p_model(amp, width))
        };
        by_amplitude.push(Sweep {
            polarity,
            points: amps
                .iter()
                .enumerate()
                .map(|(i, &a)| measure(a, w, 0, i))
                .collect(),
            curve: linspace(v_lo, v_hi, CURVE_POINTS)
                .into_iter()
                .map(|a| (a, bench.p_model(a, w)))
                .collect(),
        });
        let (Some(w_lo), Some(w_hi)) = (
            bench.width_for(P_SWEEP_RANGE.0, v50),
            bench.width_for(P_SWEEP_RANGE.1, v50),
        ) else {
            bail!(
                "the {polarity:?} switching probability at {v50:.3} V never reaches 98 % within 1e6 s"
            );
        };
        let widths = logspace(w_lo, w_hi, SWEEP_POINTS);
        by_width.push(Sweep {
            polarity,
            points: widths
                .iter()
                .enumerate()
                .map(|(i, &wd)| measure(v50, wd, 1, i))
                .collect(),
            curve: logspace(w_lo, w_hi, CURVE_POINTS)
                .into_iter()
                .map(|wd| (wd, bench.p_model(v50, wd)))
                .collect(),
        });
    }
    let mut table = Table::new(&[
        "polarity",
        "sweep",
        "amplitude",
        "width_s",
        "trials",
        "switched",
        "p_measured",
        "p_model",
    ]);
    for (sweep_name, sweeps) in [("amplitude", &by_amplitude), ("width", &by_width)] {
        for sweep in sweeps {
            for &(a, w, switched, p_model) in &sweep.points {
                let p = switched as f64 / config.trials as f64;
                table.push_row(vec![
                    polarity_name(sweep.polarity).to_string(),
                    sweep_name.to_string(),
                    a.to_string(),
                    w.to_string(),
                    config.trials.to_string(),
                    switched.to_string(),
                    p.to_string(),
                    p_model.to_string(),
                ])?;
            }
        }
    }
    let amp_fig = switching_figure(
        format!(
            "{label}: switching probability vs amplitude ({} trials/point)",
            config.trials
        ),
        "pulse amplitude (V)",
        &by_amplitude,
        |p| p.0,
        config.trials,
        false,
    );
    let width_fig = switching_figure(
        format!("{label}: switching probability vs width (at the 50 % amplitude)"),
        "pulse width (s)",
        &by_width,
        |p| p.1,
        config.trials,
        true,
    );
    save_panels(&[amp_fig, width_fig], 2, &out.join("switching"))?;
    Ok(Outcome::Written(written(out, "switching", &table)?))
}

fn polarity_name(p: Polarity) -> &'static str {
    match p {
        Polarity::Set => "set",
        Polarity::Reset => "reset",
    }
}

fn switching_figure(
    title: String,
    x_label: &str,
    sweeps: &[Sweep],
    x_of: fn(&(f64, f64, usize, f64)) -> f64,
    trials: usize,
    log_x: bool,
) -> Figure {
    let mut fig = Figure::new(title, x_label, "switching probability");
    fig.log_x = log_x;
    fig.y_range = Some((-0.03, LEGEND_HEADROOM));
    for (c, sweep) in sweeps.iter().enumerate() {
        let name = polarity_name(sweep.polarity).to_uppercase();
        let pts: Vec<(f64, f64)> = sweep
            .points
            .iter()
            .map(|p| (x_of(p), p.2 as f64 / trials as f64))
            .collect();
        let err: Vec<f64> = pts
            .iter()
            .map(|&(_, p)| (p * (1.0 - p) / trials as f64).sqrt())
            .collect();
        fig.series.push(
            Series::new(
                format!("{name} measured (±1σ binomial)"),
                pts,
                Style::Points,
                c,
            )
            .with_errors(err),
        );
        fig.series.push(Series::new(
            format!("{name} model"),
            sweep.curve.clone(),
            Style::Line,
            c,
        ));
    }
    fig
}
