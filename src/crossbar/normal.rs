//! Fast standard-normal sampling for the read path: a vectorised Box–Muller transform in f32.
//!
//! Each 64-bit generator output gives two independent N(0, 1) samples (Box & Muller,
//! Ann. Math. Stat. 29, 1958): r = sqrt(-2 ln u1) from the low 32 bits and a uniform angle
//! theta from the high 32 bits, z1 = r cos(theta), z2 = r sin(theta). The angle is drawn
//! as a quadrant k (2 bits, a rotation by k x 90 degrees) plus a uniform offset in
//! [-pi/4, pi/4) (30 bits), which is uniform on the circle, and ln, sin and cos are
//! branch-free polynomials (atanh series for ln on [1/sqrt 2, sqrt 2), Taylor series for
//! sin and cos on [-pi/4, pi/4]; truncation errors below 1e-8, under f32 resolution), so
//! the loop vectorises. u1 = (k + 1/2) 2^-31 (k a 31-bit integer) truncates the radius at
//! sqrt(2 ln 2^32) = 6.66 sigma (probability beyond: 2.7e-11). Plain f32 arithmetic without fused
//! multiply-adds: the same bits on every CPU and code path.
//!
//! The first half of `out` receives the cosine samples and the second half the sine
//! samples of the same pairs.

use rand::Rng;

/// 2^-31: scale of a 31-bit uniform integer to [0, 1).
const U31_SCALE: f32 = 1.0 / 2_147_483_648.0;
/// 2^-30 x pi/2: scale of a 30-bit integer to an angle in [0, pi/2).
const ANGLE_SCALE: f32 = std::f32::consts::FRAC_PI_2 / 1_073_741_824.0;

/// Natural logarithm of a positive, normal f32 (branch-free, relative error ~1e-7).
#[inline(always)]
fn ln_f32(x: f32) -> f32 {
    let bits = x.to_bits();
    let mut exponent = ((bits >> 23) as i32 - 127) as f32;
    let mut m = f32::from_bits((bits & 0x007F_FFFF) | 0x3F80_0000); // [1, 2)
    let high = m > std::f32::consts::SQRT_2;
    m = if high { 0.5 * m } else { m };
    exponent += if high { 1.0 } else { 0.0 };
    // ln m = 2 atanh(s), s = (m - 1)/(m + 1) in [-0.172, 0.172].
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let series = 1.0 + s2 * (1.0 / 3.0 + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0))));
    exponent * std::f32::consts::LN_2 + 2.0 * s * series
}

/// (cos a, sin a) for |a| <= pi/4 (Taylor series to a^8 / a^9).
#[inline(always)]
fn cos_sin_f32(a: f32) -> (f32, f32) {
    let a2 = a * a;
    let cos =
        1.0 + a2 * (-1.0 / 2.0 + a2 * (1.0 / 24.0 + a2 * (-1.0 / 720.0 + a2 * (1.0 / 40_320.0))));
    let sin = a
        * (1.0
            + a2 * (-1.0 / 6.0
                + a2 * (1.0 / 120.0 + a2 * (-1.0 / 5_040.0 + a2 * (1.0 / 362_880.0)))));
    (cos, sin)
}

/// Two normal samples from 64 random bits, given as their low and high 32-bit words (bit 0
/// of the low word is unused).
#[inline(always)]
fn box_muller(low: u32, high: u32) -> (f32, f32) {
    // 31 bits through a signed conversion (vectorises without AVX-512).
    let u1 = (((low >> 1) as i32) as f32 + 0.5) * U31_SCALE;
    let radius = (-2.0 * ln_f32(u1)).sqrt();
    let offset = ((high >> 2) as i32) as f32 * ANGLE_SCALE - std::f32::consts::FRAC_PI_4;
    let (c, s) = cos_sin_f32(offset);
    // Rotate by quadrant k x 90 degrees: bit 0 swaps (c, s) -> (-s, c), bit 1 negates.
    let swap = high & 1 != 0;
    let (c, s) = if swap { (-s, c) } else { (c, s) };
    let flip = if high & 2 != 0 { -1.0 } else { 1.0 };
    (radius * c * flip, radius * s * flip)
}

/// `N` random words split into low and high halves (separate u32 arrays let the transform
/// run 8 lanes wide).
struct Words<const N: usize> {
    low: [u32; N],
    high: [u32; N],
}

impl<const N: usize> Words<N> {
    /// All-zero words.
    fn zero() -> Self {
        Words {
            low: [0; N],
            high: [0; N],
        }
    }

    /// The next `count` (at most `N`) words of `rng`, in order; the rest zero.
    fn draw<G: Rng + ?Sized>(rng: &mut G, count: usize) -> Self {
        let mut words = Self::zero();
        words.draw_at(0, rng, count);
        words
    }

    /// Words `start..start + count` from the next `count` words of `rng`, in order.
    fn draw_at<G: Rng + ?Sized>(&mut self, start: usize, rng: &mut G, count: usize) {
        let slots = self.low[start..].iter_mut().zip(&mut self.high[start..]);
        for (lo, hi) in slots.take(count) {
            let bits = rng.next_u64();
            *lo = bits as u32;
            *hi = (bits >> 32) as u32;
        }
    }
}

#[inline(always)]
fn transform<const N: usize>(words: &Words<N>, first: &mut [f32], second: &mut [f32]) {
    let bits = words.low.iter().zip(&words.high);
    for (((&lo, &hi), z1), z2) in bits.zip(first.iter_mut()).zip(second.iter_mut()) {
        let (a, c) = box_muller(lo, hi);
        *z1 = a;
        *z2 = c;
    }
}

/// [`transform`] compiled for 256-bit vectors.
///
/// # Safety
/// The CPU must support AVX2. (An `unsafe fn` rather than a safe `#[target_feature]`
/// function so that the crate builds with Rust 1.85.)
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn transform_avx2<const N: usize>(words: &Words<N>, first: &mut [f32], second: &mut [f32]) {
    transform(words, first, second);
}

/// Apply [`box_muller`] to every word, with 256-bit vectors when the CPU has AVX2.
fn transform_dispatch<const N: usize>(words: &Words<N>, first: &mut [f32], second: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        unsafe { transform_avx2(words, first, second) };
        return;
    }
    transform(words, first, second);
}

/// Words of random bits converted per batch (stack buffer).
const BLOCK: usize = 256;

/// Lanes of one 256-bit vector of f32: up to this many pairs are transformed as one full
/// vector into scratch lanes (the unused lanes cost nothing extra), which spares short
/// outputs — a convolution reads a handful of channels per pixel — the scalar tail of the
/// vector loop and the zeroing of a whole [`BLOCK`].
const LANES: usize = 8;

/// Fill `out` with independent standard-normal f32 samples.
pub fn fill_standard_normal<G: Rng + ?Sized>(rng: &mut G, out: &mut [f32]) {
    let pairs = out.len() / 2;
    let (first, rest) = out.split_at_mut(pairs);
    let (second, odd) = rest.split_at_mut(pairs);
    if pairs <= LANES {
        let words = Words::<LANES>::draw(rng, pairs);
        let (mut cos, mut sin) = ([0f32; LANES], [0f32; LANES]);
        transform_dispatch(&words, &mut cos, &mut sin);
        first.copy_from_slice(&cos[..pairs]);
        second.copy_from_slice(&sin[..pairs]);
    } else {
        for (f, s) in first.chunks_mut(BLOCK).zip(second.chunks_mut(BLOCK)) {
            let words = Words::<BLOCK>::draw(rng, f.len());
            transform_dispatch(&words, f, s);
        }
    }
    if let Some(last) = odd.first_mut() {
        let bits = rng.next_u64();
        *last = box_muller(bits as u32, (bits >> 32) as u32).0;
    }
}

/// Fill `out`, `rngs.len()` rows of `n = out.len() / rngs.len()` values, so that row `b`
/// is exactly what [`fill_standard_normal`] draws from `rngs[b]`, bit for bit. The words of
/// several short rows (a read of a few outputs per vector, each vector with its own noise
/// stream) are transformed together in full vectors instead of row by row.
pub fn fill_standard_normal_rows<G: Rng>(rngs: &mut [G], out: &mut [f32]) {
    let Some(n) = out.len().checked_div(rngs.len()) else {
        return;
    };
    let (pairs, odd) = (n / 2, n % 2);
    let per_row = pairs + odd;
    if per_row == 0 || per_row > BLOCK / 2 {
        for (rng, row) in rngs.iter_mut().zip(out.chunks_exact_mut(n.max(1))) {
            fill_standard_normal(rng, row);
        }
        return;
    }
    let rows_per_block = BLOCK / per_row;
    let blocks = rngs.chunks_mut(rows_per_block);
    for (rngs, out) in blocks.zip(out.chunks_mut(rows_per_block * n)) {
        let mut words = Words::<BLOCK>::zero();
        for (b, rng) in rngs.iter_mut().enumerate() {
            words.draw_at(b * per_row, rng, per_row);
        }
        let used = rngs.len() * per_row;
        let (mut cos, mut sin) = ([0f32; BLOCK], [0f32; BLOCK]);
        transform_dispatch(&words, &mut cos[..used], &mut sin[..used]);
        for (row, w) in out.chunks_exact_mut(n).zip((0..).step_by(per_row)) {
            row[..pairs].copy_from_slice(&cos[w..w + pairs]);
            row[pairs..2 * pairs].copy_from_slice(&sin[w..w + pairs]);
            if odd == 1 {
                row[2 * pairs] = cos[w + pairs];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The polynomial ln, cos and sin match the standard library to f32 precision.
    #[test]
    fn polynomials_match_the_standard_library() {
        for k in 1..10_000 {
            let x = k as f32 * 1e-4;
            let err = (ln_f32(x) - x.ln()).abs();
            assert!(err <= 2e-7 * x.ln().abs().max(1.0), "ln({x}): {err}");
        }
        assert!((ln_f32(2.3e-10) - 2.3e-10f32.ln()).abs() < 1e-5);
        for k in -1000..=1000 {
            let a = k as f32 * std::f32::consts::FRAC_PI_4 / 1000.0;
            let (c, s) = cos_sin_f32(a);
            assert!(
                (c - a.cos()).abs() < 3e-7 && (s - a.sin()).abs() < 3e-7,
                "angle {a}"
            );
        }
    }

    /// Every length draws one word per pair, in order, and the i-th pair of the cosine and
    /// sine halves is exactly `box_muller` of the i-th word (bit for bit, whichever vector
    /// or scalar path computes it); an odd length takes the cosine of one more word.
    #[test]
    fn every_length_is_the_scalar_transform_of_the_words_in_order() {
        for n in (0..40).chain([255, 256, 511, 512, 513, 1000]) {
            let mut z = vec![f32::NAN; n];
            fill_standard_normal(&mut crate::rng::stream(9, &[n as u64]), &mut z);
            let mut words = crate::rng::stream(9, &[n as u64]);
            let mut next = || {
                let bits = words.next_u64();
                box_muller(bits as u32, (bits >> 32) as u32)
            };
            let pairs = n / 2;
            let mut want = vec![0f32; n];
            for i in 0..pairs {
                (want[i], want[pairs + i]) = next();
            }
            if n % 2 == 1 {
                want[n - 1] = next().0;
            }
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&z), bits(&want), "length {n}");
        }
    }

    /// Rows filled together are, bit for bit, the rows filled one by one from the same
    /// generators, for short and long rows and partial blocks.
    #[test]
    fn rows_filled_together_equal_rows_filled_one_by_one() {
        for n in [0, 1, 2, 5, 6, 16, 17, 84, 120, 255, 300, 1000] {
            for rows in [1, 3, 85, 256, 300] {
                let gens = || -> Vec<_> {
                    (0..rows)
                        .map(|b| crate::rng::stream(4, &[n as u64, b as u64]))
                        .collect()
                };
                let mut together = vec![f32::NAN; rows * n];
                fill_standard_normal_rows(&mut gens(), &mut together);
                let mut one_by_one = vec![f32::NAN; rows * n];
                let mut g = gens();
                for (rng, row) in g.iter_mut().zip(one_by_one.chunks_exact_mut(n.max(1))) {
                    fill_standard_normal(rng, row);
                }
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&together), bits(&one_by_one), "{rows} rows of {n}");
            }
        }
    }

    /// Moments and a binned chi-square test against the normal density (1e6 samples,
    /// fixed seed): mean within 4 standard errors of 0, variance within 4 sigma of 1,
    /// fourth moment within 4 sigma of 3, and 40 bins over [-4, 4] plus two tails give a
    /// chi-square below 85 (the 0.9999 quantile of chi-square with 41 degrees of freedom
    /// is about 85). The cosine and sine halves are checked to be uncorrelated.
    #[test]
    fn samples_follow_the_standard_normal() {
        let n = 1_000_000;
        let mut rng = crate::rng::stream(5, &[1]);
        let mut z = vec![0f32; n];
        fill_standard_normal(&mut rng, &mut z);
        let nf = n as f64;
        let moment = |p: i32| z.iter().map(|&v| f64::from(v).powi(p)).sum::<f64>() / nf;
        let (mean, var, fourth) = (moment(1), moment(2), moment(4));
        assert!(mean.abs() < 4.0 / nf.sqrt(), "mean {mean}");
        assert!(
            (var - 1.0).abs() < 4.0 * (2.0 / nf).sqrt(),
            "variance {var}"
        );
        assert!(
            (fourth - 3.0).abs() < 4.0 * (96.0 / nf).sqrt(),
            "fourth moment {fourth}"
        );
        let half = n / 2;
        let corr = (0..half)
            .map(|k| f64::from(z[k]) * f64::from(z[half + k]))
            .sum::<f64>()
            / half as f64;
        assert!(
            corr.abs() < 4.0 / (half as f64).sqrt(),
            "pair correlation {corr}"
        );

        let pdf = |x: f64| (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let integrate = |a: f64, b: f64| {
            let steps = 200;
            let h = (b - a) / f64::from(steps);
            let weight = |k: i32| match k {
                0 => 1.0,
                k if k == steps => 1.0,
                k if k % 2 == 1 => 4.0,
                _ => 2.0,
            };
            (0..=steps)
                .map(|k| weight(k) * pdf(a + h * f64::from(k)))
                .sum::<f64>()
                * h
                / 3.0
        };
        let mut probs: Vec<f64> = (0..40)
            .map(|k| {
                let a = -4.0 + 0.2 * f64::from(k);
                integrate(a, a + 0.2)
            })
            .collect();
        let outside = (1.0 - integrate(-4.0, 4.0)) / 2.0;
        probs.push(outside);
        probs.push(outside);
        let mut counts = vec![0f64; probs.len()];
        for &v in &z {
            let v = f64::from(v);
            let bin = if v < -4.0 {
                40
            } else if v >= 4.0 {
                41
            } else {
                (((v + 4.0) / 0.2) as usize).min(39)
            };
            counts[bin] += 1.0;
        }
        let chi2: f64 = counts
            .iter()
            .zip(&probs)
            .map(|(c, p)| (c - nf * p).powi(2) / (nf * p))
            .sum();
        assert!(chi2 < 85.0, "chi-square {chi2}");
    }
}
