//! The forward read of a convolution on digital weights straight from its input images,
//! without building the im2col patches (a "direct" or implicit-GEMM convolution).
//!
//! Every output value is still the dot product of one patch with one kernel, summed in a
//! fixed order: fused multiply-add chains over the patch's taps in ascending order
//! (channel-major, then kernel row, then column, the im2col column order), each chain
//! [`CHAIN_TAPS`] taps long and starting from zero, the chains' sums added in order. That
//! is the order of faer's blocked GEMM kernel, whose depth blocks hold 512 taps on this
//! machine for the convolutions of the EP ConvNet, so the direct read reproduces the bits
//! of im2col then GEMM there (the committed EP ConvNet results were computed that way);
//! the order itself, and hence every result, is fixed whatever the machine or the thread
//! count.
//!
//! The kernel keeps a block of output pixels times all output channels in AVX-512
//! registers (e.g. 6 pixels x 64 channels in 24 registers) and, for each tap, broadcasts
//! each pixel's input value against one row of the transposed kernel matrix: no patch is
//! written or packed, and each kernel row loaded serves the whole block of pixels. Where
//! it does not apply (grouped convolutions, other channel counts, processors without
//! AVX-512) callers take the im2col read. The kernel matrix is read transposed, one row of
//! output channels per tap; digital synapses keep that copy from one read to the next
//! until their weights change.

use rayon::prelude::*;

use super::conv::ConvGeometry;

/// Taps summed per fused multiply-add chain (see the module documentation).
pub const CHAIN_TAPS: usize = 512;
/// The register blocks of the direct read, one per output channel count it serves:
/// `16·Q` channels in `Q` AVX-512 registers per pixel, `R` pixels per block (`Q·R` sums
/// plus `Q` kernel values fill at most 32 registers).
#[derive(Clone, Copy, Debug)]
enum RegisterBlock {
    /// 32 channels, 12 pixels.
    Channels32,
    /// 64 channels, 6 pixels.
    Channels64,
    /// 128 channels, 3 pixels.
    Channels128,
}

impl ConvGeometry {
    /// The register block of the direct read of this convolution on this processor, if it
    /// applies: not to grouped convolutions, `C_out` other than 32, 64 or 128, or
    /// processors without AVX-512F and FMA.
    fn register_block(&self) -> Option<RegisterBlock> {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if self.groups != 1 || !has!("avx512f") || !has!("fma") {
                return None;
            }
            match self.out_channels {
                32 => Some(RegisterBlock::Channels32),
                64 => Some(RegisterBlock::Channels64),
                128 => Some(RegisterBlock::Channels128),
                _ => None,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        None
    }

    /// Whether [`ConvGeometry::read_direct`] applies (see `register_block`).
    pub fn reads_direct(&self) -> bool {
        self.register_block().is_some()
    }

    /// `y` (`(batch·pixels) x C_out`, one row per output pixel as the im2col read gives)
    /// `=` the convolution of the NCHW `images` with the kernel matrix `W` (`C_out x
    /// C_in·k·k`), read directly (see the module documentation) from `weight_t = Wᵀ`
    /// (`C_in·k·k x C_out`, row-major: one row of output channels per tap). Returns
    /// `false`, writing nothing, where the direct read does not apply (see
    /// [`ConvGeometry::reads_direct`]).
    pub fn read_direct(
        &self,
        images: &[f32],
        batch: usize,
        weight_t: &[f32],
        y: &mut [f32],
    ) -> bool {
        assert!(
            images.len() == batch * self.input_len()
                && weight_t.len() == self.out_channels * self.patch_len()
                && y.len() == batch * self.pixels() * self.out_channels,
            "images, kernel matrix or output of the wrong length"
        );
        let Some(block) = self.register_block() else {
            return false;
        };
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `register_block` checked AVX-512F and FMA and chose the block of this
        // channel count.
        unsafe {
            match block {
                RegisterBlock::Channels32 => self.read_direct_with::<2, 12>(images, weight_t, y),
                RegisterBlock::Channels64 => self.read_direct_with::<4, 6>(images, weight_t, y),
                RegisterBlock::Channels128 => self.read_direct_with::<8, 3>(images, weight_t, y),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = block;
        true
    }

    /// Offset of every tap of a patch (im2col column order) from its output pixel's first
    /// tap, in an image padded to `(in_h + 2p) x (in_w + 2p)`.
    fn tap_offsets(&self) -> Vec<usize> {
        let (k, (h, w)) = (self.kernel, self.padded());
        (0..self.in_channels)
            .flat_map(|c| (0..k).flat_map(move |ky| (0..k).map(move |kx| (c * h + ky) * w + kx)))
            .collect()
    }

    /// Height and width of the zero-padded input.
    fn padded(&self) -> (usize, usize) {
        (self.in_h + 2 * self.padding, self.in_w + 2 * self.padding)
    }

    /// `image` (NCHW, one image) with `padding` zeros on every side, into `out`.
    fn pad_into(&self, image: &[f32], out: &mut Vec<f32>) {
        let (h, w) = self.padded();
        out.clear();
        out.resize(self.in_channels * h * w, 0.0);
        for (plane, padded) in image
            .chunks_exact(self.in_h * self.in_w)
            .zip(out.chunks_exact_mut(h * w))
        {
            for (row, dst) in plane
                .chunks_exact(self.in_w)
                .zip(padded.chunks_exact_mut(w).skip(self.padding))
            {
                dst[self.padding..self.padding + self.in_w].copy_from_slice(row);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
impl ConvGeometry {
    /// [`ConvGeometry::read_direct`] with `16·Q` output channels, `R` output pixels per
    /// block of registers; images in parallel.
    ///
    /// # Safety
    /// The processor must support AVX-512F and FMA; `out_channels == 16·Q`.
    #[target_feature(enable = "avx512f,fma")]
    unsafe fn read_direct_with<const Q: usize, const R: usize>(
        &self,
        images: &[f32],
        weight_t: &[f32],
        y: &mut [f32],
    ) {
        let (n, taps) = (self.out_channels, self.patch_len());
        let offsets = self.tap_offsets();
        let (out_w, pixels, (_, padded_w)) = (self.out_w(), self.pixels(), self.padded());
        // Offset of each output pixel's first tap in the padded image.
        let origins: Vec<usize> = (0..pixels)
            .map(|p| (p / out_w * self.stride) * padded_w + p % out_w * self.stride)
            .collect();
        y.par_chunks_mut(pixels * n)
            .zip(images.par_chunks(self.input_len()))
            .for_each_init(Vec::new, |padded, (y_image, image)| {
                let image = if self.padding == 0 {
                    image
                } else {
                    self.pad_into(image, padded);
                    &padded[..]
                };
                let last = origins[pixels - 1] + offsets[taps - 1];
                assert!(last < image.len(), "a tap reads past the padded image");
                for (block, y_block) in origins.chunks(R).zip(y_image.chunks_mut(R * n)) {
                    // A short last block repeats its last pixel (computed, not stored).
                    let bases = std::array::from_fn(|r| block[r.min(block.len() - 1)]);
                    // SAFETY: AVX-512F and FMA (this function's contract); every tap of
                    // every pixel is inside `image` (checked above for the largest).
                    unsafe { pixel_block::<Q, R>(image, (&offsets, bases), weight_t, y_block) };
                }
            });
    }
}

/// The outputs of up to `R` pixels (`y`: `R x 16·Q`, or fewer rows for a short block) with
/// first taps `bases` in `image`, taps at `offsets` from them, weights `weight_t` (`taps x
/// 16·Q`): fused multiply-add chains of [`CHAIN_TAPS`] taps in registers, each added to the
/// sum of the chains before it.
///
/// # Safety
/// The processor must support AVX-512F and FMA; every `bases[r] + offsets[j]` is inside
/// `image` and `weight_t` holds `offsets.len()` rows of `16·Q`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
#[inline]
unsafe fn pixel_block<const Q: usize, const R: usize>(
    image: &[f32],
    (offsets, bases): (&[usize], [usize; R]),
    weight_t: &[f32],
    y: &mut [f32],
) {
    use std::arch::x86_64::*;
    let n = 16 * Q;
    let rows = y.len() / n;
    for (chain, start) in (0..offsets.len()).step_by(CHAIN_TAPS).enumerate() {
        let mut sums = [[_mm512_setzero_ps(); Q]; R];
        let taps = &offsets[start..(start + CHAIN_TAPS).min(offsets.len())];
        for (j, &offset) in (start..).zip(taps) {
            let row = weight_t[j * n..][..n].as_ptr();
            // SAFETY: `row` holds `n = 16·Q` values.
            let w: [__m512; Q] =
                std::array::from_fn(|q| unsafe { _mm512_loadu_ps(row.add(16 * q)) });
            for (sum, &base) in sums.iter_mut().zip(&bases) {
                // SAFETY: inside `image` (this function's contract).
                let x = _mm512_set1_ps(unsafe { *image.get_unchecked(base + offset) });
                for (s, &w) in sum.iter_mut().zip(&w) {
                    *s = _mm512_fmadd_ps(x, w, *s);
                }
            }
        }
        for (sum, out) in sums.iter().zip(y.chunks_exact_mut(n)).take(rows) {
            for (q, &s) in sum.iter().enumerate() {
                let dst = out[16 * q..][..16].as_mut_ptr();
                // SAFETY: `dst` holds 16 values.
                unsafe {
                    let total = if chain == 0 {
                        s
                    } else {
                        _mm512_add_ps(_mm512_loadu_ps(dst), s)
                    };
                    _mm512_storeu_ps(dst, total);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    /// The documented order, spelled out: for every output pixel and channel, chains of
    /// `CHAIN_TAPS` fused multiply-adds over the im2col patch from zero, summed in order.
    fn reference(conv: &ConvGeometry, images: &[f32], batch: usize, weight: &[f32]) -> Vec<f32> {
        let patches = conv.im2col(images, batch);
        let taps = conv.patch_len();
        let mut y = Vec::new();
        for patch in patches.chunks_exact(taps) {
            for kernel in weight.chunks_exact(taps) {
                let mut total = 0f32;
                for (chain, start) in (0..taps).step_by(CHAIN_TAPS).enumerate() {
                    let end = (start + CHAIN_TAPS).min(taps);
                    let sum = (start..end).fold(0f32, |s, j| patch[j].mul_add(kernel[j], s));
                    total = if chain == 0 { sum } else { total + sum };
                }
                y.push(total);
            }
        }
        y
    }

    /// The direct read gives the documented sums bit for bit: 32, 64 and 128 output
    /// channels (their register blocks of 12, 6 and 3 pixels, with short last blocks),
    /// one chain and two (24 channels of 5 x 5 taps: 600 > 512), stride 2 and padding, and
    /// rectified inputs (exact zeros, as an EP layer's rates). Where it does not apply
    /// (other channel counts, groups) it declines and writes nothing.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_direct_read_sums_each_patch_in_the_documented_order() {
        use std::arch::is_x86_feature_detected as has;
        if !has!("avx512f") || !has!("fma") {
            eprintln!("no AVX-512F and FMA: the direct read does not apply here");
            return;
        }
        let mut rng = crate::rng::stream(11, &[0]);
        for (input, out, k, stride, padding, batch) in [
            ([32, 12, 12], 64, 5, 1, 0, 3),
            ([1, 28, 28], 32, 5, 1, 0, 2),
            ([24, 9, 9], 64, 5, 1, 0, 2),
            ([3, 11, 10], 128, 3, 2, 1, 2),
            ([6, 7, 7], 32, 3, 1, 2, 1),
        ] {
            let conv = ConvGeometry::new(input, out, k, stride, padding).unwrap();
            let images: Vec<f32> = (0..batch * conv.input_len())
                .map(|_| rng.random_range(-0.5f32..1.0).max(0.0))
                .collect();
            let weight: Vec<f32> = (0..out * conv.patch_len())
                .map(|_| rng.random_range(-1.0f32..1.0))
                .collect();
            let mut y = vec![f32::NAN; batch * conv.pixels() * out];
            let weight_t = crate::linalg::transpose(&weight, out, conv.patch_len());
            assert!(
                conv.read_direct(&images, batch, &weight_t, &mut y),
                "{conv:?}"
            );
            let want = reference(&conv, &images, batch, &weight);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&y), bits(&want), "{conv:?}");
        }
        let conv = ConvGeometry::new([2, 6, 6], 48, 3, 1, 0).unwrap();
        let mut y = vec![f32::NAN; conv.pixels() * 48];
        let (images, weight) = (
            vec![1.0; conv.input_len()],
            vec![1.0; 48 * conv.patch_len()],
        );
        assert!(!conv.reads_direct());
        assert!(!conv.read_direct(&images, 1, &weight, &mut y));
        assert!(y.iter().all(|v| v.is_nan()), "a declined read wrote");
        let grouped = ConvGeometry {
            groups: 2,
            ..ConvGeometry::new([4, 6, 6], 32, 3, 1, 0).unwrap()
        };
        let mut y = vec![f32::NAN; grouped.pixels() * 32];
        let weight = vec![1.0; 32 * grouped.patch_len()];
        let images = vec![1.0; grouped.input_len()];
        assert!(!grouped.reads_direct());
        assert!(!grouped.read_direct(&images, 1, &weight, &mut y));
    }
}
