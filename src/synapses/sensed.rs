//! Binary or ternary weights on 2T2R tiles for inference: [`SensedSynapses`] reads its
//! weights through the tiles' precharge sense amplifiers (`crate::crossbar::sense`) and
//! multiplies digitally (XNOR-popcount style), counting the sensed bits that differ from the
//! programmed weights.

use super::layer::SynapticLayer;
use crate::crossbar::TiledMatrix;
use crate::device::AnyDevice;
use crate::linalg;
use anyhow::Result;

/// Binary/ternary weights on 2T2R tiles: every read senses all weights once with the sense
/// amplifiers (fresh read noise and offsets), then computes the product digitally.
pub struct SensedSynapses {
    matrix: TiledMatrix<AnyDevice>,
    programmed: Vec<i8>,
    errors: u64,
    reads: u64,
    macs: f64,
}

impl SensedSynapses {
    /// Read `matrix`, programmed with the weights `programmed` (−1, 0, +1; `n_out x n_in`
    /// row-major), through its sense amplifiers.
    pub fn new(matrix: TiledMatrix<AnyDevice>, programmed: Vec<i8>) -> Self {
        SensedSynapses {
            matrix,
            programmed,
            errors: 0,
            reads: 0,
            macs: 0.0,
        }
    }

    /// The tiles.
    pub fn matrix(&self) -> &TiledMatrix<AnyDevice> {
        &self.matrix
    }

    /// Sensed weights so far that differ from the programmed ones, and weights sensed.
    pub fn bit_errors(&self) -> (u64, u64) {
        (self.errors, self.reads)
    }

    /// Multiply-accumulate operations of the reads so far.
    pub fn macs(&self) -> f64 {
        self.macs
    }

    /// Sense every weight once (as `f32`), counting errors, reads and `batch` products.
    fn sense(&mut self, batch: usize) -> Result<Vec<f32>> {
        let sensed = self.matrix.sense_weights()?;
        self.errors += sensed
            .iter()
            .zip(&self.programmed)
            .filter(|(a, b)| a != b)
            .count() as u64;
        self.reads += sensed.len() as u64;
        self.macs += (sensed.len() * batch) as f64;
        Ok(sensed.iter().map(|&v| f32::from(v)).collect())
    }
}

impl SynapticLayer for SensedSynapses {
    fn inputs(&self) -> usize {
        self.matrix.n_in()
    }

    fn outputs(&self) -> usize {
        self.matrix.n_out()
    }

    fn forward(&mut self, x: &[f32], batch: usize, y: &mut [f32]) -> Result<()> {
        let (n, m) = (self.inputs(), self.outputs());
        linalg::check_batch_shapes("sensed product", x, y, batch, n, m)?;
        let w = self.sense(batch)?;
        linalg::a_bt(x, &w, batch, n, m, y);
        Ok(())
    }

    fn transposed(&mut self, y: &[f32], batch: usize, x: &mut [f32]) -> Result<()> {
        let (n, m) = (self.inputs(), self.outputs());
        linalg::check_batch_shapes("sensed transposed product", y, x, batch, m, n)?;
        let w = self.sense(batch)?;
        linalg::a_b(y, &w, batch, m, n, x);
        Ok(())
    }
}
