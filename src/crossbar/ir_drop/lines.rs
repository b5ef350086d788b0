//! Line families: the row lines or the column lines of the crossbar as independent
//! tridiagonal chains, factorised once per conductance matrix and solved with the Thomas
//! algorithm.
//!
//! A line is a chain of wire segments (conductance `g_wire_s` each) with one device
//! hanging from every node. Seen from one family with the other family's node voltages
//! held fixed, line `l` obeys `T_l x = b`, where `T_l` is tridiagonal: the diagonal holds
//! the device conductance of the node, one `g_wire_s` per wire neighbour inside the line
//! and, at the line's terminal node, `g_end_s` (the series driver or sense resistance plus
//! the first wire segment to the ideal source or virtual ground); the off-diagonals are
//! `-g_wire_s`. All node arrays are row-major `N x M` (index `i * M + j`).
//!
//! The factorisation eliminates from the open end of the line towards its terminal node, so
//! every pivot is at least `g_wire_s` (no cancellation, whatever the device conductances).

/// Which family of lines: the rows (nodes along `j`, terminal at the left end `j = 0`,
/// open at `j = M - 1`) or the columns (nodes along `i`, terminal at the bottom end
/// `i = N - 1`, open at `i = 0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LineAxis {
    /// Row lines, terminal node at `j = 0`.
    Rows,
    /// Column lines, terminal node at `i = N - 1`.
    Cols,
}

/// Row lines processed side by side so that their independent recurrences overlap in the
/// processor's pipeline.
const ROW_LANES: usize = 8;

/// What to do with a block of row lines.
#[derive(Debug, Clone, Copy)]
enum RowKernel {
    /// Full Thomas solve in place.
    Solve,
    /// Elimination only, then the terminal-node value of each line.
    Terminal,
}

/// Thomas solve of `L` row lines at once: elimination from the open end `j = M - 1`
/// towards the terminal `j = 0`, then (for [`RowKernel::Solve`]) back substitution. The
/// lines are interleaved so the dependency chains of different lines overlap.
fn row_lanes<const L: usize>(
    kernel: RowKernel,
    lines: &mut [&mut [f64]; L],
    invs: &[&[f64]; L],
    gw: f64,
    terminal: &mut [f64],
) {
    let m = invs[0].len();
    for l in 0..L {
        assert!(lines[l].len() == m && invs[l].len() == m);
    }
    for j in (0..m - 1).rev() {
        for l in 0..L {
            lines[l][j] += gw * invs[l][j + 1] * lines[l][j + 1];
        }
    }
    for l in 0..L {
        lines[l][0] *= invs[l][0];
    }
    match kernel {
        RowKernel::Terminal => {
            for l in 0..L {
                terminal[l] = lines[l][0];
            }
        }
        RowKernel::Solve => {
            for j in 1..m {
                for l in 0..L {
                    lines[l][j] = (lines[l][j] + gw * lines[l][j - 1]) * invs[l][j];
                }
            }
        }
    }
}

/// Factorise `L` row lines at once (reciprocal pivots from the open end to the terminal).
fn factor_row_lanes<const L: usize>(
    inv: &mut [&mut [f64]; L],
    g: &[&[f64]; L],
    wire_diag: impl Fn(usize) -> f64,
    gw2: f64,
) {
    let m = g[0].len();
    for l in 0..L {
        assert!(inv[l].len() == m && g[l].len() == m);
        inv[l][m - 1] = 1.0 / (g[l][m - 1] + wire_diag(m - 1));
    }
    for j in (0..m - 1).rev() {
        let d = wire_diag(j);
        for l in 0..L {
            inv[l][j] = 1.0 / (g[l][j] + d - gw2 * inv[l][j + 1]);
        }
    }
}

/// Split `block` (`ROW_LANES` consecutive rows of length `m`) into its rows.
fn split_lanes_mut(block: &mut [f64], m: usize) -> [&mut [f64]; ROW_LANES] {
    let mut rest = block;
    std::array::from_fn(|_| {
        let (line, tail) = std::mem::take(&mut rest).split_at_mut(m);
        rest = tail;
        line
    })
}

/// Split `block` (`ROW_LANES` consecutive rows of length `m`) into its rows.
fn split_lanes(block: &[f64], m: usize) -> [&[f64]; ROW_LANES] {
    std::array::from_fn(|l| &block[l * m..(l + 1) * m])
}

/// All lines of one family with their LDLᵀ factorisation (device conductances included).
#[derive(Debug, Clone)]
pub(super) struct LineFamily {
    axis: LineAxis,
    n_rows: usize,
    n_cols: usize,
    g_wire_s: f64,
    g_end_s: f64,
    /// Reciprocal pivots of every line's factorisation, row-major `N x M`.
    inv_pivot: Vec<f64>,
}

impl LineFamily {
    /// Factorise every line of the family for the device conductances `g_s` (row-major).
    pub(super) fn new(
        axis: LineAxis,
        g_s: &[f64],
        n_rows: usize,
        n_cols: usize,
        g_wire_s: f64,
        g_end_s: f64,
    ) -> Self {
        let mut family = Self {
            axis,
            n_rows,
            n_cols,
            g_wire_s,
            g_end_s,
            inv_pivot: vec![0.0; n_rows * n_cols],
        };
        match axis {
            LineAxis::Rows => family.factor_rows(g_s),
            LineAxis::Cols => family.factor_cols(g_s),
        }
        family
    }

    /// Number of columns `M` of the array (the length of a row of node arrays).
    pub(super) fn n_cols(&self) -> usize {
        self.n_cols
    }

    /// Number of lines in the family.
    pub(super) fn n_lines(&self) -> usize {
        match self.axis {
            LineAxis::Rows => self.n_rows,
            LineAxis::Cols => self.n_cols,
        }
    }

    /// Conductance from a line's terminal node to its ideal source or virtual ground (S).
    pub(super) fn g_end_s(&self) -> f64 {
        self.g_end_s
    }

    /// Index (row-major) of the terminal node of line `line`.
    pub(super) fn end_index(&self, line: usize) -> usize {
        match self.axis {
            LineAxis::Rows => line * self.n_cols,
            LineAxis::Cols => (self.n_rows - 1) * self.n_cols + line,
        }
    }

    /// Diagonal wire (and terminal) conductance of the node at position `p` on a line of
    /// `len` nodes whose terminal node sits at position `end`.
    fn wire_diag(&self, p: usize, len: usize, end: usize) -> f64 {
        let mut d = 0.0;
        if p > 0 {
            d += self.g_wire_s;
        }
        if p + 1 < len {
            d += self.g_wire_s;
        }
        if p == end {
            d += self.g_end_s;
        }
        d
    }

    fn factor_rows(&mut self, g_s: &[f64]) {
        let m = self.n_cols;
        let gw2 = self.g_wire_s * self.g_wire_s;
        let mut inv_pivot = std::mem::take(&mut self.inv_pivot);
        let wire_diag = |j| self.wire_diag(j, m, 0);
        let mut blocks = inv_pivot.chunks_exact_mut(ROW_LANES * m);
        let mut g_blocks = g_s.chunks_exact(ROW_LANES * m);
        for (inv, g) in (&mut blocks).zip(&mut g_blocks) {
            factor_row_lanes(
                &mut split_lanes_mut(inv, m),
                &split_lanes(g, m),
                wire_diag,
                gw2,
            );
        }
        for (inv, g) in blocks
            .into_remainder()
            .chunks_exact_mut(m)
            .zip(g_blocks.remainder().chunks_exact(m))
        {
            factor_row_lanes(&mut [inv], &[g], wire_diag, gw2);
        }
        self.inv_pivot = inv_pivot;
    }

    fn factor_cols(&mut self, g_s: &[f64]) {
        let (n, m) = (self.n_rows, self.n_cols);
        let gw2 = self.g_wire_s * self.g_wire_s;
        for i in 0..n {
            let diag_wire = self.wire_diag(i, n, n - 1);
            let (done, rest) = self.inv_pivot.split_at_mut(i * m);
            let cur = &mut rest[..m];
            let g_row = &g_s[i * m..(i + 1) * m];
            if i == 0 {
                for (c, &g) in cur.iter_mut().zip(g_row) {
                    *c = 1.0 / (g + diag_wire);
                }
            } else {
                let prev = &done[(i - 1) * m..];
                for ((c, &g), &p) in cur.iter_mut().zip(g_row).zip(prev) {
                    *c = 1.0 / (g + diag_wire - gw2 * p);
                }
            }
        }
    }

    /// Solve `T_l x = b` for every line at once, in place (`b` row-major `N x M`).
    pub(super) fn solve_in_place(&self, b: &mut [f64]) {
        match self.axis {
            LineAxis::Rows => self.row_blocks(RowKernel::Solve, b, &mut []),
            LineAxis::Cols => {
                self.eliminate_cols(b);
                self.back_substitute_cols(b);
            }
        }
    }

    /// Solve `T_l x = b` for the terminal-node voltage of every line only (half the work
    /// of a full solve); `b` is used as scratch. Returns one value per line.
    pub(super) fn solve_terminals(&self, b: &mut [f64]) -> Vec<f64> {
        let mut terminal = vec![0.0; self.n_lines()];
        match self.axis {
            LineAxis::Rows => self.row_blocks(RowKernel::Terminal, b, &mut terminal),
            LineAxis::Cols => {
                self.eliminate_cols(b);
                let m = self.n_cols;
                let last = (self.n_rows - 1) * m;
                for ((t, &y), &ip) in terminal
                    .iter_mut()
                    .zip(&b[last..])
                    .zip(&self.inv_pivot[last..])
                {
                    *t = y * ip;
                }
            }
        }
        terminal
    }

    fn row_blocks(&self, kernel: RowKernel, b: &mut [f64], terminal: &mut [f64]) {
        let m = self.n_cols;
        let gw = self.g_wire_s;
        let mut blocks = b.chunks_exact_mut(ROW_LANES * m);
        let mut inv_blocks = self.inv_pivot.chunks_exact(ROW_LANES * m);
        // `terminal` is empty for a full solve, one value per row otherwise.
        let mut row = 0;
        for (block, inv) in (&mut blocks).zip(&mut inv_blocks) {
            let mut lines = split_lanes_mut(block, m);
            let out = terminal.get_mut(row..row + ROW_LANES).unwrap_or_default();
            row_lanes(kernel, &mut lines, &split_lanes(inv, m), gw, out);
            row += ROW_LANES;
        }
        for (line, inv) in blocks
            .into_remainder()
            .chunks_exact_mut(m)
            .zip(inv_blocks.remainder().chunks_exact(m))
        {
            let out = terminal.get_mut(row..row + 1).unwrap_or_default();
            row_lanes(kernel, &mut [line], &[inv], gw, out);
            row += 1;
        }
    }

    /// `x_k += profile_k · v[line(k)]`: add a per-line profile scaled by one value per line.
    pub(super) fn add_scaled_profile(&self, x: &mut [f64], profile: &[f64], v: &[f64]) {
        let m = self.n_cols;
        let rows = x.chunks_exact_mut(m).zip(profile.chunks_exact(m));
        match self.axis {
            LineAxis::Rows => {
                for ((row, prof), &vi) in rows.zip(v) {
                    row.iter_mut()
                        .zip(prof)
                        .for_each(|(xk, &pk)| *xk += pk * vi);
                }
            }
            LineAxis::Cols => {
                for (row, prof) in rows {
                    for ((xk, &pk), &vj) in row.iter_mut().zip(prof).zip(v) {
                        *xk += pk * vj;
                    }
                }
            }
        }
    }

    /// Elimination from the open end (i = 0) towards the terminal (i = N - 1), all columns
    /// side by side so the inner loops run over contiguous memory.
    fn eliminate_cols(&self, b: &mut [f64]) {
        let m = self.n_cols;
        let gw = self.g_wire_s;
        for i in 1..self.n_rows {
            let (done, rest) = b.split_at_mut(i * m);
            let prev = &done[(i - 1) * m..];
            let inv_prev = &self.inv_pivot[(i - 1) * m..i * m];
            for ((c, &p), &ip) in rest[..m].iter_mut().zip(prev).zip(inv_prev) {
                *c += gw * ip * p;
            }
        }
    }

    /// Back substitution from the terminal (i = N - 1) to the open end (i = 0).
    fn back_substitute_cols(&self, b: &mut [f64]) {
        let (n, m) = (self.n_rows, self.n_cols);
        let gw = self.g_wire_s;
        let last = &mut b[(n - 1) * m..];
        for (c, &ip) in last.iter_mut().zip(&self.inv_pivot[(n - 1) * m..]) {
            *c *= ip;
        }
        for i in (0..n - 1).rev() {
            let (head, tail) = b.split_at_mut((i + 1) * m);
            let cur = &mut head[i * m..];
            let next = &tail[..m];
            let inv = &self.inv_pivot[i * m..(i + 1) * m];
            for ((c, &x), &ip) in cur.iter_mut().zip(next).zip(inv) {
                *c = (*c + gw * x) * ip;
            }
        }
    }

    /// Row `i` of `W x`, the wire part of the line operator (wire segments and the
    /// terminal conductance, no devices), written into `out` (length `M`).
    pub(super) fn wire_matvec_row(&self, x: &[f64], i: usize, out: &mut [f64]) {
        let (n, m) = (self.n_rows, self.n_cols);
        let gw = self.g_wire_s;
        let cur = &x[i * m..(i + 1) * m];
        match self.axis {
            LineAxis::Rows if m == 1 => out[0] = self.g_end_s * cur[0],
            LineAxis::Rows => {
                out[0] = (self.g_end_s + gw) * cur[0] - gw * cur[1];
                for (o, w) in out[1..m - 1].iter_mut().zip(cur.windows(3)) {
                    *o = gw * (2.0 * w[1] - w[0] - w[2]);
                }
                out[m - 1] = gw * (cur[m - 1] - cur[m - 2]);
            }
            LineAxis::Cols => {
                let d = self.wire_diag(i, n, n - 1);
                for (o, &c) in out.iter_mut().zip(cur) {
                    *o = d * c;
                }
                if i > 0 {
                    for (o, &u) in out.iter_mut().zip(&x[(i - 1) * m..i * m]) {
                        *o -= gw * u;
                    }
                }
                if i + 1 < n {
                    for (o, &v) in out.iter_mut().zip(&x[(i + 1) * m..(i + 2) * m]) {
                        *o -= gw * v;
                    }
                }
            }
        }
    }
}

impl LineFamily {
    /// Number of nodes on each line and the position of the terminal node.
    fn geometry(&self) -> (usize, usize) {
        match self.axis {
            LineAxis::Rows => (self.n_cols, 0),
            LineAxis::Cols => (self.n_rows, self.n_rows - 1),
        }
    }

    /// Row-major index of the node at position `p` on line `line`.
    fn node_index(&self, line: usize, p: usize) -> usize {
        match self.axis {
            LineAxis::Rows => line * self.n_cols + p,
            LineAxis::Cols => p * self.n_cols + line,
        }
    }

    /// Add this family's Kirchhoff current-law terms to `(imbalance², magnitude²)`: for every
    /// node, the net current into it and the sum of the magnitudes of its branch currents,
    /// computed from the node voltages `own_v`, the other family's node voltages `other_v`
    /// and the terminal potentials `end_v` (one per line: the input voltage or 0 V).
    pub(super) fn accumulate_kcl(
        &self,
        g_s: &[f64],
        own_v: &[f64],
        other_v: &[f64],
        end_v: &[f64],
        sums: &mut (f64, f64),
    ) {
        let (len, end) = self.geometry();
        for (line, &v_end) in end_v.iter().enumerate() {
            for p in 0..len {
                let k = self.node_index(line, p);
                let v = own_v[k];
                let mut branches = [0.0; 4];
                branches[0] = g_s[k] * (other_v[k] - v);
                if p > 0 {
                    branches[1] = self.g_wire_s * (own_v[self.node_index(line, p - 1)] - v);
                }
                if p + 1 < len {
                    branches[2] = self.g_wire_s * (own_v[self.node_index(line, p + 1)] - v);
                }
                if p == end {
                    branches[3] = self.g_end_s * (v_end - v);
                }
                let net: f64 = branches.iter().sum();
                let magnitude: f64 = branches.iter().map(|b| b.abs()).sum();
                sums.0 += net * net;
                sums.1 += magnitude * magnitude;
            }
        }
    }
}
