//! Deterministic parallel matrix products on row-major `f32` slices for the BNN trainer.
//!
//! The output is cut into blocks of rows or columns whose number and size depend only on
//! the shapes, never on the thread count; every block is one sequential faer product and
//! the blocks run on rayon. Each output element is therefore summed by the same code in
//! the same order with 1 or 32 threads, so training is bit-identical for any thread count.
//! (The same scheme as `xbar::nn`'s private products, which this module cannot reach.)

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

/// Products with fewer multiply-accumulates than this run as one sequential call.
const PARALLEL_MIN_MACS: usize = 1 << 18;
/// Multiply-accumulates per output block aimed for when splitting a large product.
const MACS_PER_BLOCK: usize = 1 << 21;
/// Most blocks a product is split into.
const MAX_BLOCKS: usize = 16;
/// Block edges are multiples of this many rows/columns (the f32 SIMD micro-kernel height).
const BLOCK_ALIGN: usize = 16;

/// `c (m x n) = a (m x k) · bᵀ`, `b` being `n x k` row-major.
pub fn a_bt(a: &[f32], b: &[f32], m: usize, k: usize, n: usize, c: &mut [f32]) {
    let lhs = MatRef::from_row_major_slice(a, m, k);
    let rhs = MatRef::from_row_major_slice(b, n, k).transpose();
    product(lhs, rhs, c);
}

/// `c (m x n) = a (m x k) · b (k x n)`, all row-major.
pub fn a_b(a: &[f32], b: &[f32], m: usize, k: usize, n: usize, c: &mut [f32]) {
    let lhs = MatRef::from_row_major_slice(a, m, k);
    let rhs = MatRef::from_row_major_slice(b, k, n);
    product(lhs, rhs, c);
}

/// `c (m x n) = aᵀ · b`, `a` being `k x m` and `b` `k x n`, row-major (a weight gradient).
pub fn at_b(a: &[f32], b: &[f32], m: usize, k: usize, n: usize, c: &mut [f32]) {
    let lhs = MatRef::from_row_major_slice(a, k, m).transpose();
    let rhs = MatRef::from_row_major_slice(b, k, n);
    product(lhs, rhs, c);
}

/// Edge of the blocks a dimension `dim` of a product of `macs` MACs is cut into.
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
        return;
    }
    let split_rows = m >= n;
    let len = block_len(if split_rows { m } else { n }, macs);
    let mut blocks: Vec<(usize, MatMut<'_, f32>)> = Vec::new();
    let (mut rest, mut start) = (dst, 0);
    loop {
        let remaining = if split_rows {
            rest.nrows()
        } else {
            rest.ncols()
        };
        if remaining <= len {
            blocks.push((start, rest));
            break;
        }
        let (head, tail) = if split_rows {
            rest.split_at_row_mut(len)
        } else {
            rest.split_at_col_mut(len)
        };
        blocks.push((start, head));
        rest = tail;
        start += len;
    }
    blocks.into_par_iter().for_each(|(start, block)| {
        if split_rows {
            let rows = block.nrows();
            let l = lhs.subrows(start, rows);
            matmul(block, Accum::Replace, l, rhs, 1.0, Par::Seq);
        } else {
            let cols = block.ncols();
            let r = rhs.subcols(start, cols);
            matmul(block, Accum::Replace, lhs, r, 1.0, Par::Seq);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// All three layouts equal a naive product on small integers (exact in f32), on
    /// shapes below and above the parallel threshold with ragged last blocks.
    #[test]
    fn layouts_agree_with_a_naive_product() {
        for &(m, k, n) in &[(3, 5, 4), (100, 300, 130), (200, 90, 33)] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 13) as f32 - 6.0).collect();
            let b: Vec<f32> = (0..k * n)
                .map(|i| ((i * 104_729) % 11) as f32 - 5.0)
                .collect();
            let mut want = vec![0.0f32; m * n];
            for i in 0..m {
                for j in 0..n {
                    want[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
                }
            }
            let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
            let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
            let mut c = vec![0.0; m * n];
            a_b(&a, &b, m, k, n, &mut c);
            assert_eq!(c, want);
            a_bt(&a, &bt, m, k, n, &mut c);
            assert_eq!(c, want);
            at_b(&at, &b, m, k, n, &mut c);
            assert_eq!(c, want);
        }
    }
}
