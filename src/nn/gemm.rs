//! Deterministic parallel matrix products on row-major `f32` slices.
//!
//! The output matrix is cut into blocks of rows or columns whose number and size depend
//! only on the matrix shapes, never on the thread count; each block is one sequential faer
//! product, and blocks run in parallel on rayon. Every output element is therefore summed
//! by the same code in the same order whatever the number of threads, so training is
//! bit-identical with 1 or 32 threads (no parallel reduction ever splits a sum).

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

/// Products with fewer multiply-accumulates than this run as a single sequential call.
const PARALLEL_MIN_MACS: usize = 1 << 17;
/// Multiply-accumulates per output block aimed for when splitting a large product.
const MACS_PER_BLOCK: usize = 1 << 19;
/// Most blocks a product is split into.
const MAX_BLOCKS: usize = 32;
/// Block edges are multiples of this many rows/columns (the f32 SIMD micro-kernel height).
const BLOCK_ALIGN: usize = 16;

/// `c (m x n) = a (m x k) · bᵀ`, where `b` is `n x k` row-major (a weight matrix
/// `outputs x inputs` applied to a batch of row vectors).
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

/// `c (m x n) = aᵀ · b`, where `a` is `k x m` and `b` is `k x n`, row-major (a weight
/// gradient: the sum over the batch `k` of outer products).
pub fn at_b(a: &[f32], b: &[f32], m: usize, k: usize, n: usize, c: &mut [f32]) {
    let lhs = MatRef::from_row_major_slice(a, k, m).transpose();
    let rhs = MatRef::from_row_major_slice(b, k, n);
    product(lhs, rhs, c);
}

/// Number of blocks a product of `macs` multiply-accumulates with a split dimension of
/// `dim` is cut into: a function of the shapes only.
fn block_len(dim: usize, macs: usize) -> usize {
    if macs < PARALLEL_MIN_MACS {
        return dim.max(1);
    }
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
    let mut dst = MatMut::from_row_major_slice_mut(c, m, n);
    if macs < PARALLEL_MIN_MACS {
        matmul(dst, Accum::Replace, lhs, rhs, 1.0, Par::Seq);
        return;
    }
    // Split the larger output dimension so that blocks stay wide for the micro-kernel.
    let split_rows = m >= n;
    let len = block_len(if split_rows { m } else { n }, macs);
    let mut blocks: Vec<(usize, MatMut<'_, f32>)> = Vec::new();
    let mut start = 0;
    loop {
        let remaining = if split_rows { dst.nrows() } else { dst.ncols() };
        if remaining <= len {
            blocks.push((start, dst));
            break;
        }
        let (head, tail) = if split_rows {
            dst.split_at_row_mut(len)
        } else {
            dst.split_at_col_mut(len)
        };
        blocks.push((start, head));
        dst = tail;
        start += len;
    }
    blocks.into_par_iter().for_each(|(start, block)| {
        if split_rows {
            let rows = block.nrows();
            matmul(
                block,
                Accum::Replace,
                lhs.subrows(start, rows),
                rhs,
                1.0,
                Par::Seq,
            );
        } else {
            let cols = block.ncols();
            matmul(
                block,
                Accum::Replace,
                lhs,
                rhs.subcols(start, cols),
                1.0,
                Par::Seq,
            );
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k)
                    .map(|p| f64::from(a[i * k + p]) * f64::from(b[p * n + j]))
                    .sum();
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
        // Shapes on both sides of the parallel threshold, with ragged last blocks.
        for &(m, k, n) in &[(3, 5, 4), (70, 300, 130), (200, 90, 33)] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 13) as f32 - 6.0).collect();
            let b: Vec<f32> = (0..k * n)
                .map(|i| ((i * 104_729) % 11) as f32 - 5.0)
                .collect();
            let want = naive(&a, &b, m, k, n);
            let mut c = vec![0.0; m * n];
            a_b(&a, &b, m, k, n, &mut c);
            // Small integers: every product is exact in f32.
            assert!(c.iter().zip(&want).all(|(&x, &y)| f64::from(x) == y));
            a_bt(&a, &transpose(&b, k, n), m, k, n, &mut c);
            assert!(c.iter().zip(&want).all(|(&x, &y)| f64::from(x) == y));
            at_b(&transpose(&a, m, k), &b, m, k, n, &mut c);
            assert!(c.iter().zip(&want).all(|(&x, &y)| f64::from(x) == y));
        }
    }
}
