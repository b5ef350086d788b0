//! `drift`: conductance versus time after programming, mean and spread over devices.

use super::*;

/// Statistics of reads at one time after programming to one target.
#[derive(Clone, Debug)]
pub struct DriftPoint {
    /// Programming target, siemens.
    pub target_s: f64,
    /// Time after programming, seconds.
    pub t_s: f64,
    /// Mean of the noisy reads over devices, siemens.
    pub g_mean_s: f64,
    /// Standard deviation of the noisy reads over devices, siemens.
    pub g_std_s: f64,
    /// Mean of the noise-free (drifted) conductance, siemens.
    pub g_noise_free_mean_s: f64,
}

/// Program `devices` devices to each target, then read them at log-spaced times.
pub fn drift_series(
    device: &AnyDevice,
    targets_s: &[f64],
    devices: usize,
    seed: u64,
) -> Vec<DriftPoint> {
    let n_t = (DRIFT_DECADES.1 - DRIFT_DECADES.0) as usize * DRIFT_POINTS_PER_DECADE + 1;
    let times: Vec<f64> = linspace(DRIFT_DECADES.0, DRIFT_DECADES.1, n_t)
        .into_iter()
        .map(|e| 10f64.powf(e))
        .collect();
    let mut points = Vec::new();
    for (ti, &target) in targets_s.iter().enumerate() {
        // reads[d][k]: (noisy read, noise-free conductance) of device d at time k.
        let reads: Vec<Vec<(f64, f64)>> = (0..devices)
            .into_par_iter()
            .map(|d| {
                let mut rng = stream(seed, &[Protocol::Drift.stream_id(), ti as u64, d as u64]);
                let mut state = device.fabricate(&mut rng);
                device.program(&mut state, target, &mut rng);
                times
                    .iter()
                    .map(|&t| {
                        (
                            device.read(&mut state, t, &mut rng),
                            device.conductance_at(&state, t),
                        )
                    })
                    .collect()
            })
            .collect();
        for (k, &t) in times.iter().enumerate() {
            let noisy: Vec<f64> = reads.iter().map(|r| r[k].0).collect();
            let (mean, std) = mean_std(&noisy);
            let clean = reads.iter().map(|r| r[k].1).sum::<f64>() / devices as f64;
            points.push(DriftPoint {
                target_s: target,
                t_s: t,
                g_mean_s: mean,
                g_std_s: std,
                g_noise_free_mean_s: clean,
            });
        }
    }
    points
}

fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 {
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

pub(super) fn drift(
    device: &AnyDevice,
    label: &str,
    config: &CharacterizeConfig,
    out: &Path,
) -> Result<Outcome> {
    if !device.drifts() {
        return Ok(Outcome::Skipped(format!(
            "the {} model has no conductance drift",
            device.model_name()
        )));
    }
    let (g_lo, g_hi) = device.nominal_window();
    let targets: Vec<f64> = [0.1, 0.25, 0.5, 0.75, 1.0]
        .iter()
        .map(|f| g_lo + f * (g_hi - g_lo))
        .collect();
    let points = drift_series(device, &targets, config.devices, config.seed);
    let mut table = Table::new(&[
        "target_s",
        "t_s",
        "devices",
        "g_mean_s",
        "g_std_s",
        "g_noise_free_mean_s",
    ]);
    for p in &points {
        table.push_numbers(&[
            p.target_s,
            p.t_s,
            config.devices as f64,
            p.g_mean_s,
            p.g_std_s,
            p.g_noise_free_mean_s,
        ])?;
    }
    let mut fig = Figure::new(
        format!(
            "{label}: drift after programming, mean ± std of reads over {} devices",
            config.devices
        ),
        "time after programming (s)",
        "read conductance (µS)",
    );
    fig.log_x = true;
    fig.log_y = true;
    for (c, &target) in targets.iter().enumerate() {
        let sel: Vec<&DriftPoint> = points.iter().filter(|p| p.target_s == target).collect();
        let pts = sel.iter().map(|p| (p.t_s, p.g_mean_s * MICRO)).collect();
        let err = sel.iter().map(|p| p.g_std_s * MICRO).collect();
        let name = format!("target {:.1} µS", target * MICRO);
        fig.series
            .push(Series::new(name, pts, Style::LinePoints, c).with_errors(err));
    }
    let lowest = points
        .iter()
        .map(|p| p.g_mean_s)
        .fold(f64::INFINITY, f64::min);
    let highest = points.iter().map(|p| p.g_mean_s).fold(0.0, f64::max);
    // Log axis: room below the lowest mean for its error bars and above for the legend.
    fig.y_range = Some((0.4 * lowest * MICRO, 3.0 * highest * MICRO));
    save(&fig, &out.join("drift"))?;
    Ok(Outcome::Written(written(out, "drift", &table)?))
}
