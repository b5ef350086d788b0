//! Pooling of NCHW activations (digital periphery): max and average pooling over square
//! windows, and global average pooling (a window the size of the image).

use anyhow::{Result, ensure};
use rayon::prelude::*;

use crate::linalg::conv::fill;

/// Image planes per parallel task of pooling (a plane is a few hundred values).
const PLANES_PER_TASK: usize = 16;

/// What a pooling window computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    /// The largest value of the window (PyTorch `MaxPool2d`).
    Max,
    /// The mean of the window (PyTorch `AvgPool2d`, no padding).
    Average,
}

/// The shape of one pooling layer (no padding; windows that do not fit are dropped, as
/// PyTorch's floor mode does).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeometry {
    /// Max or average.
    pub kind: PoolKind,
    /// Channels.
    pub channels: usize,
    /// Input height, pixels.
    pub in_h: usize,
    /// Input width, pixels.
    pub in_w: usize,
    /// Window height and width.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
}

impl PoolGeometry {
    /// A pooling layer over an input of shape `[C, H, W]`.
    pub fn new(kind: PoolKind, input: [usize; 3], kernel: usize, stride: usize) -> Result<Self> {
        let [channels, in_h, in_w] = input;
        ensure!(
            kernel > 0 && stride > 0,
            "pooling needs kernel >= 1 and stride >= 1 (got {kernel}, {stride})"
        );
        ensure!(
            kernel <= in_h && kernel <= in_w,
            "pooling window {kernel} is larger than the input {in_h} x {in_w}"
        );
        Ok(PoolGeometry {
            kind,
            channels,
            in_h,
            in_w,
            kernel,
            stride,
        })
    }

    /// Output height, pixels.
    pub fn out_h(&self) -> usize {
        (self.in_h - self.kernel) / self.stride + 1
    }

    /// Output width, pixels.
    pub fn out_w(&self) -> usize {
        (self.in_w - self.kernel) / self.stride + 1
    }

    /// The window of output pixel (`oy`, `ox`) as `K` x `K` rows of one input plane, row
    /// by row; `K = 0` stands for the geometry's kernel. The usual 2 x 2 and 3 x 3 windows
    /// are dispatched with their size as a constant, which lets the compiler unroll them
    /// (the same operations in the same order).
    #[inline]
    fn window_rows<'a, const K: usize>(
        &self,
        input: &'a [f32],
        (oy, ox): (usize, usize),
    ) -> impl Iterator<Item = (usize, &'a [f32])> + use<'a, K> {
        let k = if K > 0 { K } else { self.kernel };
        let (stride, in_w) = (self.stride, self.in_w);
        (0..k).map(move |ky| {
            let start = (oy * stride + ky) * in_w + ox * stride;
            (start, &input[start..start + k])
        })
    }

    /// The pooled value of the window of output pixel `at` of one input plane: the maximum,
    /// or the sum (from −0, as `Iterator::sum` of `f32`) times `scale`.
    fn pool_window(&self, input: &[f32], at: (usize, usize), scale: f32) -> f32 {
        match self.kernel {
            2 => self.pool_rows::<2>(input, at, scale),
            3 => self.pool_rows::<3>(input, at, scale),
            _ => self.pool_rows::<0>(input, at, scale),
        }
    }

    #[inline]
    fn pool_rows<const K: usize>(&self, input: &[f32], at: (usize, usize), scale: f32) -> f32 {
        let rows = self.window_rows::<K>(input, at).map(|(_, row)| row);
        match self.kind {
            PoolKind::Max => rows.fold(f32::NEG_INFINITY, |m, row| {
                row.iter().fold(m, |m, &v| m.max(v))
            }),
            PoolKind::Average => {
                rows.fold(-0.0, |s, row| row.iter().fold(s, |s, &v| s + v)) * scale
            }
        }
    }

    /// The index (within one input plane) of the first largest input of the window of
    /// output pixel `at` (ties keep the earlier).
    fn argmax_window(&self, input: &[f32], at: (usize, usize)) -> usize {
        match self.kernel {
            2 => self.argmax_rows::<2>(input, at),
            3 => self.argmax_rows::<3>(input, at),
            _ => self.argmax_rows::<0>(input, at),
        }
    }

    #[inline]
    fn argmax_rows<const K: usize>(&self, input: &[f32], at: (usize, usize)) -> usize {
        let mut rows = self.window_rows::<K>(input, at).peekable();
        let mut best = rows.peek().map_or(0, |&(start, _)| start);
        for (start, row) in rows {
            for (i, &v) in row.iter().enumerate() {
                if v > input[best] {
                    best = start + i;
                }
            }
        }
        best
    }

    /// Pool a batch of NCHW images.
    pub fn forward(&self, x: &[f32]) -> Vec<f32> {
        let mut y = Vec::new();
        self.forward_into(x, &mut y);
        y
    }

    /// [`PoolGeometry::forward`] into a reused buffer, planes in parallel.
    pub fn forward_into(&self, x: &[f32], y: &mut Vec<f32>) {
        let (oh, ow, k) = (self.out_h(), self.out_w(), self.kernel);
        let plane = self.in_h * self.in_w;
        let scale = 1.0 / (k * k) as f32;
        fill(y, x.len() / plane * oh * ow, false);
        y.par_chunks_mut(oh * ow)
            .zip(x.par_chunks(plane))
            .with_min_len(PLANES_PER_TASK)
            .for_each(|(out, input)| {
                for oy in 0..oh {
                    for ox in 0..ow {
                        out[oy * ow + ox] = self.pool_window(input, (oy, ox), scale);
                    }
                }
            });
    }

    /// The gradient with respect to the input `x` of a loss whose gradient with respect
    /// to the output is `dy`: max pooling routes each window's gradient to its largest input
    /// (the first on ties, as PyTorch does), average pooling spreads it evenly.
    pub fn backward(&self, x: &[f32], dy: &[f32]) -> Vec<f32> {
        let mut dx = Vec::new();
        self.backward_into(x, dy, &mut dx);
        dx
    }

    /// [`PoolGeometry::backward`] into a reused buffer (zeroed first), planes in parallel.
    pub fn backward_into(&self, x: &[f32], dy: &[f32], dx: &mut Vec<f32>) {
        let plane = self.in_h * self.in_w;
        fill(dx, x.len(), true);
        x.par_chunks(plane)
            .zip(dx.par_chunks_mut(plane))
            .zip(dy.par_chunks(self.out_h() * self.out_w()))
            .with_min_len(PLANES_PER_TASK)
            .for_each(|((input, grad), d_out)| {
                self.route_plane(input, d_out, |i, d| grad[i] += d);
            });
    }

    /// [`PoolGeometry::backward`] of a batch laid out as per-pixel rows: row `b·H·W + i`
    /// holds the gradient of input pixel `i` of image `b` in every channel (the layout in
    /// which a convolution's kernel matrix reads the gradients of its output), images in
    /// parallel. The same sums as [`PoolGeometry::backward`] followed by the change of
    /// layout, without the NCHW gradient in between.
    pub fn backward_pixel_rows_into(&self, x: &[f32], dy: &[f32], rows: &mut Vec<f32>) {
        let (plane, channels) = (self.in_h * self.in_w, self.channels);
        let pooled = self.out_h() * self.out_w();
        // Each image's rows are zeroed by the thread that routes onto them (a zeroing of
        // the whole batch first would be a serial pass over it).
        fill(rows, x.len(), false);
        rows.par_chunks_mut(plane * channels)
            .zip(x.par_chunks(plane * channels))
            .zip(dy.par_chunks(pooled * channels))
            .for_each(|((rows, image), d_image)| {
                rows.fill(0.0);
                let planes = image.chunks_exact(plane).zip(d_image.chunks_exact(pooled));
                for (c, (input, d_out)) in planes.enumerate() {
                    self.route_plane(input, d_out, |i, d| rows[i * channels + c] += d);
                }
            });
    }

    /// Route the gradients `d_out` of one output plane onto the pixels of its input plane
    /// `input`, window by window in order: `add(i, d)` adds `d` to input pixel `i`. Max
    /// pooling routes each window's gradient to its largest input (the first on ties, as
    /// PyTorch does), average pooling spreads it evenly.
    #[inline]
    fn route_plane(&self, input: &[f32], d_out: &[f32], mut add: impl FnMut(usize, f32)) {
        let (oh, ow, k) = (self.out_h(), self.out_w(), self.kernel);
        let scale = 1.0 / (k * k) as f32;
        for oy in 0..oh {
            for ox in 0..ow {
                let d = d_out[oy * ow + ox];
                match self.kind {
                    PoolKind::Max => add(self.argmax_window(input, (oy, ox)), d),
                    PoolKind::Average => {
                        for (start, _) in self.window_rows::<0>(input, (oy, ox)) {
                            (start..start + k).for_each(|i| add(i, d * scale));
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_and_average_pooling_of_a_known_image() {
        // One 4 x 4 channel 0..16, 2 x 2 windows, stride 2.
        let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let max = PoolGeometry::new(PoolKind::Max, [1, 4, 4], 2, 2).unwrap();
        assert_eq!(max.forward(&x), vec![5.0, 7.0, 13.0, 15.0]);
        let avg = PoolGeometry::new(PoolKind::Average, [1, 4, 4], 2, 2).unwrap();
        assert_eq!(avg.forward(&x), vec![2.5, 4.5, 10.5, 12.5]);
        // 3 x 3 windows, stride 1: floor mode keeps 2 x 2 outputs.
        let max3 = PoolGeometry::new(PoolKind::Max, [1, 4, 4], 3, 1).unwrap();
        assert_eq!(max3.forward(&x), vec![10.0, 11.0, 14.0, 15.0]);
        // Global average pooling of two channels.
        let two: Vec<f32> = (0..8).map(|v| v as f32).collect();
        let global = PoolGeometry::new(PoolKind::Average, [2, 2, 2], 2, 2).unwrap();
        assert_eq!(global.forward(&two), vec![1.5, 5.5]);
        assert!(PoolGeometry::new(PoolKind::Max, [1, 4, 4], 5, 1).is_err());
    }

    /// The backward pass laid out as per-pixel rows equals the NCHW backward pass moved
    /// into that layout, bit for bit: max and average pooling, overlapping windows (3 x 3,
    /// stride 2, so some pixels receive from several windows) and ties (the first maximum
    /// takes the gradient), on a batch of two 3-channel images.
    #[test]
    fn backward_into_pixel_rows_is_the_backward_pass_in_that_layout() {
        use rand::RngExt;
        let (batch, channels, h, w) = (2, 3, 7, 7);
        let mut rng = crate::rng::stream(3, &[0]);
        // Values on a coarse grid, so that windows often hold equal maxima.
        let x: Vec<f32> = (0..batch * channels * h * w)
            .map(|_| rng.random_range(0..4) as f32 * 0.5)
            .collect();
        for kind in [PoolKind::Max, PoolKind::Average] {
            let pool = PoolGeometry::new(kind, [channels, h, w], 3, 2).unwrap();
            let pooled = batch * channels * pool.out_h() * pool.out_w();
            let dy: Vec<f32> = (0..pooled).map(|_| rng.random_range(-1.0..1.0)).collect();
            let nchw = pool.backward(&x, &dy);
            let mut want = vec![0f32; nchw.len()];
            for (b, c, i) in (0..batch)
                .flat_map(|b| (0..channels).flat_map(move |c| (0..h * w).map(move |i| (b, c, i))))
            {
                want[(b * h * w + i) * channels + c] = nchw[(b * channels + c) * h * w + i];
            }
            let mut rows = vec![f32::NAN; 3];
            pool.backward_pixel_rows_into(&x, &dy, &mut rows);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&rows), bits(&want), "{kind:?}");
            assert!(nchw.iter().any(|&g| g != 0.0), "{kind:?}");
        }
    }
}
