//! Deterministic parallel matrix products on row-major `f32` slices, shared by the
//! digital networks, equilibrium propagation and the metaplastic BNN, and the one softmax
//! of every classifier ([`softmax`], [`softmax_in_place`]).
//!
//! The output matrix is cut into blocks of rows or columns whose size depends only on the
//! shapes, never on the thread count; each block is one sequential faer product and the
//! blocks run on rayon. Every output element is summed by the same code in the same order
//! whatever the number of threads, so training is bit-identical with 1 or 32 threads.
//! [`sequential`] holds the same products as one unblocked call (the Bayesian MLP's).
//!
//! After every product the upper halves of the AVX registers are cleared (`vzeroupper`):
//! faer's small-matrix kernels can return with dirty AVX-512 state, after which every
//! legacy-SSE instruction on that core (scalar code built for baseline x86-64, libm's
//! `expf`) pays a state-transition penalty — measured here as a 50x slower sigmoid.

use anyhow::{Result, ensure};
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;
use std::ops::{AddAssign, DivAssign};

/// Products with fewer multiply-accumulates than this run as one sequential call.
const PARALLEL_MIN_MACS: usize = 1 << 18;
/// Multiply-accumulates per output block aimed for when splitting a large product.
const MACS_PER_BLOCK: usize = 1 << 20;
/// Most blocks a product is split into.
const MAX_BLOCKS: usize = 16;
/// Block edges are multiples of this many rows/columns (the f32 SIMD micro-kernel height).
const BLOCK_ALIGN: usize = 16;

/// Check the shapes of a batched product: `x` holds `batch >= 1` row vectors of `n_x`
/// values and `y` room for `batch` vectors of `n_y`; `what` names the product in the error.
pub(crate) fn check_batch_shapes(
    what: &str,
    x: &[f32],
    y: &[f32],
    batch: usize,
    n_x: usize,
    n_y: usize,
) -> Result<()> {
    ensure!(batch > 0, "{what}: the batch must hold at least one vector");
    ensure!(
        x.len() == batch * n_x && y.len() == batch * n_y,
        "{what}: input has {} values and output {}, expected batch x inputs = {batch} x {n_x} \
         and batch x outputs = {batch} x {n_y}",
        x.len(),
        y.len()
    );
    Ok(())
}

/// `c (m x n) = a (m x k) · bᵀ`, where `b` is `n x k` (a weight matrix `outputs x inputs`
/// applied to a batch of row vectors).
pub(crate) fn a_bt(a: &[f32], b: &[f32], m: usize, k: usize, n: usize, c: &mut [f32]) {
    let (lhs, rhs) = a_bt_operands(a, b, m, k, n);
    product(lhs, rhs, c);
}

/// `c (m x n) = a (m x k) · b (k x n)` (a batch of row vectors times a weight matrix: the
/// transposed read `y · W`).
pub(crate) fn a_b(a: &[f32], b: &[f32], m: usize, k: usize, n: usize, c: &mut [f32]) {
    let (lhs, rhs) = a_b_operands(a, b, m, k, n);
    product(lhs, rhs, c);
}

/// `c (m x n) = aᵀ · b`, where `a` is `k x m` and `b` is `k x n` (the sum over `k` rows of
/// outer products: a weight update).
pub(crate) fn at_b(a: &[f32], b: &[f32], m: usize, k: usize, n: usize, c: &mut [f32]) {
    let (lhs, rhs) = at_b_operands(a, b, m, k, n);
    product(lhs, rhs, c);
}

/// The same three products as one sequential faer call whatever the size (no blocks, one
/// thread). Blocks can change the bits: a block of a single row takes faer's matrix–vector
/// path, whose summation order differs (e.g. `a_bt` with m = 113, k = 784, n = 100 splits
/// into 16-row blocks and a last single row). The Bayesian MLP's committed results were
/// computed this way, so it keeps these.
pub(crate) mod sequential {
    use super::{a_b_operands, a_bt_operands, at_b_operands, sequential_product};
    use faer::MatMut;

    /// [`super::a_bt`] as one sequential product.
    pub(crate) fn a_bt(a: &[f32], b: &[f32], m: usize, k: usize, n: usize, c: &mut [f32]) {
        let (lhs, rhs) = a_bt_operands(a, b, m, k, n);
        sequential_product(MatMut::from_row_major_slice_mut(c, m, n), lhs, rhs);
    }

    /// [`super::a_b`] as one sequential product.
    pub(crate) fn a_b(a: &[f32], b: &[f32], m: usize, k: usize, n: usize, c: &mut [f32]) {
        let (lhs, rhs) = a_b_operands(a, b, m, k, n);
        sequential_product(MatMut::from_row_major_slice_mut(c, m, n), lhs, rhs);
    }

    /// [`super::at_b`] as one sequential product.
    pub(crate) fn at_b(a: &[f32], b: &[f32], m: usize, k: usize, n: usize, c: &mut [f32]) {
        let (lhs, rhs) = at_b_operands(a, b, m, k, n);
        sequential_product(MatMut::from_row_major_slice_mut(c, m, n), lhs, rhs);
    }
}

/// The operands `a (m x k)` and `bᵀ` of [`a_bt`].
fn a_bt_operands<'a>(
    a: &'a [f32],
    b: &'a [f32],
    m: usize,
    k: usize,
    n: usize,
) -> (MatRef<'a, f32>, MatRef<'a, f32>) {
    (
        MatRef::from_row_major_slice(a, m, k),
        MatRef::from_row_major_slice(b, n, k).transpose(),
    )
}

/// The operands `a (m x k)` and `b (k x n)` of [`a_b`].
fn a_b_operands<'a>(
    a: &'a [f32],
    b: &'a [f32],
    m: usize,
    k: usize,
    n: usize,
) -> (MatRef<'a, f32>, MatRef<'a, f32>) {
    (
        MatRef::from_row_major_slice(a, m, k),
        MatRef::from_row_major_slice(b, k, n),
    )
}

/// The operands `aᵀ` and `b (k x n)` of [`at_b`].
fn at_b_operands<'a>(
    a: &'a [f32],
    b: &'a [f32],
    m: usize,
    k: usize,
    n: usize,
) -> (MatRef<'a, f32>, MatRef<'a, f32>) {
    (
        MatRef::from_row_major_slice(a, k, m).transpose(),
        MatRef::from_row_major_slice(b, k, n),
    )
}

/// `dst = lhs · rhs` as one sequential faer product, leaving the vector state clean.
fn sequential_product(dst: MatMut<'_, f32>, lhs: MatRef<'_, f32>, rhs: MatRef<'_, f32>) {
    matmul(dst, Accum::Replace, lhs, rhs, 1.0, Par::Seq);
    clear_upper_vector_state();
}

/// Edge length of the blocks a dimension `dim` is cut into for a product of `macs`
/// multiply-accumulates (a function of the shapes only).
fn block_len(dim: usize, macs: usize) -> usize {
    let blocks = (macs / MACS_PER_BLOCK).clamp(2, MAX_BLOCKS);
    dim.div_ceil(blocks).next_multiple_of(BLOCK_ALIGN).max(1)
}

fn product(lhs: MatRef<'_, f32>, rhs: MatRef<'_, f32>, c: &mut [f32]) {
    let (m, k, n) = (lhs.nrows(), lhs.ncols(), rhs.ncols());
    assert_eq!(
        c.len(),
        m * n,
        "output buffer does not match the product shape"
    );
    let macs = m.saturating_mul(k).saturating_mul(n);
    let dst = MatMut::from_row_major_slice_mut(c, m, n);
    if macs < PARALLEL_MIN_MACS {
        sequential_product(dst, lhs, rhs);
        return;
    }
    // Split the larger output dimension so that the blocks stay wide for the micro-kernel.
    if m >= n {
        let len = block_len(m, macs);
        let mut blocks = Vec::new();
        let (mut rest, mut start) = (dst, 0);
        while rest.nrows() > len {
            let (head, tail) = rest.split_at_row_mut(len);
            blocks.push((start, head));
            rest = tail;
            start += len;
        }
        blocks.push((start, rest));
        blocks.into_par_iter().for_each(|(start, block)| {
            let rows = block.nrows();
            sequential_product(block, lhs.subrows(start, rows), rhs);
        });
    } else {
        let len = block_len(n, macs);
        let mut blocks = Vec::new();
        let (mut rest, mut start) = (dst, 0);
        while rest.ncols() > len {
            let (head, tail) = rest.split_at_col_mut(len);
            blocks.push((start, head));
            rest = tail;
            start += len;
        }
        blocks.push((start, rest));
        blocks.into_par_iter().for_each(|(start, block)| {
            let cols = block.ncols();
            sequential_product(block, lhs, rhs.subcols(start, cols));
        });
    }
}

/// Zero the upper halves of the vector registers of the calling core if it has AVX
/// (see the module documentation); a no-op elsewhere.
pub(crate) fn clear_upper_vector_state() {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU supports AVX (checked just above), which is all `zero_upper`
        // requires; `vzeroupper` only clears upper register lanes, which hold no live value
        // between two Rust statements.
        unsafe { zero_upper() }
    }
}

/// Execute `vzeroupper`.
///
/// # Safety
/// The CPU must support AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn zero_upper() {
    std::arch::x86_64::_mm256_zeroupper();
}

/// A floating-point type the exponentials of a softmax are taken and summed in.
pub(crate) trait SoftmaxReal: Copy + AddAssign + DivAssign {
    /// Zero, the start of the sum.
    const ZERO: Self;
    /// Widen a shifted logit.
    fn from_f32(x: f32) -> Self;
    /// `e^self`.
    fn exp(self) -> Self;
}

impl SoftmaxReal for f32 {
    const ZERO: Self = 0.0;
    fn from_f32(x: f32) -> Self {
        x
    }
    fn exp(self) -> Self {
        f32::exp(self)
    }
}

impl SoftmaxReal for f64 {
    const ZERO: Self = 0.0;
    fn from_f32(x: f32) -> Self {
        f64::from(x)
    }
    fn exp(self) -> Self {
        f64::exp(self)
    }
}

/// The normaliser of one softmax: `ln Σ_j e^{z_j} = ln(sum) + max`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct SoftmaxNorm<T> {
    /// The largest logit, subtracted before exponentiating.
    pub max: f32,
    /// `Σ_j e^{z_j − max}`, summed in order.
    pub sum: T,
}

/// Softmax of one row of `logits` into `probs`: `p_k = e^{z_k − max} / Σ_j e^{z_j − max}`,
/// the shift `z_k − max` in `f32`, exponentials and their sum (in order) in `T`. Returns
/// the normaliser for the cross-entropy.
pub(crate) fn softmax<T: SoftmaxReal>(logits: &[f32], probs: &mut [T]) -> SoftmaxNorm<T> {
    let max = row_max(logits);
    for (p, &z) in probs.iter_mut().zip(logits) {
        *p = T::from_f32(z - max);
    }
    SoftmaxNorm {
        max,
        sum: exp_normalise(probs),
    }
}

/// [`softmax`] of `row` in place, in `f32`.
pub(crate) fn softmax_in_place(row: &mut [f32]) -> SoftmaxNorm<f32> {
    let max = row_max(row);
    row.iter_mut().for_each(|z| *z -= max);
    SoftmaxNorm {
        max,
        sum: exp_normalise(row),
    }
}

/// The largest value of `row` (`−∞` for an empty row; NaNs are skipped).
fn row_max(row: &[f32]) -> f32 {
    row.iter().copied().fold(f32::NEG_INFINITY, f32::max)
}

/// Replace the shifted logits by their exponentials divided by their sum; return the sum.
fn exp_normalise<T: SoftmaxReal>(shifted: &mut [T]) -> T {
    let mut sum = T::ZERO;
    for v in shifted.iter_mut() {
        *v = v.exp();
        sum += *v;
    }
    shifted.iter_mut().for_each(|v| *v /= sum);
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    fn transpose(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
        let mut t = vec![0.0; a.len()];
        for i in 0..rows {
            for j in 0..cols {
                t[j * rows + i] = a[i * cols + j];
            }
        }
        t
    }

    #[test]
    fn the_three_layouts_blocked_and_sequential_agree_with_a_naive_product() {
        // Small integers make every product and sum exact in f32, so equality is exact.
        // Shapes on both sides of the parallel threshold, with ragged last blocks.
        for &(m, k, n) in &[(3, 5, 4), (50, 784, 70), (300, 40, 33), (20, 100, 700)] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 13) as f32 - 6.0).collect();
            let b: Vec<f32> = (0..k * n)
                .map(|i| ((i * 104_729) % 11) as f32 - 5.0)
                .collect();
            let want = naive(&a, &b, m, k, n);
            let mut c = vec![0.0; m * n];
            a_b(&a, &b, m, k, n, &mut c);
            assert_eq!(c, want);
            a_bt(&a, &transpose(&b, k, n), m, k, n, &mut c);
            assert_eq!(c, want);
            at_b(&transpose(&a, m, k), &b, m, k, n, &mut c);
            assert_eq!(c, want);
            sequential::a_b(&a, &b, m, k, n, &mut c);
            assert_eq!(c, want);
            sequential::a_bt(&a, &transpose(&b, k, n), m, k, n, &mut c);
            assert_eq!(c, want);
            sequential::at_b(&transpose(&a, m, k), &b, m, k, n, &mut c);
            assert_eq!(c, want);
        }
    }

    #[test]
    fn softmax_is_shift_invariant_normalised_and_the_same_in_place() {
        let logits = [1.0f32, -2.0, 0.5, 3.0];
        let shifted: Vec<f32> = logits.iter().map(|z| z + 100.0).collect();
        let mut p = [0.0f32; 4];
        let norm = softmax(&logits, &mut p);
        assert_eq!(norm.max, 3.0);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p[3] > p[0] && p[0] > p[2] && p[2] > p[1]);
        let mut q = shifted.clone();
        softmax_in_place(&mut q);
        for (a, b) in p.iter().zip(&q) {
            assert!((a - b).abs() < 1e-6, "{p:?} vs {q:?}");
        }
        let mut in_place = logits;
        assert_eq!(softmax_in_place(&mut in_place), norm);
        assert_eq!(in_place, p);
        let mut wide = [0.0f64; 4];
        let norm64 = softmax(&logits, &mut wide);
        let log_sum_exp = logits.iter().map(|&z| f64::from(z).exp()).sum::<f64>().ln();
        assert!((norm64.sum.ln() + f64::from(norm64.max) - log_sum_exp).abs() < 1e-12);
        for (a, &b) in wide.iter().zip(&p) {
            assert!((a - f64::from(b)).abs() < 1e-6);
        }
    }
}
