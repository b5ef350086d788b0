//! Deterministic parallel matrix products on row-major `f32` slices, shared by the
//! digital networks, equilibrium propagation and the metaplastic BNN, and the one softmax
//! of every classifier ([`softmax`], [`softmax_in_place`]).
//!
//! The output matrix is cut into blocks of rows or columns whose size depends only on the
//! shapes, never on the thread count; each block is one sequential faer product and the
//! blocks run on rayon. Every output element is summed by the same code in the same order
//! whatever the number of threads, so training is bit-identical with 1 or 32 threads.
//! [`sequential`] holds the same products as one unblocked call (the Bayesian MLP's).
//! [`a_b_sparse_lhs`] is [`a_b`] skipping the zeros of a mostly-zero left operand (a
//! transposed read of errors or rates routed back through max pooling), with the same bits.
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

/// A row-major product `c (m x n) = a · b` called as `(a, b, m, k, n, c)`: [`a_b`] or
/// [`a_b_sparse_lhs`].
pub(crate) type Product = fn(&[f32], &[f32], usize, usize, usize, &mut [f32]);

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

/// How [`product`] cuts an `m x k x n` product into sequential faer calls: whole, or into
/// blocks of rows or of columns of a given length (the last block takes the rest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Split {
    Whole,
    Rows(usize),
    Cols(usize),
}

impl Split {
    /// The split of an `m x k x n` product (a function of the shapes only).
    fn of(m: usize, k: usize, n: usize) -> Split {
        let macs = m.saturating_mul(k).saturating_mul(n);
        if macs < PARALLEL_MIN_MACS {
            Split::Whole
        } else if m >= n {
            // Split the larger output dimension so that the blocks stay wide for the
            // micro-kernel.
            Split::Rows(block_len(m, macs))
        } else {
            Split::Cols(block_len(n, macs))
        }
    }

    /// The `(rows, columns)` of every block of an `m x n` output.
    fn block_shapes(self, m: usize, n: usize) -> Vec<(usize, usize)> {
        let lengths =
            |dim: usize, len: usize| (0..dim).step_by(len).map(move |start| len.min(dim - start));
        match self {
            Split::Whole => vec![(m, n)],
            Split::Rows(len) => lengths(m, len).map(|rows| (rows, n)).collect(),
            Split::Cols(len) => lengths(n, len).map(|cols| (m, cols)).collect(),
        }
    }
}

fn product(lhs: MatRef<'_, f32>, rhs: MatRef<'_, f32>, c: &mut [f32]) {
    let (m, k, n) = (lhs.nrows(), lhs.ncols(), rhs.ncols());
    assert_eq!(
        c.len(),
        m * n,
        "output buffer does not match the product shape"
    );
    let dst = MatMut::from_row_major_slice_mut(c, m, n);
    let split = Split::of(m, k, n);
    if split == Split::Whole {
        sequential_product(dst, lhs, rhs);
        return;
    }
    // Cut the output into the split's blocks, in order, each with its first row or column.
    let by_cols = matches!(split, Split::Cols(_));
    let mut blocks = Vec::new();
    let (mut rest, mut start) = (dst, 0);
    for (rows, cols) in split.block_shapes(m, n) {
        let (head, tail) = if by_cols {
            rest.split_at_col_mut(cols)
        } else {
            rest.split_at_row_mut(rows)
        };
        blocks.push((start, head));
        rest = tail;
        start += if by_cols { cols } else { rows };
    }
    blocks.into_par_iter().for_each(|(start, block)| {
        if by_cols {
            let cols = block.ncols();
            sequential_product(block, lhs, rhs.subcols(start, cols));
        } else {
            let rows = block.nrows();
            sequential_product(block, lhs.subrows(start, rows), rhs);
        }
    });
}

/// Most rows of `b` (`k`) for which [`a_b_sparse_lhs`] skips zeros; deeper products go to
/// [`a_b`]. Up to this depth faer's blocked GEMM kernel sums each output element as one
/// fused multiply-add chain over `k` in ascending order (checked bit for bit by this
/// module's tests); deeper products may be split along `k` (on this machine the bits
/// first differ at `k = 1024`).
const SPARSE_MAX_DEPTH: usize = 256;
/// Most multiply-accumulates of a product that faer gives to its small-matrix kernels
/// (faer's `NANO_GEMM_THRESHOLD`), whose summation order differs from its blocked kernel's.
const FAER_SMALL_PRODUCT_MACS: usize = 16 * 16 * 16;
/// Output rows per rayon task of [`a_b_sparse_lhs`] (rows are independent, so the split
/// never changes a result).
const SPARSE_ROWS_PER_TASK: usize = 32;

/// `c (m x n) = a · b` as [`a_b`], skipping the zero entries of `a`: each output row is
/// the sum of the rows of `b` that its nonzero entries select, for a mostly-zero `a` (in
/// the EP ConvNet, the rates unpooled onto each window's maximum: about one in eight
/// nonzero). Each output element is one fused multiply-add chain over `k` in ascending
/// order starting from zero, the order of faer's blocked GEMM kernel, and a skipped term
/// `0 · b` leaves a chain unchanged, so for a finite `b` the result has the bits of
/// [`a_b`] (this module's tests check it; the dense product would turn `0 · ∞` into NaN).
/// Where [`a_b`] would not run that kernel on every block (see
/// [`runs_blocked_kernel`]), or the processor has no FMA, it is [`a_b`].
pub(crate) fn a_b_sparse_lhs(a: &[f32], b: &[f32], m: usize, k: usize, n: usize, c: &mut [f32]) {
    assert!(
        a.len() == m * k && b.len() == k * n && c.len() == m * n,
        "operands do not match the product shape"
    );
    #[cfg(target_arch = "x86_64")]
    if let Some(kernel) = SparseKernel::detect()
        && runs_blocked_kernel(m, k, n)
    {
        c.par_chunks_mut(SPARSE_ROWS_PER_TASK * n)
            .zip(a.par_chunks(SPARSE_ROWS_PER_TASK * k))
            .for_each_init(NonzeroLists::default, |nonzeros, (c_rows, a_rows)| {
                // SAFETY: `detect` returns only kernels this processor supports.
                unsafe { kernel.rows(a_rows, b, (k, n), c_rows, nonzeros) }
            });
        clear_upper_vector_state();
        return;
    }
    a_b(a, b, m, k, n, c);
}

/// Whether every sequential faer call of [`a_b`] on an `m x k x n` product runs faer's
/// blocked GEMM kernel — not its matrix–vector (one row or column), rank-one (`k = 1`) or
/// small-matrix kernels — with `k` at most `SPARSE_MAX_DEPTH`.
fn runs_blocked_kernel(m: usize, k: usize, n: usize) -> bool {
    (2..=SPARSE_MAX_DEPTH).contains(&k)
        && Split::of(m, k, n)
            .block_shapes(m, n)
            .iter()
            .all(|&(rows, cols)| {
                rows >= 2 && cols >= 2 && rows * cols * k > FAER_SMALL_PRODUCT_MACS
            })
}

/// The compiled versions of [`sparse_rows`], for the instruction sets faer picks its GEMM
/// kernel by (AVX-512, else AVX2 with FMA).
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SparseKernel {
    Avx512,
    Avx2,
}

#[cfg(target_arch = "x86_64")]
impl SparseKernel {
    /// Every kernel, the preferred first.
    const ALL: [SparseKernel; 2] = [SparseKernel::Avx512, SparseKernel::Avx2];

    /// Whether this processor runs the kernel (both need FMA: the chains must be fused).
    fn supported(self) -> bool {
        use std::arch::is_x86_feature_detected as has;
        has!("fma")
            && match self {
                SparseKernel::Avx512 => has!("avx512f"),
                SparseKernel::Avx2 => has!("avx2"),
            }
    }

    /// The preferred kernel this processor runs, if any.
    fn detect() -> Option<SparseKernel> {
        SparseKernel::ALL.into_iter().find(|k| k.supported())
    }

    /// [`sparse_rows`] with this kernel.
    ///
    /// # Safety
    /// The kernel must be [`SparseKernel::supported`].
    unsafe fn rows(
        self,
        a: &[f32],
        b: &[f32],
        shape: (usize, usize),
        c: &mut [f32],
        nonzeros: &mut NonzeroLists,
    ) {
        // SAFETY: the caller checked that the processor has the kernel's features.
        unsafe {
            match self {
                SparseKernel::Avx512 => sparse_rows_avx512(a, b, shape, c, nonzeros),
                SparseKernel::Avx2 => sparse_rows_avx2(a, b, shape, c, nonzeros),
            }
        }
    }
}

/// [`sparse_rows`] compiled for AVX-512 with FMA: 128 columns, eight 16-lane registers of sums.
///
/// # Safety
/// The CPU must support AVX-512F and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn sparse_rows_avx512(
    a: &[f32],
    b: &[f32],
    shape: (usize, usize),
    c: &mut [f32],
    nonzeros: &mut NonzeroLists,
) {
    sparse_rows::<128>(a, b, shape, c, nonzeros);
}

/// [`sparse_rows`] compiled for AVX2 with FMA: 64 columns, eight 8-lane registers of sums.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn sparse_rows_avx2(
    a: &[f32],
    b: &[f32],
    shape: (usize, usize),
    c: &mut [f32],
    nonzeros: &mut NonzeroLists,
) {
    sparse_rows::<64>(a, b, shape, c, nonzeros);
}

/// The rows of `c = a · b` (`a`: rows of `k`, `b`: `k x n`, `shape = (k, n)`), each from
/// the nonzero entries of its row of `a`, summed `CHUNK` columns at a time (a fixed length,
/// so the sums stay in vector registers) for all rows before the next `CHUNK` columns (so
/// that block of `b` stays in the L1 cache). `nonzeros`: reused lists of `(index, value)`.
#[inline(always)]
fn sparse_rows<const CHUNK: usize>(
    a: &[f32],
    b: &[f32],
    (k, n): (usize, usize),
    c: &mut [f32],
    nonzeros: &mut NonzeroLists,
) {
    nonzeros.fill(a, k);
    let full = n - n % CHUNK;
    for start in (0..full).step_by(CHUNK) {
        for (row, out) in c.chunks_exact_mut(n).enumerate() {
            let mut sums = [0.0f32; CHUNK];
            for &(i, v) in nonzeros.row(row) {
                let b_row = &b[i * n + start..][..CHUNK];
                for (s, w) in sums.iter_mut().zip(b_row) {
                    *s = v.mul_add(*w, *s);
                }
            }
            out[start..start + CHUNK].copy_from_slice(&sums);
        }
    }
    for (row, out) in c.chunks_exact_mut(n).enumerate() {
        let tail = &mut out[full..];
        tail.fill(0.0);
        for &(i, v) in nonzeros.row(row) {
            for (s, w) in tail.iter_mut().zip(&b[i * n + full..][..n - full]) {
                *s = v.mul_add(*w, *s);
            }
        }
    }
}

/// The nonzero entries `(column, value)` of each row of a matrix, stored back to back.
#[derive(Debug, Default)]
struct NonzeroLists {
    entries: Vec<(usize, f32)>,
    ends: Vec<usize>,
}

impl NonzeroLists {
    /// The lists of the rows of `matrix` (rows of `k` values), replacing the previous ones.
    #[inline(always)]
    fn fill(&mut self, matrix: &[f32], k: usize) {
        self.entries.clear();
        self.ends.clear();
        for row in matrix.chunks_exact(k) {
            let nonzero = row.iter().enumerate().filter(|(_, v)| **v != 0.0);
            self.entries.extend(nonzero.map(|(i, v)| (i, *v)));
            self.ends.push(self.entries.len());
        }
    }

    /// The nonzero entries of row `row`.
    #[inline(always)]
    fn row(&self, row: usize) -> &[(usize, f32)] {
        let start = if row == 0 { 0 } else { self.ends[row - 1] };
        &self.entries[start..self.ends[row]]
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
    use rand::RngExt;

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

    /// Assert that `got` and `want` are equal bit for bit, naming the first difference.
    fn assert_same_bits(got: &[f32], want: &[f32], what: &str) {
        let differing = got
            .iter()
            .zip(want)
            .position(|(g, w)| g.to_bits() != w.to_bits());
        assert_eq!(differing, None, "first differing element, {what}");
    }

    #[test]
    fn the_sparse_product_has_the_bits_of_the_dense_one() {
        // Arbitrary reals (not exact sums), so equality holds only if every output element
        // is summed in the same order: the claim of `a_b_sparse_lhs`. About 1 in 8 entries
        // of `a` nonzero, as the EP ConvNet's unpooled rates; some rows all zero. Depths up
        // to `SPARSE_MAX_DEPTH`; below and above the parallel threshold of `a_b`, with
        // ragged last blocks; and shapes that faer gives to other kernels (the fallback).
        assert!(runs_blocked_kernel(3200, 64, 800) && runs_blocked_kernel(500, 32, 150));
        assert!(!runs_blocked_kernel(9, 64, 1) && !runs_blocked_kernel(17, 3, 5));
        let mut rng = crate::rng::stream(7, &[0]);
        for &(m, k, n) in &[
            (3, 5, 4),
            (37, 10, 33),
            (3200, 64, 800),
            (500, 32, 150),
            (64, SPARSE_MAX_DEPTH, 300),
            (3201, 64, 800),
            (40, 64, 1025),
            (9, 64, 2),
            (1, 64, 800),
            (2, 64, 3),
            (16, 16, 16),
            (17, 3, 5),
            (1, 5, 1),
            (9, 64, 1),
        ] {
            let a: Vec<f32> = (0..m * k)
                .map(|_| {
                    let v: f32 = rng.random_range(0.0..8.0);
                    if v < 1.0 { v } else { 0.0 }
                })
                .collect();
            let b: Vec<f32> = (0..k * n).map(|_| rng.random_range(-0.3..0.3)).collect();
            let (mut dense, mut sparse) = (vec![0.0; m * n], vec![f32::NAN; m * n]);
            a_b(&a, &b, m, k, n, &mut dense);
            a_b_sparse_lhs(&a, &b, m, k, n, &mut sparse);
            assert_same_bits(&sparse, &dense, &format!("{m} x {k} x {n}"));
            // Every compiled kernel this processor runs, whichever one the dispatch picks.
            #[cfg(target_arch = "x86_64")]
            if runs_blocked_kernel(m, k, n) {
                for kernel in SparseKernel::ALL.into_iter().filter(|k| k.supported()) {
                    sparse.fill(f32::NAN);
                    // SAFETY: the kernel is supported (filtered just above).
                    unsafe {
                        kernel.rows(&a, &b, (k, n), &mut sparse, &mut NonzeroLists::default())
                    };
                    assert_same_bits(&sparse, &dense, &format!("{kernel:?}, {m} x {k} x {n}"));
                }
            }
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
