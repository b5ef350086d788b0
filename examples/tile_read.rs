//! Read a weight matrix through one crossbar tile.
//!
//! A 64 x 32 weight matrix is programmed on phase-change memory (the `pcm_gst` preset:
//! programming noise, drift with a per-device exponent, 1/f read noise) with the default
//! periphery (8-bit DAC and ADC, read noise at every read, write-verify programming), then
//! read 1 s, 1 hour and 1 day after programming, with and without global drift
//! compensation. For each read the example prints the relative error against the exact
//! product W x, and at the end the tile's energy and latency ledger.
//!
//! Run: `cargo run --release --example tile_read`.

use anyhow::{Result, ensure};
use rand::RngExt;
use xbar::crossbar::{Tile, TileConfig};
use xbar::device::preset;

/// Inputs (array rows) and outputs (array columns).
const N_IN: usize = 64;
const N_OUT: usize = 32;
/// Read times after programming, seconds: 1 s, 1 hour, 1 day.
const READ_TIMES_S: [f64; 3] = [1.0, 3600.0, 86_400.0];
/// Master seed of the weights, the inputs and the tile's random streams.
const SEED: u64 = 7;

/// Relative L2 error of `y` against the reference `exact`.
fn relative_error(y: &[f32], exact: &[f64]) -> f64 {
    let diff: f64 = y
        .iter()
        .zip(exact)
        .map(|(&a, &b)| (f64::from(a) - b).powi(2))
        .sum();
    let norm: f64 = exact.iter().map(|b| b * b).sum();
    (diff / norm).sqrt()
}

fn main() -> Result<()> {
    let mut rng = xbar::rng::stream(SEED, &[0]);
    let weights: Vec<f64> = (0..N_OUT * N_IN)
        .map(|_| rng.random::<f64>() * 2.0 - 1.0)
        .collect();
    let x: Vec<f32> = (0..N_IN).map(|_| rng.random::<f32>()).collect();
    let exact: Vec<f64> = (0..N_OUT)
        .map(|j| {
            (0..N_IN)
                .map(|i| weights[j * N_IN + i] * f64::from(x[i]))
                .sum()
        })
        .collect();

    let device = preset::load("pcm_gst", &toml::Table::new())?;
    for compensate in [false, true] {
        let mut config = TileConfig::default();
        config.periphery.drift_compensation = compensate;
        let mut tile = Tile::new(device.clone(), N_IN, N_OUT, config, SEED, 0)?;
        let report = tile.program(&weights)?;
        println!(
            "drift compensation {compensate}: programmed {} devices, {} converged, RMS error {:.3e} S",
            report.devices, report.converged, report.rms_error_s
        );
        for t in READ_TIMES_S {
            tile.set_read_time(t)?;
            let y = tile.forward(&x)?;
            let error = relative_error(&y, &exact);
            println!("  read at t = {t:>7} s: relative error {error:.4}");
            ensure!(error < 0.5, "the analog product is far from W x ({error})");
        }
        let total = tile.ledger().total;
        println!(
            "  ledger: {:.3e} J read ({:.3} pJ/MAC), {:.3e} J programming in {} pulses, read latency {:.3e} s",
            total.read_j(),
            total.pj_per_mac(),
            total.programming_j,
            total.programming_pulses,
            total.read_latency_s
        );
    }
    Ok(())
}
