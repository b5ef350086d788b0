//! Periphery of a tile: DAC input quantisation, ADC output quantisation with saturation,
//! and the precharge sense amplifier (PCSA) of 2T2R arrays.
//!
//! Converters work in normalised units: the DAC maps an input in
//! [-input_full_scale, input_full_scale] to a fraction of the read voltage in [-1, 1];
//! the ADC sees a column current in units of v_read * (g_max - g_min) and a per-column
//! full scale in the same units. Both are signed, symmetric, mid-tread quantisers with
//! 2^(b-1) - 1 levels each side of an exact zero, so a zero input gives a zero output.

use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// 1.5 * 2^23: adding and subtracting it rounds an f32 of magnitude below 2^22 to the
/// nearest integer (ties to even) in two additions, without a libm call.
const ROUND_MAGIC_F32: f32 = 12_582_912.0;

/// Round to the nearest integer; exact for |x| <= 2^22 (callers clamp first).
#[inline(always)]
fn round_f32(x: f32) -> f32 {
    (x + ROUND_MAGIC_F32) - ROUND_MAGIC_F32
}

/// Levels each side of zero of a signed `bits`-bit mid-tread quantiser.
pub fn levels_per_side(bits: u32) -> u32 {
    (1u32 << (bits - 1)) - 1
}

/// A signed, symmetric, saturating uniform quantiser.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quantizer {
    /// Largest code magnitude (levels each side of zero).
    max_code: f32,
    /// Codes per unit of the quantised quantity (1 / LSB).
    inv_step: f32,
    /// Size of one step (LSB).
    step: f32,
}

impl Quantizer {
    /// A `bits`-bit quantiser spanning [-full_scale, full_scale]. `full_scale` must be > 0.
    pub fn new(bits: u32, full_scale: f32) -> Self {
        let max_code = levels_per_side(bits) as f32;
        let step = full_scale / max_code;
        Self {
            max_code,
            inv_step: 1.0 / step,
            step,
        }
    }

    /// A quantiser of a line that carries no signal: every input reads 0.
    pub fn silent(bits: u32) -> Self {
        Self {
            max_code: levels_per_side(bits) as f32,
            inv_step: 0.0,
            step: 0.0,
        }
    }

    /// The least significant bit, in the quantised quantity's units.
    pub fn step(&self) -> f32 {
        self.step
    }

    /// Quantise `x`: round to the nearest level, saturate at +-full scale.
    #[inline(always)]
    pub fn quantize(&self, x: f32) -> f32 {
        let code = (x * self.inv_step).clamp(-self.max_code, self.max_code);
        round_f32(code) * self.step
    }
}

/// Row DAC: input values to normalised read voltages in [-1, 1].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dac {
    /// 1 / input_full_scale.
    inv_full_scale: f32,
    /// Quantiser in normalised units, or `None` for an ideal DAC.
    quantizer: Option<Quantizer>,
}

impl Dac {
    /// A DAC with `bits` of resolution (`None`: ideal, no rounding and no clipping)
    /// mapping +-`input_full_scale` to +-v_read.
    pub fn new(bits: Option<u32>, input_full_scale: f64) -> Self {
        Self {
            inv_full_scale: (1.0 / input_full_scale) as f32,
            quantizer: bits.map(|b| Quantizer::new(b, 1.0)),
        }
    }

    /// Normalised voltage (fraction of v_read) for input `x`.
    #[inline(always)]
    pub fn convert(&self, x: f32) -> f32 {
        let u = x * self.inv_full_scale;
        match &self.quantizer {
            Some(q) => q.quantize(u),
            None => u,
        }
    }

    /// Convert vectors of `n = line_squares.len()` inputs `x` (row-major), each divided
    /// by its scale in `scales` (one per vector; `None`: unscaled) on its way in:
    /// `u = DAC(x_b / scale_b)`, `u2 = u^2`, and every line's u^2 added to
    /// `line_squares` (the read energy). One pass, compiled for 256-bit vectors when the
    /// CPU has AVX2 (the same operations on every element, so the same results).
    pub fn convert_vectors(
        &self,
        (x, scales): (&[f32], Option<&[f32]>),
        u: &mut [f32],
        u2: &mut [f32],
        line_squares: &mut [f32],
    ) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            unsafe { self.convert_vectors_avx2((x, scales), u, u2, line_squares) };
            return;
        }
        self.convert_vectors_inline((x, scales), u, u2, line_squares);
    }

    /// [`Dac::convert_vectors`] compiled for 256-bit vectors.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn convert_vectors_avx2(
        &self,
        inputs: (&[f32], Option<&[f32]>),
        u: &mut [f32],
        u2: &mut [f32],
        line_squares: &mut [f32],
    ) {
        self.convert_vectors_inline(inputs, u, u2, line_squares);
    }

    #[inline(always)]
    fn convert_vectors_inline(
        &self,
        (x, scales): (&[f32], Option<&[f32]>),
        u: &mut [f32],
        u2: &mut [f32],
        line_squares: &mut [f32],
    ) {
        let inv = self.inv_full_scale;
        let out = (u, u2, line_squares);
        match (self.quantizer, scales) {
            (Some(q), Some(s)) => convert_each(x, s, out, |v, s| q.quantize(v / s * inv)),
            (Some(q), None) => convert_each(x, &[], out, |v, _| q.quantize(v * inv)),
            (None, Some(s)) => convert_each(x, s, out, |v, s| v / s * inv),
            (None, None) => convert_each(x, &[], out, |v, _| v * inv),
        }
    }

    /// Convert a whole slice into `out` (same length).
    pub fn convert_slice(&self, x: &[f32], out: &mut [f32]) {
        match &self.quantizer {
            Some(q) => {
                for (o, &xi) in out.iter_mut().zip(x) {
                    *o = q.quantize(xi * self.inv_full_scale);
                }
            }
            None => {
                for (o, &xi) in out.iter_mut().zip(x) {
                    *o = xi * self.inv_full_scale;
                }
            }
        }
    }
}

/// `u = convert(x, scale_b)`, `u2 = u^2` and the per-line sums of u^2 for every vector
/// `b` of `x` (`scales` empty: every scale reads 1 and `convert` ignores it).
#[inline(always)]
fn convert_each(
    x: &[f32],
    scales: &[f32],
    (u, u2, line_squares): (&mut [f32], &mut [f32], &mut [f32]),
    convert: impl Fn(f32, f32) -> f32,
) {
    let n = line_squares.len();
    let vectors = x.chunks_exact(n).zip(u.chunks_exact_mut(n));
    for (b, (x_b, u_b)) in vectors.enumerate() {
        let s = scales.get(b).copied().unwrap_or(1.0);
        let u2_b = &mut u2[b * n..][..n];
        let lines = u_b.iter_mut().zip(u2_b).zip(line_squares.iter_mut());
        for (((ui, qi), acc), &xi) in lines.zip(x_b) {
            let v = convert(xi, s);
            *ui = v;
            *qi = v * v;
            *acc += *qi;
        }
    }
}

/// Outputs an [`AdcBank`] converts in one run at least: a convolution reads a handful of
/// lines per pixel, too few for a vector loop, so runs of consecutive reads (rows of
/// `lines` outputs each) convert as one flat loop; wide arrays convert read by read.
const ADC_RUN_VALUES: usize = 256;

/// The ADCs of every sensed line of one array (one per line, each with its own full
/// scale), stored as arrays so that the outputs of a run of consecutive reads
/// ([`AdcBank::run_reads`]) convert in one vectorised loop.
#[derive(Clone, Debug, PartialEq)]
pub struct AdcBank {
    /// Largest code magnitude; `None` for ideal converters (no quantisation, no saturation).
    max_code: Option<f32>,
    /// Reads per run: enough for [`ADC_RUN_VALUES`] outputs, at least 1.
    run_reads: usize,
    /// Per line: codes per normalised current unit (1 / LSB), the lines repeated
    /// `run_reads` times (one run of reads).
    inv_step: Vec<f32>,
    /// Per line: LSB in normalised current units, repeated as `inv_step`.
    step: Vec<f32>,
}

impl AdcBank {
    /// ADCs with `bits` (`None`: ideal) and one full scale per line (normalised units). A
    /// line with a zero full scale (e.g. a column that carried no current during
    /// calibration) reads 0: its step and inverse step are both 0, which keeps every
    /// product finite (a tiny full scale would make 1/step overflow to infinity and
    /// 0 x infinity = NaN).
    pub fn new(bits: Option<u32>, full_scales: &[f32]) -> Self {
        let run_reads = (ADC_RUN_VALUES / full_scales.len().max(1)).max(1);
        let Some(b) = bits else {
            return Self {
                max_code: None,
                run_reads,
                inv_step: Vec::new(),
                step: Vec::new(),
            };
        };
        let quantizers: Vec<Quantizer> = full_scales
            .iter()
            .map(|&fs| {
                if fs > 0.0 && (1.0 / (fs / levels_per_side(b) as f32)).is_finite() {
                    Quantizer::new(b, fs)
                } else {
                    Quantizer::silent(b)
                }
            })
            .collect();
        let run = || quantizers.iter().cycle().take(run_reads * quantizers.len());
        Self {
            max_code: Some(levels_per_side(b) as f32),
            run_reads,
            inv_step: run().map(|q| q.inv_step).collect(),
            step: run().map(|q| q.step).collect(),
        }
    }

    /// Consecutive reads whose outputs one call of [`AdcBank::noisy_convert_accumulate`] or
    /// [`AdcBank::convert_accumulate`] may convert.
    pub fn run_reads(&self) -> usize {
        self.run_reads
    }

    /// LSB of line `line` in normalised current units (`None` for ideal converters).
    pub fn step(&self, line: usize) -> Option<f32> {
        self.max_code.map(|_| self.step[line])
    }

    /// y_j += factor * ADC_j(current_j + sqrt(variance_j + output_var) z_j) for every
    /// output j of up to [`AdcBank::run_reads`] consecutive reads (rows of one value per line):
    /// Gaussian noise of the given variance (standard normal draws `z`), then the ADC, in
    /// one fused loop, compiled for 256-bit vectors when the CPU has AVX2 (the same
    /// operations on every element). `variance` `None` means output noise only.
    pub fn noisy_convert_accumulate(
        &self,
        current: &[f32],
        variance: Option<&[f32]>,
        output_var: f32,
        z: &[f32],
        factor: f32,
        y: &mut [f32],
    ) {
        let noise = (variance, output_var, z);
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            unsafe { self.noisy_convert_avx2(current, noise, factor, y) };
            return;
        }
        self.noisy_convert_inline(current, noise, factor, y);
    }

    /// [`AdcBank::noisy_convert_accumulate`] compiled for 256-bit vectors.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn noisy_convert_avx2(
        &self,
        current: &[f32],
        noise: (Option<&[f32]>, f32, &[f32]),
        factor: f32,
        y: &mut [f32],
    ) {
        self.noisy_convert_inline(current, noise, factor, y);
    }

    #[inline(always)]
    fn noisy_convert_inline(
        &self,
        current: &[f32],
        (variance, output_var, z): (Option<&[f32]>, f32, &[f32]),
        factor: f32,
        y: &mut [f32],
    ) {
        let noisy = |j: usize, ij: f32| {
            let var = variance.map_or(0.0, |v| v[j].max(0.0)) + output_var;
            ij + var.sqrt() * z[j]
        };
        match (self.max_code, variance) {
            (Some(max_code), Some(var)) => {
                let adcs = self.inv_step.iter().zip(&self.step);
                let lines = y.iter_mut().zip(current).zip(var).zip(z).zip(adcs);
                for ((((yj, &ij), &vj), &zj), (&inv, &step)) in lines {
                    let s = ij + (vj.max(0.0) + output_var).sqrt() * zj;
                    let code = round_f32((s * inv).clamp(-max_code, max_code));
                    *yj += factor * code * step;
                }
            }
            (Some(max_code), None) => {
                for (j, ((yj, &ij), (&inv, &step))) in y
                    .iter_mut()
                    .zip(current)
                    .zip(self.inv_step.iter().zip(&self.step))
                    .enumerate()
                {
                    let code = round_f32((noisy(j, ij) * inv).clamp(-max_code, max_code));
                    *yj += factor * code * step;
                }
            }
            (None, _) => {
                for (j, (yj, &ij)) in y.iter_mut().zip(current).enumerate() {
                    *yj += factor * noisy(j, ij);
                }
            }
        }
    }

    /// y_j += factor * ADC_j(current_j) for every output j of up to [`AdcBank::run_reads`]
    /// consecutive reads.
    #[inline]
    pub fn convert_accumulate(&self, current: &[f32], factor: f32, y: &mut [f32]) {
        match self.max_code {
            None => {
                for (yj, &ij) in y.iter_mut().zip(current) {
                    *yj += factor * ij;
                }
            }
            Some(max_code) => {
                let lines = y
                    .iter_mut()
                    .zip(current)
                    .zip(&self.inv_step)
                    .zip(&self.step);
                for (((yj, &ij), &inv), &step) in lines {
                    let code = round_f32((ij * inv).clamp(-max_code, max_code));
                    *yj += factor * code * step;
                }
            }
        }
    }
}

/// Decision of a precharge sense amplifier comparing the two devices of a 2T2R pair
/// (Zhao et al., IEEE TCAS-I 2009; used for BNNs by Hirtzlin et al., Front. Neurosci.
/// 2020): the branch with the higher conductance discharges first. `g_pos_s`/`g_neg_s`
/// are the (noisy) read conductances, `offset_s` the comparator offset of this decision.
/// Returns +1 or -1.
#[inline]
pub fn pcsa_binary(g_pos_s: f64, g_neg_s: f64, offset_s: f64) -> i8 {
    if g_pos_s - g_neg_s + offset_s >= 0.0 {
        1
    } else {
        -1
    }
}

/// Ternary PCSA mode (Laborieux et al., IEEE TCAS-I 2021): when the two branches are too
/// close to resolve within the sensing window, the output is 0. Modelled as a dead zone
/// |G+ - G- + offset| < `dead_zone_s`.
#[inline]
pub fn pcsa_ternary(g_pos_s: f64, g_neg_s: f64, offset_s: f64, dead_zone_s: f64) -> i8 {
    let diff = g_pos_s - g_neg_s + offset_s;
    if diff.abs() < dead_zone_s {
        0
    } else if diff > 0.0 {
        1
    } else {
        -1
    }
}

/// Draw a comparator offset with standard deviation `sigma_s` (0 gives exactly 0).
#[inline]
pub fn draw_offset<R: Rng + ?Sized>(sigma_s: f64, rng: &mut R) -> f64 {
    if sigma_s > 0.0 {
        let z: f64 = StandardNormal.sample(rng);
        sigma_s * z
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantizer_rounds_to_nearest_level_and_saturates() {
        let q = Quantizer::new(3, 3.0); // levels -3..=3, step 1
        assert_eq!(q.step(), 1.0);
        assert_eq!(q.quantize(1.4), 1.0);
        assert_eq!(q.quantize(-1.6), -2.0);
        assert_eq!(q.quantize(7.0), 3.0);
        assert_eq!(q.quantize(-9.0), -3.0);
        assert_eq!(q.quantize(0.0), 0.0);
    }

    #[test]
    fn pcsa_ternary_has_a_dead_zone() {
        assert_eq!(pcsa_ternary(2.0, 1.0, 0.0, 0.5), 1);
        assert_eq!(pcsa_ternary(1.0, 2.0, 0.0, 0.5), -1);
        assert_eq!(pcsa_ternary(1.2, 1.0, 0.0, 0.5), 0);
        assert_eq!(pcsa_binary(1.0, 1.2, 0.0), -1);
    }
}
