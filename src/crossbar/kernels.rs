//! Small-batch read kernel: the mean currents and the read-noise variances of a few input
//! vectors in one pass over the array, with the variances stored in bfloat16.
//!
//! A single noisy read is memory-bound: it streams the normalised conductances G (f32)
//! and the per-device read-noise variances sigma^2 of every device once. Two f32 matrices
//! of a 512 x 512 tile (2 MB) do not fit in a 2 MB L2 cache together with the rest of
//! the working set; storing sigma^2 in bfloat16 (8 significant bits, the exponent range
//! of f32) cuts the traffic to 1.5 MB. The relative rounding error of each variance is at
//! most 2^-9 (0.2 %), i.e. at most 0.1 % on a noise standard deviation — far below how
//! well any device's read noise is known. Large batches keep f32 variances (they are
//! computed by GEMMs, which are compute-bound).
//!
//! Accumulation order is fixed (16 lanes, pairwise lane reduction, then the tail), and
//! every multiply-add is a fused multiply-add, so the AVX2 and portable paths give
//! bit-identical results.

/// A bfloat16 value: the upper 16 bits of an IEEE f32.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(transparent)]
pub(crate) struct Bf16(u16);

impl Bf16 {
    /// Round `v` to the nearest bfloat16 (ties to even). `v` must be finite.
    pub(crate) fn from_f32(v: f32) -> Self {
        let bits = v.to_bits();
        let rounding = 0x7FFF + ((bits >> 16) & 1);
        Bf16((bits.wrapping_add(rounding) >> 16) as u16)
    }

    /// The exact f32 value.
    #[inline(always)]
    pub(crate) fn to_f32(self) -> f32 {
        f32::from_bits(u32::from(self.0) << 16)
    }
}

/// Convert a slice to bfloat16.
pub(crate) fn to_bf16(values: &[f32]) -> Vec<Bf16> {
    values.iter().map(|&v| Bf16::from_f32(v)).collect()
}

/// Accumulator lanes of the dot products (two AVX2 registers).
const LANES: usize = 16;

/// The operands of one small-batch read: `g` and `var` are sensed-major
/// (`n_sensed x n_driven`, row-major), `u` and `u2` hold `nb` input vectors
/// (`nb x n_driven`) and their squares.
pub(crate) struct SmallBatch<'a> {
    pub g: &'a [f32],
    pub var: &'a [Bf16],
    pub u: &'a [f32],
    pub u2: &'a [f32],
    pub n_driven: usize,
    pub n_sensed: usize,
}

impl SmallBatch<'_> {
    /// Fill `current` and `variance` (`nb x n_sensed`, row-major) with
    /// `current[b, j] = sum_i g[j, i] u[b, i]` and `variance[b, j] = sum_i var[j, i] u2[b, i]`.
    pub(crate) fn run(&self, current: &mut [f32], variance: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports the features `run_avx2` is compiled for.
            unsafe { self.run_avx2(current, variance) };
            return;
        }
        self.rows::<Portable>(current, variance);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn run_avx2(&self, current: &mut [f32], variance: &mut [f32]) {
        self.rows::<avx2::Avx2>(current, variance);
    }

    /// Rows of the array outermost, so that each row is read from memory once and reused
    /// from L1 for every vector of the batch.
    #[inline(always)]
    fn rows<K: DotKernels>(&self, current: &mut [f32], variance: &mut [f32]) {
        let (n, m) = (self.n_driven, self.n_sensed);
        let nb = self.u.len() / n;
        let rows = self.g.chunks_exact(n).zip(self.var.chunks_exact(n));
        for (j, (g_row, var_row)) in rows.enumerate() {
            for b in 0..nb {
                let range = b * n..(b + 1) * n;
                current[b * m + j] = K::dot(g_row, &self.u[range.clone()]);
                variance[b * m + j] = K::dot_bf16(var_row, &self.u2[range]);
            }
        }
    }
}

/// Dot products in the fixed order of [`Portable`]: lane `l` of 16 accumulates the
/// elements `i = l (mod 16)` of the whole 16-element blocks with fused multiply-adds,
/// the lanes are summed pairwise (lane l += lane l + 8, then + 4, + 2, + 1), and the
/// tail (the last `len mod 16` elements, multiply-added in order) is added last.
trait DotKernels {
    fn dot(a: &[f32], b: &[f32]) -> f32;
    fn dot_bf16(a: &[Bf16], b: &[f32]) -> f32;
}

/// The reference implementation of [`DotKernels`], for any CPU.
struct Portable;

impl DotKernels for Portable {
    #[inline(always)]
    fn dot(a: &[f32], b: &[f32]) -> f32 {
        dot_with(a, b, |x| x)
    }

    #[inline(always)]
    fn dot_bf16(a: &[Bf16], b: &[f32]) -> f32 {
        dot_with(a, b, Bf16::to_f32)
    }
}

#[inline(always)]
fn dot_with<T: Copy>(a: &[T], b: &[f32], to_f32: impl Fn(T) -> f32) -> f32 {
    let (a_blocks, b_blocks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (a_tail, b_tail) = (a_blocks.remainder(), b_blocks.remainder());
    let mut acc = [0f32; LANES];
    for (x, y) in a_blocks.zip(b_blocks) {
        for l in 0..LANES {
            acc[l] = to_f32(x[l]).mul_add(y[l], acc[l]);
        }
    }
    let mut width = LANES / 2;
    while width > 0 {
        for l in 0..width {
            acc[l] += acc[l + width];
        }
        width /= 2;
    }
    acc[0] + tail_dot(a_tail, b_tail, to_f32)
}

#[inline(always)]
fn tail_dot<T: Copy>(a: &[T], b: &[f32], to_f32: impl Fn(T) -> f32) -> f32 {
    a.iter()
        .zip(b)
        .fold(0.0, |s, (&x, &y)| to_f32(x).mul_add(y, s))
}

/// [`DotKernels`] with AVX2 and FMA intrinsics: lanes 0-7 in one register, 8-15 in a
/// second, so the order of every operation is that of [`Portable`].
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Bf16, DotKernels, LANES, tail_dot};
    use std::arch::x86_64::*;

    pub(super) struct Avx2;

    impl DotKernels for Avx2 {
        #[inline(always)]
        fn dot(a: &[f32], b: &[f32]) -> f32 {
            // SAFETY: only instantiated inside functions compiled for AVX2 and FMA.
            unsafe { dot(a, b) }
        }

        #[inline(always)]
        fn dot_bf16(a: &[Bf16], b: &[f32]) -> f32 {
            // SAFETY: as above.
            unsafe { dot_bf16(a, b) }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    fn dot(a: &[f32], b: &[f32]) -> f32 {
        let full = a.len().min(b.len()) / LANES * LANES;
        let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        for i in (0..full).step_by(LANES) {
            // SAFETY: i + 16 <= full <= a.len(), b.len().
            unsafe {
                let (pa, pb) = (a.as_ptr().add(i), b.as_ptr().add(i));
                lo = _mm256_fmadd_ps(_mm256_loadu_ps(pa), _mm256_loadu_ps(pb), lo);
                hi = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(8)), _mm256_loadu_ps(pb.add(8)), hi);
            }
        }
        reduce(lo, hi) + tail_dot(&a[full..], &b[full..], |x| x)
    }

    #[target_feature(enable = "avx2,fma")]
    fn dot_bf16(a: &[Bf16], b: &[f32]) -> f32 {
        let full = a.len().min(b.len()) / LANES * LANES;
        let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        for i in (0..full).step_by(LANES) {
            // SAFETY: i + 16 <= full <= a.len(), b.len(); Bf16 is a transparent u16.
            unsafe {
                let (pa, pb) = (a.as_ptr().add(i).cast::<__m128i>(), b.as_ptr().add(i));
                lo = _mm256_fmadd_ps(widen(_mm_loadu_si128(pa)), _mm256_loadu_ps(pb), lo);
                let a_hi = widen(_mm_loadu_si128(pa.add(1)));
                hi = _mm256_fmadd_ps(a_hi, _mm256_loadu_ps(pb.add(8)), hi);
            }
        }
        reduce(lo, hi) + tail_dot(&a[full..], &b[full..], Bf16::to_f32)
    }

    /// Eight bfloat16 values to f32 (shift into the upper half of each 32-bit lane).
    #[target_feature(enable = "avx2")]
    fn widen(v: __m128i) -> __m256 {
        _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(v)))
    }

    /// Pairwise sum of the 16 lanes, in the order of the portable reduction.
    #[target_feature(enable = "avx2")]
    fn reduce(lo: __m256, hi: __m256) -> f32 {
        let v = _mm256_add_ps(lo, hi);
        let s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
        _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps::<1>(s2, s2)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounds_to_nearest_within_half_an_ulp() {
        for &v in &[1.0f32, 0.1, 1.2345, 1e-12, 6.02e23, 0.0] {
            let r = Bf16::from_f32(v).to_f32();
            assert!((r - v).abs() <= v.abs() * 2f32.powi(-9), "{v} -> {r}");
        }
        // Ties go to the even mantissa: 1 + 2^-8 lies halfway between 1 and 1 + 2^-7.
        assert_eq!(Bf16::from_f32(1.0 + 2f32.powi(-8)).to_f32(), 1.0);
    }

    #[test]
    fn fused_kernel_matches_f64_reference() {
        let (n, m, nb) = (37, 5, 3);
        let g: Vec<f32> = (0..n * m)
            .map(|k| ((k * 7919) % 101) as f32 / 50.0 - 1.0)
            .collect();
        let var_f32: Vec<f32> = (0..n * m).map(|k| ((k * 31) % 17) as f32 * 1e-3).collect();
        let var = to_bf16(&var_f32);
        let u: Vec<f32> = (0..n * nb)
            .map(|k| ((k * 13) % 11) as f32 / 10.0 - 0.5)
            .collect();
        let u2: Vec<f32> = u.iter().map(|v| v * v).collect();
        let batch = SmallBatch {
            g: &g,
            var: &var,
            u: &u,
            u2: &u2,
            n_driven: n,
            n_sensed: m,
        };
        let (mut current, mut variance) = (vec![0f32; nb * m], vec![0f32; nb * m]);
        batch.run(&mut current, &mut variance);
        let (mut c2, mut v2) = (vec![0f32; nb * m], vec![0f32; nb * m]);
        batch.rows::<Portable>(&mut c2, &mut v2);
        assert_eq!(
            (&current, &variance),
            (&c2, &v2),
            "dispatch changed the result"
        );
        for b in 0..nb {
            for j in 0..m {
                let range = j * n..(j + 1) * n;
                let ub = &u[b * n..(b + 1) * n];
                let exact: f64 = g[range.clone()]
                    .iter()
                    .zip(ub)
                    .map(|(a, x)| f64::from(a * x))
                    .sum();
                let exact_var: f64 = var_f32[range]
                    .iter()
                    .zip(ub)
                    .map(|(a, x)| f64::from(a * x * x))
                    .sum();
                assert!((f64::from(current[b * m + j]) - exact).abs() < 1e-5);
                assert!((f64::from(variance[b * m + j]) - exact_var).abs() <= exact_var * 3e-3);
            }
        }
    }
}
