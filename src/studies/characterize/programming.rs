//! `programming`: histograms of programmed conductances, analog targets and binary
//! LRS/HRS states.

use super::*;

/// Histogram bins.
const HISTOGRAM_BINS: usize = 60;
/// Compliance currents of the binary RRAM distributions, relative to the preset's.
const COMPLIANCE_FACTORS: [f64; 3] = [0.3, 1.0, 3.0];

/// One programmed sample.
#[derive(Clone, Debug)]
struct Sample {
    kind: String,
    target_s: f64,
    g_s: f64,
}

/// Histogram of `values` with `bins` bins whose centres run from `lo` to `hi` (so values at
/// the ends sit at bin centres): (bin centre, count) per bin.
pub fn histogram(values: &[f64], lo: f64, hi: f64, bins: usize) -> Vec<(f64, f64)> {
    let bins = bins.max(2);
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else {
        let half = lo.abs().max(1e-12) * 0.01;
        (lo - half, hi + half)
    };
    let width = (hi - lo) / (bins - 1) as f64;
    let start = lo - 0.5 * width;
    let mut counts = vec![0.0; bins];
    for &v in values {
        let i = (((v - start) / width).max(0.0) as usize).min(bins - 1);
        counts[i] += 1.0;
    }
    counts
        .into_iter()
        .enumerate()
        .map(|(i, c)| (lo + i as f64 * width, c))
        .collect()
}

/// Leave room above the data of a histogram for the legend (drawn in the upper right).
fn analog_samples(device: &AnyDevice, config: &CharacterizeConfig) -> Vec<Sample> {
    let (g_lo, g_hi) = device.nominal_window();
    TARGET_FRACTIONS
        .iter()
        .enumerate()
        .flat_map(|(ti, f)| {
            let target = g_lo + f * (g_hi - g_lo);
            (0..config.trials)
                .into_par_iter()
                .map(move |s| {
                    let mut rng = stream(
                        config.seed,
                        &[Protocol::Programming.stream_id(), 0, ti as u64, s as u64],
                    );
                    let mut state = device.fabricate(&mut rng);
                    device.program(&mut state, target, &mut rng);
                    Sample {
                        kind: "analog".to_string(),
                        target_s: target,
                        g_s: device.conductance_at(&state, 0.0),
                    }
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// One binary distribution to sample: the state programmed and, for RRAM, the compliance
/// current of the LRS.
#[derive(Clone, Copy, Debug)]
struct BinaryKind {
    high: bool,
    compliance_a: Option<f64>,
}

impl BinaryKind {
    fn label(&self, device: &AnyDevice) -> String {
        match (self.high, self.compliance_a, device) {
            (true, Some(i_cc), _) => format!("LRS, I_cc = {:.0} µA", i_cc * MICRO),
            (true, None, AnyDevice::Mram(_)) => "LRS (P)".to_string(),
            (false, _, AnyDevice::Mram(_)) => "HRS (AP)".to_string(),
            (true, None, _) => "LRS".to_string(),
            (false, _, _) => "HRS".to_string(),
        }
    }

    fn program(&self, device: &AnyDevice, state: &mut AnyState, rng: &mut XbarRng) {
        match (device, state, self.compliance_a) {
            (AnyDevice::Rram(rram), AnyState::Rram(s), Some(i_cc)) => {
                rram.program_binary_with_compliance(s, self.high, i_cc, rng);
            }
            (_, state, _) => {
                device.program_binary(state, self.high, rng);
            }
        }
    }
}

/// The binary distributions of a device: LRS at several compliance currents and HRS for
/// RRAM, P and AP for an MTJ.
fn binary_kinds(device: &AnyDevice) -> Vec<BinaryKind> {
    let mut kinds: Vec<BinaryKind> = match device {
        AnyDevice::Rram(rram) => COMPLIANCE_FACTORS
            .iter()
            .map(|f| BinaryKind {
                high: true,
                compliance_a: Some(f * rram.params.i_compliance_a),
            })
            .collect(),
        _ => vec![BinaryKind {
            high: true,
            compliance_a: None,
        }],
    };
    kinds.push(BinaryKind {
        high: false,
        compliance_a: None,
    });
    kinds
}

fn binary_samples(device: &AnyDevice, config: &CharacterizeConfig) -> Vec<Sample> {
    binary_kinds(device)
        .iter()
        .enumerate()
        .flat_map(|(ki, kind)| {
            let label = kind.label(device);
            (0..config.trials)
                .into_par_iter()
                .map(|s| {
                    let path = [Protocol::Programming.stream_id(), 1, ki as u64, s as u64];
                    let mut rng = stream(config.seed, &path);
                    let mut state = device.fabricate(&mut rng);
                    kind.program(device, &mut state, &mut rng);
                    Sample {
                        kind: label.clone(),
                        target_s: f64::NAN,
                        g_s: device.conductance_at(&state, 0.0),
                    }
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

pub(super) fn programming(
    device: &AnyDevice,
    label: &str,
    config: &CharacterizeConfig,
    out: &Path,
) -> Result<Outcome> {
    let analog = if device.is_analog() {
        analog_samples(device, config)
    } else {
        Vec::new()
    };
    let binary = if device.has_binary_mode() {
        binary_samples(device, config)
    } else {
        Vec::new()
    };
    let mut table = Table::new(&["mode", "target_s", "g_s", "r_ohm"]);
    for s in analog.iter().chain(&binary) {
        let target = if s.target_s.is_nan() {
            String::new()
        } else {
            s.target_s.to_string()
        };
        table.push_row(vec![
            s.kind.clone(),
            target,
            s.g_s.to_string(),
            (1.0 / s.g_s).to_string(),
        ])?;
    }
    let mut figs = Vec::new();
    if !analog.is_empty() {
        figs.push(analog_histogram(label, &analog, config.trials));
    }
    if !binary.is_empty() {
        figs.push(binary_histogram(label, &binary, config.trials));
    }
    save_panels(&figs, 2, &out.join("programming"))?;
    Ok(Outcome::Written(written(out, "programming", &table)?))
}

fn analog_histogram(label: &str, samples: &[Sample], per_target: usize) -> Figure {
    let values: Vec<f64> = samples.iter().map(|s| s.g_s * MICRO).collect();
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut fig = Figure::new(
        format!("{label}: open-loop programming, {per_target} devices per target"),
        "conductance after programming (µS)",
        "devices per bin",
    );
    let mut targets: Vec<f64> = samples.iter().map(|s| s.target_s).collect();
    targets.dedup();
    for (c, &t) in targets.iter().enumerate() {
        let v: Vec<f64> = samples
            .iter()
            .filter(|s| s.target_s == t)
            .map(|s| s.g_s * MICRO)
            .collect();
        let bins = histogram(&v, lo, hi, HISTOGRAM_BINS);
        let width = bins.get(1).map_or(1.0, |b| b.0 - bins[0].0);
        fig.series.push(Series::new(
            format!("target {:.1} µS", t * MICRO),
            bins,
            Style::Bars { bin_width: width },
            c,
        ));
    }
    legend_headroom(&mut fig);
    fig
}

fn binary_histogram(label: &str, samples: &[Sample], per_kind: usize) -> Figure {
    let log_r: Vec<f64> = samples.iter().map(|s| (1.0 / s.g_s).log10()).collect();
    let lo = log_r.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = log_r.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut fig = Figure::new(
        format!("{label}: binary programming, {per_kind} devices per state"),
        "resistance, log10(R / Ω)",
        "devices per bin",
    );
    let mut kinds: Vec<&str> = samples.iter().map(|s| s.kind.as_str()).collect();
    kinds.dedup();
    for (c, kind) in kinds.iter().enumerate() {
        let v: Vec<f64> = samples
            .iter()
            .filter(|s| s.kind == *kind)
            .map(|s| (1.0 / s.g_s).log10())
            .collect();
        let bins = histogram(&v, lo, hi, HISTOGRAM_BINS);
        let width = bins.get(1).map_or(1.0, |b| b.0 - bins[0].0);
        fig.series.push(Series::new(
            kind.to_string(),
            bins,
            Style::Bars { bin_width: width },
            c,
        ));
    }
    legend_headroom(&mut fig);
    fig
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_counts_every_value_once() {
        let h = histogram(&[0.0, 0.5, 1.0, 1.0], 0.0, 1.0, 4);
        assert_eq!(h.iter().map(|b| b.1).sum::<f64>(), 4.0);
        assert_eq!(h[3].1, 2.0);
        assert_eq!(
            (h[0].0, h[3].0),
            (0.0, 1.0),
            "the end values sit at bin centres"
        );
        let flat = histogram(&[2.0, 2.0], 2.0, 2.0, 3);
        assert_eq!(flat.iter().map(|b| b.1).sum::<f64>(), 2.0);
    }
}
