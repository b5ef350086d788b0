//! A trained weight matrix on analog crossbar tiles for inference: [`AnalogSynapses`]
//! reads a [`TiledMatrix`] of any device forwards and transposed, with input scaling.
//!
//! Input scaling ("noise management", the `abs_max` scheme of aihwkit): hidden-layer
//! activations are not bounded by the DAC's full scale, so each input vector is divided by
//! its largest absolute value before the DAC and the outputs are multiplied back, a
//! digital operation per vector. Without it, activations above the full scale saturate.

use super::layer::{InputSource, SynapticLayer};
use crate::crossbar::read::CHUNK_VECTORS;
use crate::crossbar::{Direction, MatrixRead, TiledMatrix};
use crate::device::AnyDevice;
use anyhow::{Result, ensure};
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
        self.input_scales(x, batch, width);
        // Every element is overwritten below: no need to zero what is already there.
        self.scaled.resize(batch * width, 0.0);
        let vectors = x
            .chunks_exact(width)
            .zip(self.scaled.chunks_exact_mut(width));
        for ((v, out), &s) in vectors.zip(&self.scales) {
            out.iter_mut().zip(v).for_each(|(o, a)| *o = a / s);
        }
        &self.scaled
    }

    /// The scale of each of the `batch` vectors of `x` (`width` values each) into
    /// `self.scales`: its largest |value| under `AbsMax` (1 for an all-zero vector), 1
    /// under `None`.
    fn input_scales(&mut self, x: &[f32], batch: usize, width: usize) {
        self.scales.clear();
        let vectors = x.chunks_exact(width).take(batch);
        self.scales.extend(vectors.map(|v| match self.scaling {
            InputScaling::AbsMax => Some(abs_max(v)).filter(|&s| s > 0.0).unwrap_or(1.0),
            InputScaling::None => 1.0,
        }));
    }

    /// A scaled read of `batch` vectors `x` in `direction`, in one part.
    fn read(&mut self, direction: Direction, x: &[f32], batch: usize, y: &mut [f32]) -> Result<()> {
        let mut read = self.matrix.begin_read(direction);
        self.read_part(&mut read, x, batch, y)?;
        self.matrix.end_read(read);
        Ok(())
    }

    /// The next `batch` vectors `x` of the scaled read `read`: the tiles read every vector
    /// divided by its scale (the division done as the DACs convert), and the outputs are
    /// multiplied back.
    fn read_part(
        &mut self,
        read: &mut MatrixRead,
        x: &[f32],
        batch: usize,
        y: &mut [f32],
    ) -> Result<()> {
        let (n_x, n_y) = match read.direction() {
            Direction::Forward => (self.matrix.n_in(), self.matrix.n_out()),
            Direction::Transposed => (self.matrix.n_out(), self.matrix.n_in()),
        };
        self.input_scales(x, batch, n_x);
        let divisors = match self.scaling {
            InputScaling::AbsMax => &self.scales[..],
            InputScaling::None => &[],
        };
        self.matrix.read_part(read, (x, divisors), batch, y)?;
        self.macs += (n_x * n_y * batch) as f64;
        for (row, &s) in y.chunks_exact_mut(n_y).zip(&self.scales) {
            row.iter_mut().for_each(|v| *v *= s);
        }
        Ok(())
    }
}

/// Vectors per part of a generated read ([`SynapticLayer::forward_generated`]): whole
/// read chunks of the tiles, as many as keep a part's inputs within [`PART_VALUES`].
fn part_vectors(inputs: usize) -> usize {
    CHUNK_VECTORS * (PART_VALUES / (CHUNK_VECTORS * inputs.max(1))).max(1)
}

/// Input values per part of a generated read (256 KiB of f32: the part, its DAC
/// conversions and the tile's work stay in the core's cache).
const PART_VALUES: usize = 1 << 16;

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

    /// One read operation whose vectors are generated a part at a time (each part whole
    /// read chunks of the tiles), so it equals the read of the whole batch bit for bit.
    fn forward_generated(
        &mut self,
        batch: usize,
        source: &InputSource<'_>,
        buffer: &mut Vec<f32>,
        y: &mut [f32],
    ) -> Result<()> {
        let (n_x, n_y) = (self.matrix.n_in(), self.matrix.n_out());
        ensure!(
            y.len() == batch * n_y,
            "analog read: {} outputs for {batch} vectors of {n_y}",
            y.len()
        );
        let part = part_vectors(n_x);
        let mut read = self.matrix.begin_read(Direction::Forward);
        for first in (0..batch).step_by(part) {
            let rows = first..(first + part).min(batch);
            buffer.resize(rows.len() * n_x, 0.0);
            let x = &mut buffer[..rows.len() * n_x];
            let y_part = &mut y[rows.start * n_y..rows.end * n_y];
            let count = rows.len();
            source(0, rows, x);
            self.read_part(&mut read, x, count, y_part)?;
        }
        self.matrix.end_read(read);
        Ok(())
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
