//! `compliance`: the binary RRAM LRS versus the SET compliance current and versus the
//! endurance cycles already spent: median conductance and spread (standard deviation of
//! ln G) measured over `trials` RESET-then-SET re-programmings of one device each, beside the
//! model's law (`device::rram`: median `I_cc / V_c`, log-spread
//! `sigma_ref (I_ref/I_cc)^alpha (1 + n/n_0)^beta_sigma`) and, versus cycles, the HRS median
//! (the closing window).

use super::*;
use crate::device::rram::Rram;

/// Compliance currents of the sweep, amperes: log-spaced over this range.
const COMPLIANCE_RANGE_A: (f64, f64) = (10e-6, 300e-6);
/// Points of the compliance sweep.
const COMPLIANCE_POINTS: usize = 9;
/// Endurance cycles already spent: 0, then 1e3 to 1e9 (one point per decade).
const CYCLE_DECADES: (i32, i32) = (3, 9);

/// Median and spread of one measured LRS distribution beside the model's law.
#[derive(Clone, Copy, Debug)]
struct Point {
    x: f64,
    median_s: f64,
    sigma_ln: f64,
    law_median_s: f64,
    law_sigma_ln: f64,
    hrs_median_s: f64,
}

/// Re-program `trials` fresh cells that have spent `cycles` cycles at `i_cc_a` and measure
/// the LRS median and log-spread and the HRS median (read after the RESET).
fn measure(rram: &Rram, i_cc_a: f64, cycles: u64, config: &CharacterizeConfig, key: u64) -> Point {
    let draws: Vec<(f64, f64)> = (0..config.trials)
        .into_par_iter()
        .map(|t| {
            let mut rng = stream(
                config.seed,
                &[Protocol::Compliance.stream_id(), key, t as u64],
            );
            let mut state = rram.fabricate(&mut rng);
            state.stuck = None;
            state.cycles = cycles;
            rram.program_binary_with_compliance(&mut state, false, i_cc_a, &mut rng);
            let g_hrs = state.g_s;
            rram.program_binary_with_compliance(&mut state, true, i_cc_a, &mut rng);
            (state.g_s.ln(), g_hrs.ln())
        })
        .collect();
    let n = draws.len() as f64;
    let mean_ln = draws.iter().map(|d| d.0).sum::<f64>() / n;
    let var_ln = draws.iter().map(|d| (d.0 - mean_ln).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    let mut hrs: Vec<f64> = draws.iter().map(|d| d.1).collect();
    hrs.sort_by(f64::total_cmp);
    Point {
        x: if cycles > 0 { cycles as f64 } else { i_cc_a },
        median_s: mean_ln.exp(),
        sigma_ln: var_ln.sqrt(),
        law_median_s: rram.lrs_median_conductance_s(i_cc_a),
        law_sigma_ln: rram.lrs_sigma_ln_r(i_cc_a, cycles + 1),
        hrs_median_s: hrs[hrs.len() / 2].exp(),
    }
}

pub(super) fn compliance(
    device: &AnyDevice,
    label: &str,
    config: &CharacterizeConfig,
    out: &Path,
) -> Result<Outcome> {
    let AnyDevice::Rram(rram) = device else {
        return Ok(Outcome::Skipped(
            "the compliance-current law is a property of the binary RRAM model".to_string(),
        ));
    };
    let (lo, hi) = COMPLIANCE_RANGE_A;
    let currents: Vec<f64> = linspace(lo.ln(), hi.ln(), COMPLIANCE_POINTS)
        .into_iter()
        .map(f64::exp)
        .collect();
    let by_current: Vec<Point> = currents
        .iter()
        .enumerate()
        .map(|(k, &i)| measure(rram, i, 0, config, k as u64))
        .collect();
    let i_cc = rram.params.i_compliance_a;
    let by_cycles: Vec<Point> = (CYCLE_DECADES.0..=CYCLE_DECADES.1)
        .map(|d| {
            let key = 1_000 + d as u64;
            measure(rram, i_cc, 10u64.pow(d as u32), config, key)
        })
        .collect();
    let mut table = Table::new(&[
        "sweep",
        "i_cc_a",
        "cycles",
        "lrs_median_s",
        "lrs_sigma_ln",
        "law_median_s",
        "law_sigma_ln",
        "hrs_median_s",
    ]);
    for (sweep, points) in [("current", &by_current), ("cycles", &by_cycles)] {
        for p in points.iter() {
            let (i, n) = if sweep == "current" {
                (p.x, 0.0)
            } else {
                (i_cc, p.x)
            };
            table.push_row(vec![
                sweep.to_string(),
                i.to_string(),
                n.to_string(),
                p.median_s.to_string(),
                p.sigma_ln.to_string(),
                p.law_median_s.to_string(),
                p.law_sigma_ln.to_string(),
                p.hrs_median_s.to_string(),
            ])?;
        }
    }
    let trials = config.trials;
    let figs = [
        panel(
            format!("{label}: LRS median vs SET compliance, {trials} cycles per point"),
            "compliance current (µA)",
            "median conductance (µS)",
            &by_current,
            MICRO,
            |p| (p.median_s * MICRO, p.law_median_s * MICRO),
            None,
        ),
        panel(
            format!("{label}: LRS spread vs SET compliance"),
            "compliance current (µA)",
            "spread, std of ln G",
            &by_current,
            MICRO,
            |p| (p.sigma_ln, p.law_sigma_ln),
            None,
        ),
        panel(
            format!(
                "{label}: medians vs cycles spent, I_cc = {:.0} µA",
                i_cc * MICRO
            ),
            "endurance cycles already spent",
            "median conductance (µS)",
            &by_cycles,
            1.0,
            |p| (p.median_s * MICRO, p.law_median_s * MICRO),
            Some(|p: &Point| p.hrs_median_s * MICRO),
        ),
        panel(
            format!("{label}: LRS spread vs cycles spent"),
            "endurance cycles already spent",
            "spread, std of ln G",
            &by_cycles,
            1.0,
            |p| (p.sigma_ln, p.law_sigma_ln),
            None,
        ),
    ];
    save_panels(&figs, 2, &out.join("compliance"))?;
    Ok(Outcome::Written(written(out, "compliance", &table)?))
}

/// One log-x panel: the measured values (points) beside the law (line), and optionally a
/// third measured series (the HRS median).
fn panel(
    title: String,
    x_label: &str,
    y_label: &str,
    points: &[Point],
    x_scale: f64,
    y: impl Fn(&Point) -> (f64, f64),
    extra: Option<fn(&Point) -> f64>,
) -> Figure {
    let mut fig = Figure::new(title, x_label, y_label);
    fig.log_x = true;
    let xy = |f: &dyn Fn(&Point) -> f64| points.iter().map(|p| (p.x * x_scale, f(p))).collect();
    fig.series
        .push(Series::new("model law", xy(&|p| y(p).1), Style::Line, 0));
    fig.series.push(Series::new(
        "LRS measured",
        xy(&|p| y(p).0),
        Style::Points,
        1,
    ));
    if let Some(f) = extra {
        fig.log_y = true;
        fig.series.push(Series::new(
            "HRS median measured",
            xy(&f),
            Style::LinePoints,
            2,
        ));
    }
    fig
}
