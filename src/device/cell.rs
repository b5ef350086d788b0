//! The cell block every device model shares: the stuck-at fault drawn at fabrication, the
//! Joule energy of a pulse across a conductance, the cost of a one-pulse write, and the
//! power-law conductance drift `(t/t0)^-nu` (PCM and the pulsed step-model devices).

use super::{Pulse, StuckAt, WriteReport};
use rand::{Rng, RngExt};

/// The fabrication fault of one cell: stuck in the LRS with probability `p_stuck_lrs`, in
/// the HRS with probability `p_stuck_hrs`, healthy otherwise. Always consumes one uniform
/// draw, so the streams of faulty and fault-free presets stay aligned.
pub fn draw_stuck<R: Rng + ?Sized>(
    p_stuck_lrs: f64,
    p_stuck_hrs: f64,
    rng: &mut R,
) -> Option<StuckAt> {
    let u: f64 = rng.random();
    if u < p_stuck_lrs {
        Some(StuckAt::Lrs)
    } else if u < p_stuck_lrs + p_stuck_hrs {
        Some(StuckAt::Hrs)
    } else {
        None
    }
}

/// Energy `V²·G·t` dissipated by `pulse` across a cell of conductance `g_s`, joules.
pub fn joule_energy_j(pulse: &Pulse, g_s: f64) -> f64 {
    pulse.amplitude_v.powi(2) * g_s * pulse.width_s
}

/// The cost of a write made of the single pulse `pulse`, which dissipated `energy_j`.
pub fn one_pulse_write(pulse: &Pulse, energy_j: f64) -> WriteReport {
    WriteReport {
        pulses: 1,
        energy_j,
        time_s: pulse.width_s,
    }
}

/// Power-law drift factor `(t/t0)^-nu` of a conductance `t_s` seconds after programming,
/// for `t_s > t0_s`; 1 before the reference time `t0_s` (no drift is applied there).
pub fn power_law_drift_factor(nu: f64, t_s: f64, t0_s: f64) -> f64 {
    if t_s > t0_s {
        (t_s / t0_s).powf(-nu)
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Polarity;

    #[test]
    fn stuck_fractions_are_drawn_at_their_rates() {
        const DRAWS: usize = 100_000;
        let mut rng = crate::rng::stream(1, &[]);
        let (mut lrs, mut hrs) = (0usize, 0usize);
        for _ in 0..DRAWS {
            match draw_stuck(0.1, 0.2, &mut rng) {
                Some(StuckAt::Lrs) => lrs += 1,
                Some(StuckAt::Hrs) => hrs += 1,
                None => {}
            }
        }
        // Binomial standard deviations are about 0.001: 5 sigma.
        assert!((lrs as f64 / DRAWS as f64 - 0.1).abs() < 0.005, "{lrs}");
        assert!((hrs as f64 / DRAWS as f64 - 0.2).abs() < 0.007, "{hrs}");
        assert_eq!(draw_stuck(0.0, 0.0, &mut rng), None);
    }

    #[test]
    fn a_one_pulse_write_costs_the_pulse() {
        let pulse = Pulse {
            polarity: Polarity::Set,
            amplitude_v: 2.0,
            width_s: 1e-6,
        };
        let energy = joule_energy_j(&pulse, 1e-4);
        assert!((energy - 4e-10).abs() < 1e-24);
        let report = one_pulse_write(&pulse, energy);
        assert_eq!((report.pulses, report.time_s), (1, 1e-6));
        assert_eq!(report.energy_j, energy);
    }
}
