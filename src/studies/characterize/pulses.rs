//! `pulses`: conductance versus pulse number for several devices under nominal SET then
//! RESET pulse trains.

use super::*;

/// Device traces drawn in the pulse plot (all of them are in the CSV).
const MAX_TRACES_PLOTTED: usize = 24;

/// Conductance traces of a pulse train: `traces[d][k]` is device d after k pulses
/// (k = 0 is the starting state; the first `pulses_per_phase` are SET, the rest RESET).
#[derive(Clone, Debug)]
pub struct PulseTrain {
    /// Pulses in each of the SET and RESET phases.
    pub pulses_per_phase: usize,
    /// Conductance after each pulse, per device, siemens.
    pub traces: Vec<Vec<f64>>,
}

/// Apply `pulses_per_phase` nominal SET then as many RESET pulses to `devices` devices,
/// each starting at the bottom of its window.
pub fn pulse_train(device: &AnyDevice, devices: usize, seed: u64) -> PulseTrain {
    let pulses_per_phase = (device.pulses_across_window() as usize * 5 / 4).max(10);
    let traces = (0..devices)
        .into_par_iter()
        .map(|d| {
            let mut rng = stream(seed, &[Protocol::Pulses.stream_id(), d as u64]);
            let mut state = device.fabricate(&mut rng);
            if !device.is_analog() {
                device.program_binary(&mut state, false, &mut rng);
            }
            let mut trace = vec![device.conductance_at(&state, 0.0)];
            for polarity in [Polarity::Set, Polarity::Reset] {
                let pulse = device.nominal_pulse(polarity);
                for _ in 0..pulses_per_phase {
                    device.apply_pulse(&mut state, &pulse, &mut rng);
                    trace.push(device.conductance_at(&state, 0.0));
                }
            }
            trace
        })
        .collect();
    PulseTrain {
        pulses_per_phase,
        traces,
    }
}

pub(super) fn pulses(
    device: &AnyDevice,
    label: &str,
    config: &CharacterizeConfig,
    out: &Path,
) -> Result<Outcome> {
    let train = pulse_train(device, config.devices, config.seed);
    let mut table = Table::new(&["device", "pulse", "polarity", "g_s"]);
    for (d, trace) in train.traces.iter().enumerate() {
        for (k, g) in trace.iter().enumerate() {
            let polarity = match k {
                0 => "start",
                k if k <= train.pulses_per_phase => "set",
                _ => "reset",
            };
            table.push_row(vec![
                d.to_string(),
                k.to_string(),
                polarity.to_string(),
                g.to_string(),
            ])?;
        }
    }
    let n = train.pulses_per_phase;
    let mut fig = Figure::new(
        format!(
            "{label}: {n} SET then {n} RESET nominal pulses, {} devices",
            config.devices
        ),
        "pulse number",
        "conductance (µS)",
    );
    for (d, trace) in train.traces.iter().take(MAX_TRACES_PLOTTED).enumerate() {
        let name = if d == 0 { "single devices" } else { "" };
        fig.series
            .push(Series::new(name, indexed_micro(trace), Style::Trace, 0));
    }
    let len = train.traces[0].len();
    let mean: Vec<f64> = (0..len)
        .map(|k| train.traces.iter().map(|t| t[k]).sum::<f64>() / train.traces.len() as f64)
        .collect();
    fig.series.push(Series::new(
        "mean over devices",
        indexed_micro(&mean),
        Style::Line,
        1,
    ));
    save(&fig, &out.join("pulses"))?;
    Ok(Outcome::Written(written(out, "pulses", &table)?))
}

fn indexed_micro(values: &[f64]) -> Vec<(f64, f64)> {
    values
        .iter()
        .enumerate()
        .map(|(k, g)| (k as f64, g * MICRO))
        .collect()
}
