//! A trained weight matrix on analog crossbar tiles for inference: [`AnalogSynapses`]
//! reads a [`TiledMatrix`] of any device forwards and transposed, with input scaling.
//!
//! Input scaling ("noise management", the `abs_max` scheme of aihwkit): hidden-layer
//! activations are not bounded by the DAC's full scale, so each input vector is divided by
//! its largest absolute value before the DAC and the outputs are multiplied back, a
//! digital operation per vector. Without it, activations above the full scale saturate.

use super::layer::SynapticLayer;
use crate::crossbar::{Direction, TiledMatrix};
use crate::device::AnyDevice;
use anyhow::Result;
use serde::{Deserialize, Serialize};

/// How inputs are brought into the DAC's range.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputScaling {
    /// Divide each input vector by its largest |value| before the DAC, multiply the
    /// outputs back afterwards (aihwkit's `NoiseManagementType.ABS_MAX`).
    #[default]
    AbsMax,
    /// Apply inputs as they are: values beyond the DAC full scale saturate.
    None,
}

/// A weight matrix on analog tiles, read with input scaling.
pub struct AnalogSynapses {
    matrix: TiledMatrix<AnyDevice>,
    scaling: InputScaling,
    scaled: Vec<f32>,
    scales: Vec<f32>,
    macs: f64,
}

impl AnalogSynapses {
    /// Read the programmed `matrix` with input scaling `scaling`.
    pub fn new(matrix: TiledMatrix<AnyDevice>, scaling: InputScaling) -> Self {
        AnalogSynapses {
            matrix,
            scaling,
            scaled: Vec::new(),
            scales: Vec::new(),
            macs: 0.0,
        }
    }

    /// The tiles.
    pub fn matrix(&self) -> &TiledMatrix<AnyDevice> {
        &self.matrix
    }

    /// The tiles, mutable (read time, ADC calibration).
    pub fn matrix_mut(&mut self) -> &mut TiledMatrix<AnyDevice> {
        &mut self.matrix
    }

    /// Multiply-accumulate operations of the reads so far.
    pub fn macs(&self) -> f64 {
        self.macs
    }

    /// `batch` vectors of `x` (`width` values each) scaled into the DAC range, as the
    /// DACs see them (the per-vector factors are kept for the outputs).
    pub fn scale_inputs(&mut self, x: &[f32], batch: usize, width: usize) -> &[f32] {
        // Every element is overwritten below: no need to zero what is already there.
        self.scaled.resize(batch * width, 0.0);
        self.scales.clear();
        let vectors = x.chunks_exact(width).take(batch);
        for (v, out) in vectors.zip(self.scaled.chunks_exact_mut(width)) {
            let s = match self.scaling {
                InputScaling::AbsMax => abs_max(v),
                InputScaling::None => 1.0,
            };
            let s = if s > 0.0 { s } else { 1.0 };
            self.scales.push(s);
            out.iter_mut().zip(v).for_each(|(o, a)| *o = a / s);
        }
        &self.scaled
    }

    /// A scaled read in `direction`: scale, read the tiles, multiply the outputs back.
    fn read(&mut self, direction: Direction, x: &[f32], batch: usize, y: &mut [f32]) -> Result<()> {
        let (n_x, n_y) = match direction {
            Direction::Forward => (self.matrix.n_in(), self.matrix.n_out()),
            Direction::Transposed => (self.matrix.n_out(), self.matrix.n_in()),
        };
        self.scale_inputs(x, batch, n_x);
        let scaled = std::mem::take(&mut self.scaled);
        let read = self.matrix.read_batch(direction, &scaled, batch, y);
        self.scaled = scaled;
        read?;
        self.macs += (n_x * n_y * batch) as f64;
        for (row, &s) in y.chunks_exact_mut(n_y).zip(&self.scales) {
            row.iter_mut().for_each(|v| *v *= s);
        }
        Ok(())
    }
}

/// `max |v_i|` (0 for an empty or all-NaN `v`; NaNs are skipped, as `f32::max` does), in
/// eight independent lanes so that it vectorises: the maximum does not depend on the order
/// in which it is taken.
fn abs_max(v: &[f32]) -> f32 {
    const LANES: usize = 8;
    let larger = |m: f32, a: f32| if a > m { a } else { m };
    let mut lanes = [0f32; LANES];
    let chunks = v.chunks_exact(LANES);
    let tail = chunks
        .remainder()
        .iter()
        .fold(0f32, |m, a| larger(m, a.abs()));
    for chunk in chunks {
        for (m, a) in lanes.iter_mut().zip(chunk) {
            *m = larger(*m, a.abs());
        }
    }
    lanes.iter().fold(tail, |m, &a| larger(m, a))
}

impl SynapticLayer for AnalogSynapses {
    fn inputs(&self) -> usize {
        self.matrix.n_in()
    }

    fn outputs(&self) -> usize {
        self.matrix.n_out()
    }

    fn forward(&mut self, x: &[f32], batch: usize, y: &mut [f32]) -> Result<()> {
        self.read(Direction::Forward, x, batch, y)
    }

    fn transposed(&mut self, y: &[f32], batch: usize, x: &mut [f32]) -> Result<()> {
        self.read(Direction::Transposed, y, batch, x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lane-wise maximum equals the plain fold for every length, with NaNs skipped.
    #[test]
    fn abs_max_is_the_largest_magnitude() {
        let values: Vec<f32> = (0..40)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.5)
            .collect();
        for n in 0..values.len() {
            let v = &values[..n];
            let want = v.iter().fold(0f32, |m, a| m.max(a.abs()));
            assert_eq!(abs_max(v).to_bits(), want.to_bits(), "length {n}");
        }
        assert_eq!(abs_max(&[f32::NAN, -3.0, 2.0]), 3.0);
        assert_eq!(abs_max(&[f32::NAN]), 0.0);
    }
}
