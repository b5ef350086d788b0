//! Convolution as matrix products (the unrolled mapping of aihwkit's `AnalogConv2d` and
//! NeuroSim): a `Conv2d` layer's kernel is a weight matrix `C_out x (C_in·k·k)` (PyTorch's
//! OIHW weight flattened row by row), and every output pixel is one read of that matrix with
//! the pixel's input patch. [`ConvGeometry::im2col`] lays the patches of a batch out as rows
//! (one per output pixel, batch-major then row-major over the output image), so one batched
//! read of any [`crate::synapses::SynapticLayer`] — digital weights or crossbar tiles —
//! computes the whole convolution; [`ConvGeometry::pixels_to_channels`] turns its
//! `pixels x C_out` result back into NCHW.
//!
//! A grouped convolution (`groups = G`, PyTorch's `groups`; depthwise when `G = C_in`)
//! convolves each of `G` channel groups with its own kernels: its kernel matrix is
//! block-diagonal, block `g` mapping the patch columns of input channels
//! `g·C_in/G ..` (contiguous, as a patch is channel-major) to output channels
//! `g·C_out/G ..`, so the same patches and pixel layout serve every group.

use std::ops::Range;

use anyhow::{Result, ensure};
use rayon::prelude::*;

/// The shape of one 2-D convolution (square kernel, equal stride and padding in both
/// directions, zero padding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Input channels C_in.
    pub in_channels: usize,
    /// Input height, pixels.
    pub in_h: usize,
    /// Input width, pixels.
    pub in_w: usize,
    /// Output channels C_out.
    pub out_channels: usize,
    /// Kernel height and width k.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
    /// Channel groups G (1: every output channel sees every input channel; `C_in`: a
    /// depthwise convolution).
    pub groups: usize,
}

impl ConvGeometry {
    /// A convolution of `out_channels` kernels of `kernel x kernel` over an input of shape
    /// `[C, H, W]`; the kernel must fit the padded input and the stride be >= 1.
    pub fn new(
        input: [usize; 3],
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Self> {
        let [in_channels, in_h, in_w] = input;
        ensure!(
            out_channels > 0 && kernel > 0 && stride > 0,
            "conv2d needs out >= 1, kernel >= 1 and stride >= 1 (got out = {out_channels}, \
             kernel = {kernel}, stride = {stride})"
        );
        ensure!(
            kernel <= in_h + 2 * padding && kernel <= in_w + 2 * padding,
            "conv2d kernel {kernel} is larger than the padded input {} x {} (input {in_channels} \
             x {in_h} x {in_w}, padding {padding})",
            in_h + 2 * padding,
            in_w + 2 * padding
        );
        Ok(ConvGeometry {
            in_channels,
            in_h,
            in_w,
            out_channels,
            kernel,
            stride,
            padding,
            groups: 1,
        })
    }

    /// The same convolution in `groups` channel groups; both channel counts must be
    /// multiples of `groups`.
    pub fn grouped(self, groups: usize) -> Result<Self> {
        ensure!(
            groups > 0,
            "conv2d groups = 0: give at least 1 group (1: an ordinary convolution)"
        );
        ensure!(
            self.in_channels.is_multiple_of(groups) && self.out_channels.is_multiple_of(groups),
            "conv2d groups = {groups} must divide both the input channels ({}) and the output \
             channels ({})",
            self.in_channels,
            self.out_channels
        );
        Ok(ConvGeometry { groups, ..self })
    }

    /// Output height, pixels: `(H + 2p − k) / s + 1`.
    pub fn out_h(&self) -> usize {
        (self.in_h + 2 * self.padding - self.kernel) / self.stride + 1
    }

    /// Output width, pixels.
    pub fn out_w(&self) -> usize {
        (self.in_w + 2 * self.padding - self.kernel) / self.stride + 1
    }

    /// Output pixels per channel.
    pub fn pixels(&self) -> usize {
        self.out_h() * self.out_w()
    }

    /// Length of one patch, `C_in·k·k` (the columns of the kernel matrix).
    pub fn patch_len(&self) -> usize {
        self.in_channels * self.kernel * self.kernel
    }

    /// Columns of one diagonal block of the kernel matrix, `C_in/G·k·k` (PyTorch's weight
    /// is `C_out x C_in/G x k x k`).
    pub fn block_inputs(&self) -> usize {
        self.patch_len() / self.groups
    }

    /// Output channels of one group, `C_out/G`.
    pub fn block_outputs(&self) -> usize {
        self.out_channels / self.groups
    }

    /// Values of one input image, `C_in·H·W`.
    pub fn input_len(&self) -> usize {
        self.in_channels * self.in_h * self.in_w
    }

    /// The patches of a batch of NCHW images as rows, `(batch·pixels) x patch_len`, each
    /// patch ordered (channel, kernel row, kernel column) like PyTorch's weight layout;
    /// padding reads as 0.
    pub fn im2col(&self, x: &[f32], batch: usize) -> Vec<f32> {
        let mut cols = Vec::new();
        self.im2col_into(x, batch, &mut cols);
        cols
    }

    /// [`ConvGeometry::im2col`] into a reused buffer (every entry written).
    pub fn im2col_into(&self, x: &[f32], batch: usize, cols: &mut Vec<f32>) {
        let rows = batch * self.pixels();
        fill(cols, rows * self.patch_len(), false);
        self.patches_of(x, 0..self.in_channels, 0..rows, cols);
    }

    /// The patches `rows` of the batch of NCHW images `x` (row `r`: output pixel
    /// `r % pixels` of image `r / pixels`) restricted to the input channels of group
    /// `group` — the columns of the kernel matrix's diagonal block `group`, all of a patch
    /// for an ungrouped convolution — into `out` (`rows.len() x block_inputs`, every entry
    /// written, padding as 0), in parallel over runs of rows.
    pub fn im2col_rows(&self, x: &[f32], group: usize, rows: Range<usize>, out: &mut [f32]) {
        let per_group = self.in_channels / self.groups;
        self.patches_of(x, group * per_group..(group + 1) * per_group, rows, out);
    }

    /// The patches `rows` of `x` restricted to the input channels `channels`, into `out`.
    fn patches_of(&self, x: &[f32], channels: Range<usize>, rows: Range<usize>, out: &mut [f32]) {
        match self.kernel {
            3 => self.patches_into::<3>(x, channels, rows, out),
            5 => self.patches_into::<5>(x, channels, rows, out),
            7 => self.patches_into::<7>(x, channels, rows, out),
            _ => self.patches_into::<0>(x, channels, rows, out),
        }
    }

    /// [`ConvGeometry::patches_of`] for kernels of width `K` (0: the geometry's kernel), a
    /// constant for the usual widths so that a kernel row is copied in a few moves.
    fn patches_into<const K: usize>(
        &self,
        x: &[f32],
        channels: Range<usize>,
        rows: Range<usize>,
        out: &mut [f32],
    ) {
        /// Patch rows per parallel task.
        const TASK_ROWS: usize = 256;
        let patch = channels.len() * self.kernel * self.kernel;
        let (pixels, input_len) = (self.pixels(), self.input_len());
        out[..rows.len() * patch]
            .par_chunks_mut(TASK_ROWS * patch)
            .enumerate()
            .for_each(|(t, task)| {
                let first = rows.start + t * TASK_ROWS;
                let (mut image, mut pixel) = (first / pixels, first % pixels);
                for row in task.chunks_exact_mut(patch) {
                    let image_values = &x[image * input_len..][..input_len];
                    self.patch_into::<K>(image_values, channels.clone(), pixel, row);
                    pixel += 1;
                    if pixel == pixels {
                        (image, pixel) = (image + 1, 0);
                    }
                }
            });
    }

    /// The patch of output pixel `pixel` of one image over the input channels `channels`
    /// into `row` (every entry written). A kernel row inside the image is one copy of `k`
    /// input pixels; one that reaches into the padding is written tap by tap.
    fn patch_into<const K: usize>(
        &self,
        image: &[f32],
        channels: Range<usize>,
        pixel: usize,
        row: &mut [f32],
    ) {
        let k = if K == 0 { self.kernel } else { K };
        let (oy, ox) = (pixel / self.out_w(), pixel % self.out_w());
        let taps = self.taps_inside(ox, self.in_w);
        // Input column of tap 0 (negative in the left padding).
        let x0 = (ox * self.stride) as isize - self.padding as isize;
        let first = channels.start;
        for c in channels {
            let plane = &image[c * self.in_h * self.in_w..][..self.in_h * self.in_w];
            for ky in 0..k {
                let dst = &mut row[((c - first) * k + ky) * k..][..k];
                let Some(iy) = self.source(oy, ky, self.in_h) else {
                    dst.fill(0.0);
                    continue;
                };
                let line = &plane[iy * self.in_w..][..self.in_w];
                if taps.len() == k {
                    let src = &line[x0 as usize..][..k];
                    if K == 0 {
                        dst.copy_from_slice(src);
                    } else {
                        fixed_copy::<K>(dst, src);
                    }
                } else {
                    for (kx, d) in dst.iter_mut().enumerate() {
                        *d = if taps.contains(&kx) {
                            line[(x0 + kx as isize) as usize]
                        } else {
                            0.0
                        };
                    }
                }
            }
        }
    }

    /// Input coordinate read by kernel tap `tap` at output coordinate `out` (None in the
    /// padding).
    #[inline]
    fn source(&self, out: usize, tap: usize, len: usize) -> Option<usize> {
        (out * self.stride + tap)
            .checked_sub(self.padding)
            .filter(|&i| i < len)
    }

    /// The kernel taps (`kx`, or `ky` along the height) whose input coordinate at output
    /// coordinate `out` lies inside an input of length `len` (the others read the zero
    /// padding).
    fn taps_inside(&self, out: usize, len: usize) -> std::ops::Range<usize> {
        let first = (out * self.stride) as isize - self.padding as isize;
        let start = (-first).clamp(0, self.kernel as isize) as usize;
        let end = (len as isize - first).clamp(0, self.kernel as isize) as usize;
        start..end.max(start)
    }

    /// Per-pixel outputs (`(batch·pixels) x C_out`, the result of reading the im2col rows)
    /// as NCHW images (`batch x C_out x pixels`), plus the bias of each channel (if any).
    pub fn pixels_to_channels(&self, y: &[f32], batch: usize, bias: Option<&[f32]>) -> Vec<f32> {
        let mut out = Vec::new();
        self.pixels_to_channels_into(y, batch, bias, &mut out);
        out
    }

    /// [`ConvGeometry::pixels_to_channels`] into a reused buffer (every entry written).
    pub fn pixels_to_channels_into(
        &self,
        y: &[f32],
        batch: usize,
        bias: Option<&[f32]>,
        out: &mut Vec<f32>,
    ) {
        let bias_of = |c: usize| bias.map_or(0.0, |b| b[c]);
        let (c_out, pixels) = (self.out_channels, self.pixels());
        fill(out, batch * c_out * pixels, false);
        out.par_chunks_mut(c_out * pixels)
            .zip(y.par_chunks(pixels * c_out))
            .for_each(|(image, rows)| {
                // Channel by channel: contiguous writes, reads strided by C_out.
                for (c, plane) in image.chunks_exact_mut(pixels).enumerate() {
                    let b = bias_of(c);
                    let column = rows[c..].iter().step_by(c_out);
                    plane.iter_mut().zip(column).for_each(|(o, &v)| *o = v + b);
                }
            });
    }

    /// NCHW values (`batch x C_out x pixels`) as per-pixel rows (`(batch·pixels) x C_out`):
    /// the inverse of [`ConvGeometry::pixels_to_channels`] without bias (the layout of the
    /// errors a backward pass sends through the kernel matrix).
    pub fn channels_to_pixels(&self, y: &[f32], batch: usize) -> Vec<f32> {
        let (c_out, pixels) = (self.out_channels, self.pixels());
        let mut rows = vec![0.0; batch * pixels * c_out];
        y.par_chunks(c_out * pixels)
            .zip(rows.par_chunks_mut(pixels * c_out))
            .for_each(|(image, out)| {
                for (c, plane) in image.chunks(pixels).enumerate() {
                    for (pixel, &v) in plane.iter().enumerate() {
                        out[pixel * c_out + c] = v;
                    }
                }
            });
        rows
    }

    /// The adjoint of [`ConvGeometry::im2col`] for one image: every entry of its patch rows
    /// (`pixels x patch_len`) added onto the input position it was read from (padding
    /// entries dropped), pixel by pixel in order, giving the NCHW image `image` (zeroed
    /// first).
    pub fn col2im_image(&self, rows: &[f32], image: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if self.in_w <= ROW_LANES && std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the processor has AVX-512F (checked just above) and an input row
            // fits one register.
            return unsafe { self.add_patches_by_rows(rows, image) };
        }
        self.add_patches_scattered(rows, image);
    }

    /// [`ConvGeometry::col2im_image`] patch by patch: each kernel row added onto the image.
    fn add_patches_scattered(&self, rows: &[f32], image: &mut [f32]) {
        image.fill(0.0);
        match self.kernel {
            3 => self.add_patches::<3>(rows, image),
            5 => self.add_patches::<5>(rows, image),
            7 => self.add_patches::<7>(rows, image),
            _ => self.add_patches::<0>(rows, image),
        }
    }

    /// [`ConvGeometry::col2im_image`] for kernels of width `K` (0: the geometry's kernel),
    /// a constant for the usual widths so that a kernel row inside the image is added in a
    /// few vector instructions; the taps in the padding are skipped.
    fn add_patches<const K: usize>(&self, rows: &[f32], image: &mut [f32]) {
        let k = if K == 0 { self.kernel } else { K };
        let (out_w, plane_len) = (self.out_w(), self.in_h * self.in_w);
        for (pixel, row) in rows.chunks_exact(self.patch_len()).enumerate() {
            let (oy, ox) = (pixel / out_w, pixel % out_w);
            let (taps_y, taps_x) = (
                self.taps_inside(oy, self.in_h),
                self.taps_inside(ox, self.in_w),
            );
            if taps_y.is_empty() || taps_x.is_empty() {
                continue;
            }
            // Input row and column of the first tap inside.
            let iy0 = oy * self.stride + taps_y.start - self.padding;
            let ix0 = ox * self.stride + taps_x.start - self.padding;
            let whole_rows = K != 0 && taps_x.len() == k;
            for (plane, kernel) in image
                .chunks_exact_mut(plane_len)
                .zip(row.chunks_exact(k * k))
            {
                for (iy, ky) in (iy0..).zip(taps_y.clone()) {
                    let dst = &mut plane[iy * self.in_w + ix0..][..taps_x.len()];
                    let src = &kernel[ky * k + taps_x.start..][..taps_x.len()];
                    if whole_rows {
                        fixed_add::<K>(dst, src);
                    } else {
                        dst.iter_mut().zip(src).for_each(|(p, v)| *p += v);
                    }
                }
            }
        }
    }
}

/// Lanes of an AVX-512 register of `f32`: the widest input row
/// [`ConvGeometry::add_patches_by_rows`] sums in one register.
#[cfg(target_arch = "x86_64")]
const ROW_LANES: usize = 16;

/// Input channels whose rows [`ConvGeometry::add_patches_by_rows`] sums at once (that
/// many independent chains of additions keep the adder busy; the patch columns of that
/// many channels, 51 KB for 8 channels of 5 x 5 kernels on 64 output pixels, about fit
/// the L1 cache).
#[cfg(target_arch = "x86_64")]
const ROW_CHANNELS: usize = 8;

#[cfg(target_arch = "x86_64")]
impl ConvGeometry {
    /// [`ConvGeometry::col2im_image`] row by row, for input rows of at most
    /// [`ROW_LANES`] pixels: each input row of a channel is summed in one register from
    /// every kernel row that reaches it, each loaded into the lanes of the input columns it
    /// covers (the others, and taps in the padding, masked to zero), output pixels in
    /// ascending order. Every input value therefore receives the same terms in the same
    /// order as [`ConvGeometry::add_patches_scattered`] gives it (starting from `+0`, a
    /// masked `+0` term never changes a sum), so the two agree bit for bit.
    ///
    /// # Safety
    /// The processor must support AVX-512F, and `in_w <= ROW_LANES`.
    #[target_feature(enable = "avx512f")]
    unsafe fn add_patches_by_rows(&self, rows: &[f32], image: &mut [f32]) {
        assert!(
            rows.len() == self.pixels() * self.patch_len() && image.len() == self.input_len(),
            "patch rows or image of the wrong length"
        );
        let row_mask = ((1u32 << self.in_w) - 1) as u16;
        // Per output column: the input column of kernel tap 0 (negative in the left
        // padding) and the lanes its taps cover inside the image.
        let taps = (1u32 << self.kernel) - 1;
        let spans: Vec<(isize, u16)> = (0..self.out_w())
            .map(|ox| {
                let x0 = (ox * self.stride) as isize - self.padding as isize;
                let lanes = if x0 >= 0 { taps << x0 } else { taps >> -x0 };
                (x0, lanes as u16 & row_mask)
            })
            .collect();
        let mut c = 0;
        while c < self.in_channels {
            // SAFETY: AVX-512F is available (this function's contract).
            unsafe {
                if c + ROW_CHANNELS <= self.in_channels {
                    self.sum_rows::<ROW_CHANNELS>(c, &spans, rows, image);
                    c += ROW_CHANNELS;
                } else {
                    self.sum_rows::<1>(c, &spans, rows, image);
                    c += 1;
                }
            }
        }
    }

    /// Every input row of channels `first..first + N` of the image, summed in `N`
    /// registers (see [`ConvGeometry::add_patches_by_rows`]; `spans`: its per-column taps).
    ///
    /// # Safety
    /// As [`ConvGeometry::add_patches_by_rows`]; `first + N <= in_channels`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn sum_rows<const N: usize>(
        &self,
        first: usize,
        spans: &[(isize, u16)],
        rows: &[f32],
        image: &mut [f32],
    ) {
        use std::arch::x86_64::*;
        let (k, patch, out_w) = (self.kernel, self.patch_len(), self.out_w());
        let row_mask = ((1u32 << self.in_w) - 1) as u16;
        for iy in 0..self.in_h {
            let mut sums = [_mm512_setzero_ps(); N];
            for oy in 0..self.out_h() {
                // The kernel row of output row `oy` that reads input row `iy`, if any.
                let Some(ky) = (iy + self.padding)
                    .checked_sub(oy * self.stride)
                    .filter(|&ky| ky < k)
                else {
                    continue;
                };
                for (ox, &(x0, lanes)) in spans.iter().enumerate() {
                    let start = (oy * out_w + ox) * patch + first * k * k + ky * k;
                    let kernel_row = rows[start..].as_ptr();
                    for (q, sum) in sums.iter_mut().enumerate() {
                        // Lane `ix` reads tap `ix - x0` of channel `first + q`'s kernel row.
                        let origin = kernel_row.wrapping_add(q * k * k).wrapping_offset(-x0);
                        // SAFETY: the lanes in `lanes` read taps `0..k` of that kernel
                        // row, inside `rows` (`start` is in bounds and a patch row holds
                        // `k·k` values per channel); masked lanes are not read.
                        let terms = unsafe { _mm512_maskz_loadu_ps(lanes, origin) };
                        *sum = _mm512_add_ps(*sum, terms);
                    }
                }
            }
            for (q, sum) in sums.into_iter().enumerate() {
                let row = &mut image[((first + q) * self.in_h + iy) * self.in_w..][..self.in_w];
                // SAFETY: the mask covers `in_w` lanes, all inside `row`.
                unsafe { _mm512_mask_storeu_ps(row.as_mut_ptr(), row_mask, sum) };
            }
        }
    }
}

/// `dst = src` for one kernel row of `N` values: a fixed-length copy the compiler
/// unrolls (a general copy, a `memcpy` call, costs more than the copy itself).
#[inline]
fn fixed_copy<const N: usize>(dst: &mut [f32], src: &[f32]) {
    let dst: &mut [f32; N] = dst.try_into().expect("span length");
    *dst = src.try_into().expect("span length");
}

/// `dst += src` for one kernel row of `N` values (fixed lengths as in [`fixed_copy`]).
#[inline]
fn fixed_add<const N: usize>(dst: &mut [f32], src: &[f32]) {
    let dst: &mut [f32; N] = dst.try_into().expect("span length");
    let src: &[f32; N] = src.try_into().expect("span length");
    for i in 0..N {
        dst[i] += src[i];
    }
}

/// Make `buf` hold `len` values; zero them all when `zero`, else only those it grows by
/// (the caller overwrites every entry).
pub(crate) fn fill(buf: &mut Vec<f32>, len: usize, zero: bool) {
    if zero {
        buf.clear();
    }
    buf.resize(len, 0.0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    /// A direct (six nested loops) convolution, the reference.
    fn naive(g: &ConvGeometry, x: &[f32], w: &[f32], bias: &[f32], batch: usize) -> Vec<f32> {
        let (k, oh, ow) = (g.kernel, g.out_h(), g.out_w());
        let mut y = vec![0f32; batch * g.out_channels * oh * ow];
        for b in 0..batch {
            for o in 0..g.out_channels {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut s = bias[o];
                        for c in 0..g.in_channels {
                            for ky in 0..k {
                                for kx in 0..k {
                                    let iy = (oy * g.stride + ky) as isize - g.padding as isize;
                                    let ix = (ox * g.stride + kx) as isize - g.padding as isize;
                                    if iy < 0 || ix < 0 {
                                        continue;
                                    }
                                    let (iy, ix) = (iy as usize, ix as usize);
                                    if iy >= g.in_h || ix >= g.in_w {
                                        continue;
                                    }
                                    let xv =
                                        x[((b * g.in_channels + c) * g.in_h + iy) * g.in_w + ix];
                                    s += xv * w[((o * g.in_channels + c) * k + ky) * k + kx];
                                }
                            }
                        }
                        y[((b * g.out_channels + o) * oh + oy) * ow + ox] = s;
                    }
                }
            }
        }
        y
    }

    /// im2col + one matrix product + reordering equals the direct convolution, for
    /// strides 1 and 2, with and without padding, several channels.
    #[test]
    fn im2col_convolution_equals_the_direct_convolution() {
        let mut rng = crate::rng::stream(3, &[0]);
        for (input, out, k, s, p) in [
            ([1, 6, 6], 2, 3, 1, 0),
            ([3, 7, 5], 4, 3, 2, 1),
            ([2, 5, 5], 3, 5, 1, 2),
            ([2, 4, 4], 1, 1, 1, 0),
            ([2, 9, 9], 2, 7, 1, 3),
            ([1, 8, 8], 2, 4, 2, 1),
        ] {
            let g = ConvGeometry::new(input, out, k, s, p).unwrap();
            let batch = 3;
            let x: Vec<f32> = (0..batch * g.input_len())
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let w: Vec<f32> = (0..out * g.patch_len())
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let bias: Vec<f32> = (0..out).map(|_| rng.random_range(-1.0..1.0)).collect();
            let cols = g.im2col(&x, batch);
            let rows = batch * g.pixels();
            let mut y = vec![0f32; rows * out];
            crate::linalg::a_bt(&cols, &w, rows, g.patch_len(), out, &mut y);
            let got = g.pixels_to_channels(&y, batch, Some(&bias));
            let want = naive(&g, &x, &w, &bias, batch);
            assert_eq!(got.len(), want.len());
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() < 1e-5, "{input:?} k{k} s{s} p{p}: {a} vs {b}");
            }
        }
    }

    /// The patches of any run of rows (across image boundaries) are those rows of the whole
    /// batch's patches, and every entry is written (a buffer full of NaN comes out clean),
    /// for kernels with a fixed-width copy (3, 5, 7) and others, with and without padding.
    #[test]
    fn patches_of_any_run_of_rows_are_those_rows_of_the_batch() {
        let mut rng = crate::rng::stream(4, &[0]);
        for (input, k, s, p) in [
            ([1, 6, 6], 3, 1, 1),
            ([2, 7, 7], 5, 1, 2),
            ([2, 9, 8], 7, 2, 3),
            ([3, 6, 6], 4, 1, 0),
            ([1, 5, 5], 2, 2, 1),
        ] {
            let g = ConvGeometry::new(input, 2, k, s, p).unwrap();
            let batch = 3;
            let x: Vec<f32> = (0..batch * g.input_len())
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let whole = g.im2col(&x, batch);
            let (rows, patch) = (batch * g.pixels(), g.patch_len());
            for range in [0..rows, 1..rows - 1, g.pixels() - 1..g.pixels() + 2, 5..6] {
                let mut out = vec![f32::NAN; range.len() * patch];
                g.im2col_rows(&x, 0, range.clone(), &mut out);
                let want = &whole[range.start * patch..range.end * patch];
                assert!(
                    out.iter()
                        .zip(want)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{input:?} k{k} s{s} p{p} rows {range:?}"
                );
            }
        }
    }

    /// The patches of one group are that group's columns of the whole patches (its input
    /// channels' kernel rows), for depthwise and two-group convolutions, with and without
    /// padding, and every entry is written.
    #[test]
    fn patches_of_a_group_are_its_columns_of_the_whole_patches() {
        let mut rng = crate::rng::stream(6, &[0]);
        for (input, out, k, s, p, groups) in [
            ([4, 6, 6], 4, 3, 1, 1, 4),
            ([4, 7, 7], 6, 5, 2, 2, 2),
            ([6, 5, 5], 6, 4, 1, 0, 3),
        ] {
            let g = ConvGeometry::new(input, out, k, s, p)
                .unwrap()
                .grouped(groups)
                .unwrap();
            let batch = 2;
            let x: Vec<f32> = (0..batch * g.input_len())
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let whole = g.im2col(&x, batch);
            let (rows, width) = (batch * g.pixels(), g.block_inputs());
            for group in 0..groups {
                let mut part = vec![f32::NAN; rows * width];
                g.im2col_rows(&x, group, 0..rows, &mut part);
                let want: Vec<f32> = whole
                    .chunks(g.patch_len())
                    .flat_map(|patch| patch[group * width..][..width].to_vec())
                    .collect();
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&part), bits(&want), "{input:?} k{k} groups {groups}");
            }
        }
    }

    /// col2im of one image is the adjoint of im2col: each patch entry added onto the input
    /// pixel it was read from, in the order of a naive scatter pixel by pixel (so the sums
    /// agree bit for bit), padding entries dropped and stale image values cleared; kernels
    /// with a fixed-width add (3, 5, 7) and others, strides 1 and 2, with and without
    /// padding (taps reaching over every border). Both ways of summing agree with it: patch
    /// by patch, and row by row in registers (AVX-512, rows of up to 16 pixels: channels in
    /// blocks of 8 and one by one), which `col2im_image` runs where it can.
    #[test]
    fn col2im_adds_every_patch_entry_back_where_im2col_read_it() {
        let mut rng = crate::rng::stream(5, &[0]);
        for (input, k, s, p) in [
            ([1, 6, 6], 3, 1, 1),
            ([2, 12, 12], 5, 1, 0),
            ([11, 12, 12], 5, 1, 0),
            ([2, 6, 20], 3, 1, 1),
            ([1, 16, 16], 5, 1, 2),
            ([2, 7, 7], 5, 1, 2),
            ([2, 9, 8], 7, 2, 3),
            ([3, 6, 6], 4, 1, 0),
            ([1, 5, 5], 2, 2, 1),
        ] {
            let g = ConvGeometry::new(input, 2, k, s, p).unwrap();
            let rows: Vec<f32> = (0..g.pixels() * g.patch_len())
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let [c_in, h, w] = input;
            let mut want = vec![0f32; g.input_len()];
            for (pixel, row) in rows.chunks(g.patch_len()).enumerate() {
                let (oy, ox) = (pixel / g.out_w(), pixel % g.out_w());
                for (c, ky, kx) in (0..c_in)
                    .flat_map(|c| (0..k).flat_map(move |ky| (0..k).map(move |kx| (c, ky, kx))))
                {
                    let iy = (oy * s + ky) as isize - p as isize;
                    let ix = (ox * s + kx) as isize - p as isize;
                    if (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix) {
                        want[(c * h + iy as usize) * w + ix as usize] += row[(c * k + ky) * k + kx];
                    }
                }
            }
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let mut image = vec![f32::NAN; g.input_len()];
            g.col2im_image(&rows, &mut image);
            assert_eq!(bits(&image), bits(&want), "{input:?} k{k} s{s} p{p}");
            let mut scattered = vec![f32::NAN; g.input_len()];
            g.add_patches_scattered(&rows, &mut scattered);
            assert_eq!(bits(&scattered), bits(&want), "{input:?} k{k} s{s} p{p}");
            #[cfg(target_arch = "x86_64")]
            if w <= ROW_LANES && std::arch::is_x86_feature_detected!("avx512f") {
                let mut by_rows = vec![f32::NAN; g.input_len()];
                // SAFETY: AVX-512F checked just above, and the row fits a register.
                unsafe { g.add_patches_by_rows(&rows, &mut by_rows) };
                assert_eq!(bits(&by_rows), bits(&want), "{input:?} k{k} s{s} p{p}");
            }
        }
    }

    #[test]
    fn a_kernel_larger_than_the_padded_input_is_refused() {
        let err = ConvGeometry::new([1, 4, 4], 2, 7, 1, 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("kernel 7") && err.contains("6 x 6"), "{err}");
        assert!(ConvGeometry::new([1, 4, 4], 2, 3, 0, 0).is_err());
    }
}
