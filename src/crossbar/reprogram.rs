//! Re-programming selected weights of a programmed tile: only the named device pairs are
//! written, by the tile's programming method (open loop or write-verify) and with the
//! mapping of its last full programming (same weight scale), e.g. the 2T2R pairs whose
//! binary weight changes sign during on-chip training.
//!
//! Random streams: row `r` of re-programming operation `k` draws from
//! `(seed, [tile, PROGRAM, k, r])`, the numbering of full programmings continued, so the
//! result does not depend on the thread count. The read cache is brought up to date for
//! the written pairs only (`Tile::refresh_pairs`) and the write is recorded in the
//! ledger.

use anyhow::{Context, Result, ensure};
use rayon::prelude::*;

use super::energy::EnergyBreakdown;
use super::mapping::PairTarget;
use super::tile::{ProgramContext, ProgramReport, RowProgramStats, Tile, tags};
use crate::device::Device;
use crate::rng::stream;

/// One weight to re-program: the pair of output `output` (column) and input `input` (row)
/// gets the weight `weight` (in weight units, like [`Tile::program`]'s matrix).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WeightWrite {
    /// Output index (column of the array, row of `W`).
    pub output: usize,
    /// Input index (row of the array, column of `W`).
    pub input: usize,
    /// New weight.
    pub weight: f64,
}

/// The writes of one array row: (column, weight).
type RowWrites = Vec<(usize, f64)>;

impl<D: Device> Tile<D> {
    /// Re-program the pairs named by `writes` (each pair at most once) and leave every
    /// other pair as it is; returns the cost of the writes.
    pub fn reprogram(&mut self, writes: &[WeightWrite]) -> Result<ProgramReport> {
        let mapping = self
            .mapping
            .clone()
            .context("the tile has not been programmed yet: call program() first")?;
        ensure!(
            self.planes == 1,
            "re-programming single weights does not support bit slicing (mapping.bit_slicing)"
        );
        let by_row = self.writes_by_row(writes)?;
        let ctx = ProgramContext {
            device: &self.device,
            config: &self.config,
            g_min_s: self.g_min_s,
            g_unit_s: self.g_unit_s,
        };
        let t_s = self.read_time_s().unwrap_or(0.0);
        let (seed, tile_id, counter) = (self.seed, self.tile_id, self.program_counter);
        let n_out = self.n_out;
        let rows: Vec<(RowProgramStats, Vec<(usize, f64)>)> = self
            .cells
            .par_chunks_mut(n_out * 2)
            .zip(by_row.par_iter())
            .enumerate()
            .map(|(row, (cells, row_writes))| {
                let mut stats = RowProgramStats::default();
                let mut touched = Vec::with_capacity(row_writes.len());
                if row_writes.is_empty() {
                    return (stats, touched);
                }
                let mut rng = stream(seed, &[tile_id, tags::PROGRAM, counter, row as u64]);
                let mut target = [PairTarget::Analog { pos: 0.0, neg: 0.0 }];
                for &(col, weight) in row_writes {
                    let pair = &mut cells[col * 2..col * 2 + 2];
                    let sum_s = ctx.device.conductance_at(&pair[0], t_s)
                        + ctx.device.conductance_at(&pair[1], t_s);
                    touched.push((col, sum_s));
                    mapping.encode(weight, &mut target);
                    ctx.program_pair(pair, &target[0], &mut rng, &mut stats);
                }
                (stats, touched)
            })
            .collect();
        self.program_counter += 1;
        let stats: Vec<RowProgramStats> = rows.iter().map(|(s, _)| *s).collect();
        let report = RowProgramStats::report(&stats);
        self.ledger
            .record(EnergyBreakdown::from_write(&report.write));
        self.refresh_pairs(
            rows.iter()
                .enumerate()
                .map(|(row, (_, touched))| (row, touched.as_slice())),
        )?;
        Ok(report)
    }

    /// The writes grouped by array row, checked: indices inside the tile, finite weights,
    /// no pair named twice.
    fn writes_by_row(&self, writes: &[WeightWrite]) -> Result<Vec<RowWrites>> {
        let mut by_row: Vec<RowWrites> = vec![Vec::new(); self.n_in];
        for w in writes {
            ensure!(
                w.output < self.n_out && w.input < self.n_in,
                "weight write ({}, {}) is outside the tile's {} outputs x {} inputs",
                w.output,
                w.input,
                self.n_out,
                self.n_in
            );
            ensure!(
                w.weight.is_finite(),
                "weight write ({}, {}) is not finite ({})",
                w.output,
                w.input,
                w.weight
            );
            by_row[w.input].push((w.output, w.weight));
        }
        for (row, list) in by_row.iter_mut().enumerate() {
            list.sort_by_key(|&(col, _)| col);
            if let Some(pair) = list.windows(2).find(|p| p[0].0 == p[1].0) {
                anyhow::bail!(
                    "weight write ({}, {row}) is named twice in one re-programming",
                    pair[0].0
                );
            }
        }
        Ok(by_row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crossbar::{TileConfig, WeightEncoding};
    use crate::device::{AnyDevice, preset};

    fn binary_tile(seed: u64) -> Tile<AnyDevice> {
        let mut config = TileConfig::default();
        config.mapping.encoding = WeightEncoding::Binary;
        let device = preset::load("rram_hfo2", &toml::Table::new()).unwrap();
        let mut tile = Tile::new(device, 6, 5, config, seed, 0).unwrap();
        let w: Vec<f64> = (0..30)
            .map(|i| if i % 3 == 0 { 1.0 } else { -1.0 })
            .collect();
        tile.program(&w).unwrap();
        tile
    }

    #[test]
    fn reprogramming_writes_only_the_named_pairs_and_keeps_the_cache_exact() {
        let mut tile = binary_tile(3);
        let before = tile.conductances(0, crate::device::Polarity::Set).unwrap();
        let writes = [
            WeightWrite {
                output: 1,
                input: 2,
                weight: 1.0,
            },
            WeightWrite {
                output: 4,
                input: 0,
                weight: -1.0,
            },
        ];
        let report = tile.reprogram(&writes).unwrap();
        assert_eq!(report.devices, 4, "two pairs, two devices each");
        assert!(report.write.pulses >= 4);
        let after = tile.conductances(0, crate::device::Polarity::Set).unwrap();
        let changed: Vec<usize> = (0..before.len())
            .filter(|&i| before[i] != after[i])
            .collect();
        // Conductances are listed row-major n_in x n_out: only (input 2, output 1) and
        // (input 0, output 4) may change.
        assert!(changed.iter().all(|&i| i == 2 * 5 + 1 || i == 4));
        let rebuilt = tile.build_cache(tile.read_time_s().unwrap()).unwrap();
        let cache = tile.cache.as_ref().unwrap();
        assert_eq!(cache.g, rebuilt.g);
        assert_eq!(cache.var, rebuilt.var);
        for (a, b) in cache.row_g_sum_s.iter().zip(&rebuilt.row_g_sum_s) {
            assert!((a - b).abs() <= 1e-12 * b.abs());
        }
    }

    #[test]
    fn bad_writes_are_refused_naming_the_weight() {
        let mut tile = binary_tile(4);
        let outside = WeightWrite {
            output: 5,
            input: 0,
            weight: 1.0,
        };
        let err = tile.reprogram(&[outside]).unwrap_err().to_string();
        assert!(err.contains("(5, 0)"), "{err}");
        let twice = WeightWrite {
            output: 1,
            input: 1,
            weight: 1.0,
        };
        let err = tile.reprogram(&[twice, twice]).unwrap_err().to_string();
        assert!(err.contains("named twice"), "{err}");
        let nan = WeightWrite {
            weight: f64::NAN,
            ..twice
        };
        assert!(tile.reprogram(&[nan]).is_err());
    }
}
