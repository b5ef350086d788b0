//! Add a device model: implement `xbar::device::Device` and every tile, rule and
//! experiment of the library can use it.
//!
//! The model here is a deliberately simple ferroelectric-FET-like analog synapse: a
//! conductance window split into equal levels, one level per nominal pulse, a Gaussian
//! device-to-device spread of the window's top, Gaussian programming noise and a constant
//! read noise, no drift. Its parameters are written out with their units; a real model
//! would take them from a preset file (`device_models/*.toml`) with a source for each.
//!
//! The example programs a 16 x 8 weight matrix on a tile of these devices, reads it, and
//! trains one weight up by pulses to show the pulse response.
//!
//! Run: `cargo run --release --example custom_device`.

use anyhow::{Result, ensure};
use rand::{Rng, RngExt};
use rand_distr::{Distribution, Normal};
use xbar::crossbar::{Tile, TileConfig};
use xbar::device::{Device, Polarity, Pulse, PulseReport, StuckAt, WriteReport};

/// The model's parameters (shared by every cell of an array).
#[derive(Clone, Debug)]
struct LevelSynapse {
    /// Lowest conductance, siemens.
    g_min_s: f64,
    /// Nominal highest conductance, siemens.
    g_max_s: f64,
    /// Levels between `g_min_s` and `g_max_s` (one per nominal pulse).
    levels: u32,
    /// Device-to-device spread of the window's top, as a fraction of `g_max_s`.
    d2d_sigma: f64,
    /// Programming noise, as a fraction of the window.
    program_sigma: f64,
    /// Read noise, siemens.
    read_sigma_s: f64,
    /// Nominal pulse: amplitude (V) and width (s).
    pulse: (f64, f64),
}

/// One cell: its own window top and its present conductance.
#[derive(Clone, Debug)]
struct Cell {
    g_max_s: f64,
    g_s: f64,
    stuck: Option<StuckAt>,
}

impl LevelSynapse {
    /// Conductance step of one pulse on `cell`, siemens.
    fn step_s(&self, cell: &Cell) -> f64 {
        (cell.g_max_s - self.g_min_s) / f64::from(self.levels)
    }

    /// Energy of one pulse across a cell of conductance `g_s`: V^2 G t, joules.
    fn pulse_energy_j(&self, g_s: f64) -> f64 {
        self.pulse.0 * self.pulse.0 * g_s * self.pulse.1
    }
}

impl Device for LevelSynapse {
    type State = Cell;

    fn fabricate<R: Rng + ?Sized>(&self, rng: &mut R) -> Cell {
        let spread = Normal::new(1.0, self.d2d_sigma).expect("finite sigma");
        let g_max_s = (self.g_max_s * spread.sample(rng)).max(self.g_min_s * 1.01);
        Cell {
            g_max_s,
            g_s: self.g_min_s,
            stuck: None,
        }
    }

    fn program<R: Rng + ?Sized>(
        &self,
        cell: &mut Cell,
        g_target_s: f64,
        rng: &mut R,
    ) -> WriteReport {
        if cell.stuck.is_some() {
            return WriteReport::default();
        }
        let noise = Normal::new(0.0, self.program_sigma * (cell.g_max_s - self.g_min_s))
            .expect("finite sigma");
        cell.g_s = (g_target_s + noise.sample(rng)).clamp(self.g_min_s, cell.g_max_s);
        WriteReport {
            pulses: 1,
            energy_j: self.pulse_energy_j(cell.g_s),
            time_s: self.pulse.1,
        }
    }

    fn apply_pulse<R: Rng + ?Sized>(
        &self,
        cell: &mut Cell,
        pulse: &Pulse,
        _rng: &mut R,
    ) -> PulseReport {
        if cell.stuck.is_some() {
            return PulseReport::default();
        }
        let before = cell.g_s;
        let step = match pulse.polarity {
            Polarity::Set => self.step_s(cell),
            Polarity::Reset => -self.step_s(cell),
        };
        cell.g_s = (cell.g_s + step).clamp(self.g_min_s, cell.g_max_s);
        PulseReport {
            switched: cell.g_s != before,
            energy_j: self.pulse_energy_j(before),
        }
    }

    fn nominal_pulse(&self, polarity: Polarity) -> Pulse {
        Pulse::by_polarity(polarity, self.pulse, self.pulse)
    }

    fn conductance_at(&self, cell: &Cell, _t_s: f64) -> f64 {
        match cell.stuck {
            Some(StuckAt::Lrs) => cell.g_max_s,
            Some(StuckAt::Hrs) => self.g_min_s,
            None => cell.g_s,
        }
    }

    fn read_noise_sigma(&self, _cell: &Cell, _t_s: f64) -> f64 {
        self.read_sigma_s
    }

    fn g_window(&self, cell: &Cell) -> (f64, f64) {
        (self.g_min_s, cell.g_max_s)
    }

    fn nominal_window(&self) -> (f64, f64) {
        (self.g_min_s, self.g_max_s)
    }

    fn set_stuck(&self, cell: &mut Cell, stuck: Option<StuckAt>) {
        cell.stuck = stuck;
    }
}

fn main() -> Result<()> {
    let device = LevelSynapse {
        g_min_s: 1e-6,
        g_max_s: 20e-6,
        levels: 32,
        d2d_sigma: 0.05,
        program_sigma: 0.01,
        read_sigma_s: 0.05e-6,
        pulse: (3.0, 100e-9),
    };
    let (n_in, n_out) = (16, 8);
    let mut rng = xbar::rng::stream(3, &[0]);
    let weights: Vec<f64> = (0..n_in * n_out)
        .map(|_| rng.random::<f64>() * 2.0 - 1.0)
        .collect();
    let mut tile = Tile::new(device.clone(), n_in, n_out, TileConfig::default(), 3, 0)?;
    tile.program(&weights)?;
    let read_back = tile.effective_weights()?;
    let rms = (weights
        .iter()
        .zip(&read_back)
        .map(|(w, r)| (w - r).powi(2))
        .sum::<f64>()
        / weights.len() as f64)
        .sqrt();
    println!(
        "programmed {n_out} x {n_in} weights on LevelSynapse devices: RMS weight error {rms:.4}"
    );
    ensure!(
        rms < 0.1,
        "the read-back weights are far from the programmed ones"
    );
    let x = vec![0.5f32; n_in];
    let y = tile.forward(&x)?;
    println!("forward read of a constant input: {y:.3?}");

    let mut cell = device.fabricate(&mut rng);
    let set = device.nominal_pulse(Polarity::Set);
    let trace: Vec<f64> = (0..8)
        .map(|_| {
            device.apply_pulse(&mut cell, &set, &mut rng);
            device.conductance_at(&cell, 0.0) * 1e6
        })
        .collect();
    println!("conductance after each of 8 SET pulses (uS): {trace:.2?}");
    ensure!(
        trace.windows(2).all(|w| w[1] > w[0]),
        "SET pulses must raise the conductance"
    );
    Ok(())
}
