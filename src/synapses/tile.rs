//! Equilibrium propagation on a crossbar tile: a [`SynapticLayer`] whose weights are the
//! conductances of one tile.
//!
//! The feed-forward term is the tile's forward MVM (rows driven, columns sensed), the
//! feedback term its transposed MVM on the same devices (columns driven, rows sensed), and
//! the local EP update is applied as coincident stochastic pulse trains
//! ([`crate::crossbar::update`]), so every device non-ideality (read noise, ADC/DAC
//! quantisation, step nonlinearity, asymmetry, cycle-to-cycle noise, bounds) acts on the
//! dynamics and the learning. With ideal devices and `TileConfig::ideal()` the reads are
//! exactly the digital ones and the updates are the digital ones in expectation (to
//! within one device step per update).

use anyhow::{Context, Result, ensure};

use super::layer::{DigitalSynapses, OuterProductUpdate, PlasticSynapses, SynapticLayer};
use crate::crossbar::update::{PulsedUpdateConfig, PulsedUpdateReport};
use crate::crossbar::{Tile, TileConfig};
use crate::device::Device;

/// One synaptic layer stored on one crossbar tile (`outputs x inputs` weights, inputs on
/// the array rows).
pub struct CrossbarSynapses<D: Device> {
    tile: Tile<D>,
    update: PulsedUpdateConfig,
    /// Updates applied so far (selects the random streams of the next one).
    updates: u64,
    /// Re-program every pair after this many updates (0 = never).
    refresh_interval: u64,
    /// Cost of the last update.
    last_update: PulsedUpdateReport,
}

impl<D: Device> CrossbarSynapses<D> {
    /// Fabricate a tile of `device`s sized for `weight` (row-major `outputs x inputs`),
    /// program it with weight scale `w_max` (the weight mapped to the full window), and
    /// train it with pulsed updates `update`. The tile's size limits are raised to the
    /// layer's size (one tile per layer). `tile_id` separates the streams of layers.
    #[allow(clippy::too_many_arguments)]
    pub fn program(
        device: D,
        inputs: usize,
        outputs: usize,
        weight: &[f32],
        w_max: f64,
        mut config: TileConfig,
        update: PulsedUpdateConfig,
        seed: u64,
        tile_id: u64,
    ) -> Result<Self> {
        update
            .validate()
            .context("invalid pulsed-update settings")?;
        config.max_rows = config.max_rows.max(inputs);
        config.max_cols = config.max_cols.max(outputs);
        let mut tile = Tile::new(device, inputs, outputs, config, seed, tile_id)
            .with_context(|| format!("building the {outputs} x {inputs} tile {tile_id}"))?;
        let w: Vec<f64> = weight.iter().map(|&v| f64::from(v)).collect();
        tile.program_with_scale(&w, w_max)
            .with_context(|| format!("programming tile {tile_id}"))?;
        Ok(Self {
            tile,
            update,
            updates: 0,
            refresh_interval: 0,
            last_update: PulsedUpdateReport::default(),
        })
    }

    /// Refresh every pair ([`CrossbarSynapses::refresh`]) after every `updates` updates
    /// (0 = never).
    pub fn set_refresh_interval(&mut self, updates: u64) {
        self.refresh_interval = updates;
    }

    /// Read every pair's weight and program it back in the mapping's canonical form (one
    /// device of each pair at the bottom of its window). Pairs trained SET-only climb
    /// towards the top of the window until their steps vanish; refreshing them restores
    /// the headroom (the "occasional refresh" of multi-PCM synapses, Boybat et al., Nat.
    /// Commun. 2018; Nandakumar et al., Front. Neurosci. 2020). The programming pulses and
    /// energy go to the tile's ledger; the weights are read without noise and written with
    /// the device's programming error.
    pub fn refresh(&mut self) -> Result<()> {
        let w_max = self
            .tile
            .mapping()
            .context("a refresh needs a programmed tile")?
            .w_max();
        let weights = self.tile.effective_weights()?;
        self.tile
            .program_with_scale(&weights, w_max)
            .context("refreshing the tile")?;
        Ok(())
    }

    /// Count an applied update and refresh when due.
    fn count_update(&mut self) -> Result<()> {
        self.updates += 1;
        if self.refresh_interval > 0 && self.updates.is_multiple_of(self.refresh_interval) {
            self.refresh()?;
        }
        Ok(())
    }

    /// The tile.
    pub fn tile(&self) -> &Tile<D> {
        &self.tile
    }

    /// The tile, mutably (e.g. to move the read time or reset the ledger).
    pub fn tile_mut(&mut self) -> &mut Tile<D> {
        &mut self.tile
    }

    /// The effective weights read back from the devices, row-major `outputs x inputs`.
    pub fn weight(&self) -> Result<Vec<f32>> {
        Ok(self
            .tile
            .effective_weights()?
            .iter()
            .map(|&w| w as f32)
            .collect())
    }

    /// Pulses, energy and time of the most recent update.
    pub fn last_update(&self) -> PulsedUpdateReport {
        self.last_update
    }
}

/// Program every digital layer of `layers` (input side first) onto its own tile of
/// `device`s: layer k with weight scale `w_max[k]` and tile id k.
pub fn program_layers<D: Device + Clone>(
    device: &D,
    layers: &[DigitalSynapses],
    w_max: &[f64],
    tile: &TileConfig,
    update: PulsedUpdateConfig,
    seed: u64,
) -> Result<Vec<CrossbarSynapses<D>>> {
    ensure!(
        w_max.len() == layers.len(),
        "{} weight scales w_max for {} synaptic layers",
        w_max.len(),
        layers.len()
    );
    layers
        .iter()
        .zip(w_max)
        .enumerate()
        .map(|(k, (layer, &w_max))| {
            CrossbarSynapses::program(
                device.clone(),
                layer.inputs(),
                layer.outputs(),
                layer.weight(),
                w_max,
                tile.clone(),
                update,
                seed,
                k as u64,
            )
        })
        .collect()
}

impl<D: Device> SynapticLayer for CrossbarSynapses<D> {
    fn inputs(&self) -> usize {
        self.tile.n_in()
    }

    fn outputs(&self) -> usize {
        self.tile.n_out()
    }

    fn forward(&mut self, x: &[f32], batch: usize, y: &mut [f32]) -> Result<()> {
        self.tile.forward_batch(x, batch, y)
    }

    fn transposed(&mut self, y: &[f32], batch: usize, x: &mut [f32]) -> Result<()> {
        self.tile.transposed_batch(y, batch, x)
    }
}

impl<D: Device> PlasticSynapses for CrossbarSynapses<D> {
    fn apply_update(&mut self, update: &OuterProductUpdate) -> Result<()> {
        ensure!(
            update.rows > 0,
            "an outer-product update needs at least one row"
        );
        let compact = contrastive_form(update);
        let update = compact.as_ref().unwrap_or(update);
        self.last_update = self.tile.apply_outer_product(
            &update.post,
            &update.pre,
            update.rows,
            update.scale,
            &self.update,
            self.updates,
        )?;
        self.count_update()
    }

    /// Apply a dense update `ΔW` (`outputs x inputs`) device by device (stochastic
    /// rounding to whole pulses).
    fn apply_dense(&mut self, delta_w: &[f32]) -> Result<()> {
        self.last_update = self
            .tile
            .apply_dense_update(delta_w, &self.update, self.updates)?;
        self.count_update()
    }
}

/// Expected pulse count of an outer-product update, up to a common factor:
/// `Σ_r ‖post_r‖₁ ‖pre_r‖₁` (device ij receives `|scale post_ri pre_rj| / Δw_min` pulses
/// on average).
fn pulse_cost(post: &[f32], pre: &[f32], rows: usize) -> f64 {
    let l1 = |v: &[f32]| v.iter().map(|a| f64::from(a.abs())).sum::<f64>();
    let (n_post, n_pre) = (post.len() / rows, pre.len() / rows);
    (0..rows)
        .map(|r| l1(&post[r * n_post..(r + 1) * n_post]) * l1(&pre[r * n_pre..(r + 1) * n_pre]))
        .sum()
}

/// The contrastive rewrite of an update of `2h` rows that pairs row `r` with row `r + h`:
/// `P_r Q_rᵀ + P_{r+h} Q_{r+h}ᵀ = (P_r + P_{r+h}) Q_rᵀ + (−P_{r+h}) (Q_r − Q_{r+h})ᵀ`, an
/// exact identity. EP's update `ρ(a_k) ρ(a_{k-1})ᵀ − ρ(b_k) ρ(b_{k-1})ᵀ` has this form
/// with two nearly equal equilibria, and the rewrite replaces two large cancelling outer
/// products (many pulses that saturate bounded devices) by products of the small
/// differences. Returned only when it lowers the expected pulse count.
fn contrastive_form(update: &OuterProductUpdate) -> Option<OuterProductUpdate> {
    if update.rows < 2 || !update.rows.is_multiple_of(2) {
        return None;
    }
    let h = update.rows / 2;
    let (n_post, n_pre) = (update.outputs(), update.inputs());
    let (p_a, p_b) = update.post.split_at(h * n_post);
    let (q_a, q_b) = update.pre.split_at(h * n_pre);
    let mut post: Vec<f32> = p_a.iter().zip(p_b).map(|(a, b)| a + b).collect();
    post.extend(p_b.iter().map(|b| -b));
    let mut pre = q_a.to_vec();
    pre.extend(q_a.iter().zip(q_b).map(|(a, b)| a - b));
    let before = pulse_cost(&update.post, &update.pre, update.rows);
    (pulse_cost(&post, &pre, update.rows) < before).then_some(OuterProductUpdate {
        post,
        pre,
        rows: update.rows,
        scale: update.scale,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rewrite is an exact identity (same dense ΔW) and lowers the pulse count of a
    /// contrastive update of two nearly equal states.
    #[test]
    fn contrastive_form_is_exact_and_cheaper() {
        let update = OuterProductUpdate {
            post: vec![0.9, 0.5, 0.2, -0.88, -0.52, -0.19],
            pre: vec![0.7, 0.1, 0.4, 0.71, 0.12, 0.38],
            rows: 2,
            scale: 3.0,
        };
        let compact = contrastive_form(&update).expect("cheaper form exists");
        for (a, b) in update.dense().iter().zip(compact.dense()) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        let cost = |u: &OuterProductUpdate| pulse_cost(&u.post, &u.pre, u.rows);
        assert!(cost(&compact) < 0.1 * cost(&update));
    }
}
