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
        self.scaled.clear();
        self.scaled.resize(batch * width, 0.0);
        self.scales.clear();
        let vectors = x.chunks_exact(width).take(batch);
        for (v, out) in vectors.zip(self.scaled.chunks_exact_mut(width)) {
            let s = match self.scaling {
                // `max` written as a comparison (NaN inputs are skipped all the same) so
                // that the loop vectorises.
                InputScaling::AbsMax => v.iter().fold(0f32, |m, a| {
                    let a = a.abs();
                    if a > m { a } else { m }
                }),
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
