//! 2T2R reads with precharge sense amplifiers: binary and ternary weights sensed pair by
//! pair, then used digitally (XNOR-popcount style products for binarized networks).
//!
//! Each pair (G+, G-) is read with its devices' read noise and compared by a PCSA with a
//! Gaussian input offset: binary mode returns sign(G+ - G-), ternary mode returns 0 inside
//! a dead zone |G+ - G-| < dead_zone_fraction (g_max - g_min) (Hirtzlin et al., Front.
//! Neurosci. 2020; Laborieux et al., IEEE TCAS-I 2021). Sensing is a per-device,
//! non-Gaussian decision, so it draws noise for every device (no variance shortcut).
//! A dead line feeds no current to either branch: the decision is then the offset's.

use anyhow::{Context, Result, ensure};
use faer::MatRef;
use rand::RngExt;
use rand_distr::StandardNormal;
use rayon::prelude::*;

use super::config::WeightEncoding;
use super::energy::EnergyBreakdown;
use super::periphery::{draw_offset, pcsa_binary, pcsa_ternary};
use super::read::gemm;
use super::tile::{Tile, tags};
use crate::device::Device;
use crate::linalg::check_batch_shapes;
use crate::rng::stream;

impl<D: Device> Tile<D> {
    /// Sense every weight of a binary or ternary tile once with the PCSAs at the present
    /// read time; returns the weights in {-1, 0, +1}, row-major n_out x n_in. One read
    /// operation (fresh noise), recorded in the ledger.
    pub fn sense_weights(&mut self) -> Result<Vec<i8>> {
        let read_index = self.read_counter;
        let sensed = self.sense_weights_at(read_index)?;
        self.read_counter += 1;
        self.ledger.record(self.sense_energy(0));
        Ok(sensed)
    }

    /// Like [`Tile::sense_weights`] with an explicit read index, without touching the tile.
    pub fn sense_weights_at(&self, read_index: u64) -> Result<Vec<i8>> {
        let encoding = self.encoding();
        ensure!(
            !encoding.is_analog(),
            "sense-amplifier reads need mapping.encoding = \"binary\" or \"ternary\""
        );
        ensure!(
            self.planes == 1,
            "sense-amplifier reads do not support bit slicing"
        );
        let pairs = &self
            .cache
            .as_ref()
            .context("the tile has not been programmed yet")?
            .sensed_pairs;
        let sa = self.config.periphery.sense_amp;
        let dead_zone_s = sa.dead_zone_fraction * self.g_unit_s;
        let read_noise = self.config.periphery.read_noise;
        let (n_in, n_out) = (self.n_in, self.n_out);
        let mut by_row = vec![0i8; n_in * n_out];
        by_row
            .par_chunks_mut(n_out)
            .enumerate()
            .for_each(|(row, out)| {
                let mut rng = stream(
                    self.seed,
                    &[self.tile_id, tags::SENSE, read_index, row as u64],
                );
                for (col, o) in out.iter_mut().enumerate() {
                    let mut read = |sign: usize| {
                        if self.dead_rows[row] || self.dead_cols[col] {
                            return 0.0;
                        }
                        let pair = &pairs[row * n_out + col];
                        let g = pair.g_s[sign];
                        if !read_noise {
                            return g;
                        }
                        let z: f64 = rng.sample(StandardNormal);
                        (g + pair.sigma_s[sign] * z).max(0.0)
                    };
                    let (gp, gn) = (read(0), read(1));
                    let offset = draw_offset(sa.offset_sigma_s, &mut rng);
                    *o = match encoding {
                        WeightEncoding::Ternary => pcsa_ternary(gp, gn, offset, dead_zone_s),
                        _ => pcsa_binary(gp, gn, offset),
                    };
                }
            });
        let mut sensed = vec![0i8; n_in * n_out];
        for row in 0..n_in {
            for col in 0..n_out {
                sensed[col * n_in + row] = by_row[row * n_out + col];
            }
        }
        Ok(sensed)
    }

    /// Binary/ternary MVM through the sense amplifiers: the weights are sensed once for
    /// the call (all `batch` vectors see the same sensed weights; call with batch 1 for
    /// independent sensing per vector), then y = w_max * S x digitally (`x` row-major
    /// batch x n_in, `y` batch x n_out).
    pub fn forward_sensed_batch(&mut self, x: &[f32], batch: usize, y: &mut [f32]) -> Result<()> {
        check_batch_shapes("sensed MVM", x, y, batch, self.n_in, self.n_out)?;
        let read_index = self.read_counter;
        let sensed = self.sense_weights_at(read_index)?;
        self.read_counter += 1;
        let w_max = self.mapping.as_ref().map_or(1.0, |m| m.w_max()) as f32;
        let s: Vec<f32> = sensed.iter().map(|&v| f32::from(v) * w_max).collect();
        let lhs = MatRef::from_row_major_slice(&s, self.n_out, self.n_in);
        gemm(y, lhs, x, self.n_in, self.n_out, batch);
        self.ledger.record(self.sense_energy(batch));
        Ok(())
    }

    /// Energy of one sensing of every pair (both devices at v_read for the read time),
    /// with `batch` digital products counted as MACs.
    fn sense_energy(&self, batch: usize) -> EnergyBreakdown {
        let periphery = &self.config.periphery;
        let g_total_s: f64 = self
            .cache
            .as_ref()
            .map_or(0.0, |c| c.row_g_sum_s.iter().sum());
        EnergyBreakdown {
            array_read_j: self.config.energy.read_time_s * periphery.v_read_v.powi(2) * g_total_s,
            macs: (batch * self.n_in * self.n_out) as f64,
            vectors: batch as u64,
            read_latency_s: self.config.energy.read_time_s * self.n_in as f64,
            ..EnergyBreakdown::default()
        }
    }
}
