//! Deterministic parallel matrix products on row-major `f32` slices, shared by the
//! digital networks, equilibrium propagation and the metaplastic BNN.
//!
//! The output matrix is cut into blocks of rows or columns whose size depends only on the
//! shapes, never on the thread count; each block is one sequential faer product and the
//! blocks run on rayon. Every output element is summed by the same code in the same order
//! whatever the number of threads, so training is bit-identical with 1 or 32 threads.
//!
//! After every product the upper halves of the AVX registers are cleared (`vzeroupper`):
//! faer's small-matrix kernels can return with dirty AVX-512 state, after which every
//! legacy-SSE instruction on that core (scalar code built for baseline x86-64, libm's
//! `expf`) pays a state-transition penalty — measured here as a 50x slower sigmoid.

use anyhow::{Result, ensure};
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

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
    let lhs = MatRef::from_row_major_slice(a, m, k);
    let rhs = MatRef::from_row_major_slice(b, n, k).transpose();
    product(lhs, rhs, c);
}

/// `c (m x n) = a (m x k) · b (k x n)` (a batch of row vectors times a weight matrix: the
/// transposed read `y · W`).
pub(crate) fn a_b(a: &[f32], b: &[f32], m: usize, k: usize, n: usize, c: &mut [f32]) {
    let lhs = MatRef::from_row_major_slice(a, m, k);
    let rhs = MatRef::from_row_major_slice(b, k, n);
    product(lhs, rhs, c);
}

/// `c (m x n) = aᵀ · b`, where `a` is `k x m` and `b` is `k x n` (the sum over `k` rows of
/// outer products: a weight update).
pub(crate) fn at_b(a: &[f32], b: &[f32], m: usize, k: usize, n: usize, c: &mut [f32]) {
    let lhs = MatRef::from_row_major_slice(a, k, m).transpose();
    let rhs = MatRef::from_row_major_slice(b, k, n);
    product(lhs, rhs, c);
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
        matmul(dst, Accum::Replace, lhs, rhs, 1.0, Par::Seq);
        clear_upper_vector_state();
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
            let lhs = lhs.subrows(start, rows);
            matmul(block, Accum::Replace, lhs, rhs, 1.0, Par::Seq);
            clear_upper_vector_state();
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
            let rhs = rhs.subcols(start, cols);
            matmul(block, Accum::Replace, lhs, rhs, 1.0, Par::Seq);
            clear_upper_vector_state();
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
    fn the_three_layouts_agree_with_a_naive_product() {
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
        }
    }
}
