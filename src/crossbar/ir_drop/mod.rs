//! IR drop: nodal analysis of the crossbar's resistive network (wires, drivers, sense
//! amplifiers and devices), solved exactly or approximately.
//!
//! # Topology
//! The array has `N` rows and `M` columns; device `(i, j)` (conductance `G_ij`) joins the row
//! node `(i, j)` to the column node `(i, j)`.
//! - **Rows.** Row `i` is driven at its left end by the ideal source `V_i` through
//!   `r_driver`; one wire segment `r_wire` leads to cell `(i, 0)` and one `r_wire` lies
//!   between consecutive cells along the row. The right end (after cell `(i, M-1)`) is open.
//! - **Columns.** Column `j` is held at 0 V (the sense amplifier's virtual ground) at its
//!   bottom end through `r_sense`, with one `r_wire` segment between consecutive cells down
//!   the column and one after cell `(N-1, j)`. The top end (above cell `(0, j)`) is open.
//! - **Output.** Each column's current into its sense amplifier,
//!   `I_j = v_col(N-1, j) / (r_wire + r_sense)` (amperes, positive for positive inputs).
//! - **Transposed mode.** The columns are driven at their bottom ends (`M` voltages, through
//!   `r_driver`) and the rows are sensed at their left ends (through `r_sense`, virtual
//!   ground); the far ends (row right ends, column top ends) stay open. Output: each row's
//!   current into its sense amplifier.
//!
//! `r_driver = r_sense = 0` (the defaults of the CLI) connect the end wire segment straight to
//! the ideal source or virtual ground. `r_wire = 0` makes every line one equipotential node:
//! the solver then uses the lumped network (closed form, or a dense Cholesky solve when both
//! `r_driver` and `r_sense` are non-zero), which for `r_driver = r_sense = 0` is exactly the
//! ideal product `I = Gᵀ V`.
//!
//! # Exact mode
//! The `2·N·M` node equations (Kirchhoff's current law) form a symmetric positive definite
//! system. The driven lines are eliminated with one Thomas sweep per line, and the remaining
//! sensed-line system (the Schur complement `S = C - D R⁻¹ D`, `D = diag(G)`) is solved by
//! conjugate gradients preconditioned with the exact factorisation of every sensed line (a
//! tridiagonal chain once its device conductances are added to its diagonal). The
//! preconditioned operator `I - C⁻¹ D R⁻¹ D` has its spectrum in `(1 - ρ², 1]`, where `ρ` is
//! the device-to-wire coupling of the lines, so few iterations are needed: 2–7 for 64x64,
//! 6–19 for 256x256 and 6–32 for 512x512 over G in 1–100 µS and r_wire in 0.1–10 Ω. The
//! line factorisations (and each driven line's response to a unit input) are computed once
//! per conductance matrix, in `O(N·M)`, and reused by every solve; a solve costs
//! `O(N·M)` per iteration. Iterations stop when the Schur residual (a current imbalance) is
//! below `1e-12` of the device currents the driven lines would push into grounded sensed
//! lines; [`IrDropSolution::residual_rel`] reports the Kirchhoff residual of the full
//! network recomputed from the node voltages (typically 1e-14–1e-12). Checked against
//! ngspice 39 on a 40x30 array (r_wire 5 Ω, r_driver 10 Ω, r_sense 5 Ω, 23 % worst IR
//! loss): output currents agree to 7e-14 relative, forward and transposed.
//!
//! Speed (criterion, `benches/ir_drop.rs`, one thread on a loaded 2-core EPYC, G uniform in
//! 1–100 µS, r_wire 1 Ω): one solve 6.7–7.5 ms at 256x256 and 41 ms at 512x512 (targets
//! 50 and 400 ms), building the solver adds about 0.5 ms and 5 ms; 64 vectors at 256x256
//! in 0.33 s (target 3 s).
//!
//! # Approximate mode
//! Two block Gauss–Seidel sweeps over the two line families, starting from grounded sensed
//! lines: every driven line is solved with the sensed lines at 0 V, every sensed line with
//! the driven-line voltages just found, the driven lines again with those sensed-line
//! voltages, and the sensed lines once more (the last solve stops at the terminal nodes).
//! Each solve is exact along its lines, so the wire drop along every line is captured; what
//! is approximated is the feedback between the two families, which one more sweep would
//! reduce by another factor `ρ²`. Cost: about 3.5 Thomas sweeps, 15–40x less than the
//! exact mode on 256x256 and 512x512 arrays (0.25 ms and 1.7 ms in the benchmark above,
//! 30x and 24x), but only 7–10x on 64x64, where exact needs just 3–4 iterations. Why two
//! sweeps: one leaves errors ~`ρ²` (percent level for realistic arrays); three cost 40 %
//! more and leave the 10x margin thin.
//!
//! Measured error (max over outputs of |approx − exact|, relative to the largest output)
//! on 40 random arrays: 64x64 to 512x512, G uniform in 1–100 µS or 1–10 µS, inputs uniform
//! in 0–0.2 V, r_wire 0.1–10 Ω, ideal periphery. It is governed by the IR-drop severity,
//! the worst column's current loss against the ideal `Gᵀ V` (exact mode), and grows like
//! loss⁴/10:
//!
//! | worst current loss | cases | largest approx error |
//! |--------------------|-------|----------------------|
//! | ≤ 10 %             | 14    | 3.1e-6               |
//! | 10–25 %            | 7     | 2.4e-4               |
//! | 25–50 %            | 6     | 6.6e-3               |
//! | 50–75 %            | 4     | 3.7e-2               |
//! | > 75 % (unusable arrays) | 9 | 1.6e-1            |
//!
//! Examples: 256x256, G 1–10 µS, r_wire 1 Ω: loss 24 %, error 2.4e-4; 256x256, G 1–100 µS,
//! r_wire 0.1 Ω: loss 23 %, error 1.8e-4; 512x512, G 1–100 µS, r_wire 1 Ω: loss 94 %, error
//! 0.15. Use the exact mode beyond ~30 % loss; [`IrDropSolution::residual_rel`] of an
//! approximate solve shows how far it is from Kirchhoff's law.
//!
//! # Residual
//! [`IrDropSolution::residual_rel`] is `‖imbalance‖₂ / ‖magnitude‖₂`, where for every node
//! `imbalance` is the net current into the node and `magnitude` the sum of the magnitudes of
//! its branch currents (wires, terminal, device), all computed from the node voltages. In
//! double precision it cannot fall below about `ε·V / r_wire` relative to the branch
//! currents (rounding of the node voltages times the wire conductance): measured 4e-11 at
//! 10 mΩ, 5e-10 at 1 mΩ and 4e-9 at 0.1 mΩ per segment (256x256, G = 1 µS), while the
//! output currents stay accurate. For wire resistances that small use `r_wire = 0`.
//!
//! # Extreme arrays
//! When the devices dominate the wires (`G·r_wire` near 1, far outside realistic ranges)
//! the network behaves like a two-dimensional resistive sheet and the iteration count grows
//! with the array side (about 200 iterations for 128x128 at G = 1 mS, r_wire = 1 kΩ); the
//! solver still converges.

mod distributed;
mod lines;
mod lumped;

use anyhow::{Result, bail, ensure};
use distributed::Orientation;
use lines::LineAxis;
use lumped::{LumpedOrientation, LumpedSolution};
use rayon::prelude::*;
use std::sync::OnceLock;

/// Wire and periphery resistances of the array (ohms, all finite and non-negative).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WireParams {
    /// Resistance of one wire segment between adjacent cells (and of the end segments), Ω.
    pub r_wire_ohm: f64,
    /// Output resistance of each line driver, Ω (0: ideal voltage source).
    pub r_driver_ohm: f64,
    /// Input resistance of each sense amplifier, Ω (0: ideal virtual ground).
    pub r_sense_ohm: f64,
}

impl WireParams {
    /// These wires with every resistance too small to matter in `f64` set to 0: a
    /// resistance `r` in series with lines that carry at most `g_line` siemens changes the
    /// currents by a relative amount below `r g_line` (times the number of wire segments for
    /// `r_wire`); below half the machine epsilon the exact solution is the one without it,
    /// and solving with it would only lose precision (1 / r overflows the scale of the
    /// system: r_wire = 1e-200 ohm returned zero currents).
    fn without_negligible(&self, g_s: &[f64], n_rows: usize, n_cols: usize) -> WireParams {
        let row_sums = (0..n_rows).map(|i| g_s[i * n_cols..(i + 1) * n_cols].iter().sum::<f64>());
        let col_sums = (0..n_cols).map(|j| (0..n_rows).map(|i| g_s[i * n_cols + j]).sum::<f64>());
        let g_line = row_sums.chain(col_sums).fold(0f64, f64::max);
        let segments = (n_rows + n_cols) as f64;
        let negligible = |r: f64, count: f64| r * count * g_line < f64::EPSILON / 2.0;
        let keep = |r: f64, count: f64| if negligible(r, count) { 0.0 } else { r };
        WireParams {
            r_wire_ohm: keep(self.r_wire_ohm, segments),
            r_driver_ohm: keep(self.r_driver_ohm, 1.0),
            r_sense_ohm: keep(self.r_sense_ohm, 1.0),
        }
    }

    /// Check that every resistance is finite and non-negative.
    pub fn validate(&self) -> Result<()> {
        for (name, r) in [
            ("r_wire_ohm", self.r_wire_ohm),
            ("r_driver_ohm", self.r_driver_ohm),
            ("r_sense_ohm", self.r_sense_ohm),
        ] {
            ensure!(
                r.is_finite() && r >= 0.0,
                "{name} = {r} is invalid: resistances must be finite and >= 0 ohm"
            );
            ensure!(
                r == 0.0 || (1.0 / r).is_finite(),
                "{name} = {r:e} ohm is too small to invert: use 0 for an ideal connection"
            );
        }
        Ok(())
    }
}

/// How the network is solved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SolveMode {
    /// Preconditioned conjugate gradients to a Kirchhoff residual far below 1e-9.
    Exact,
    /// Two block Gauss–Seidel line sweeps: much cheaper, with the error documented above.
    Approx,
}

impl SolveMode {
    /// [`SolveMode::Approx`] when `approximate`, else [`SolveMode::Exact`].
    pub fn approximate_if(approximate: bool) -> Self {
        if approximate {
            SolveMode::Approx
        } else {
            SolveMode::Exact
        }
    }
}

/// Node voltages, output currents and convergence figures of one solve.
#[derive(Debug, Clone)]
pub struct IrDropSolution {
    /// Voltage of every row-line node `(i, j)`, row-major `N x M` (V).
    pub row_node_v: Vec<f64>,
    /// Voltage of every column-line node `(i, j)`, row-major `N x M` (V).
    pub col_node_v: Vec<f64>,
    /// Currents into the sense amplifiers (A): one per column (forward) or per row
    /// (transposed).
    pub currents_a: Vec<f64>,
    /// Kirchhoff residual of the whole network relative to its branch currents
    /// (see the module documentation).
    pub residual_rel: f64,
    /// Conjugate-gradient iterations (exact mode), line sweeps (approximate mode), or 0
    /// (lumped network, `r_wire = 0`).
    pub iterations: usize,
}

/// The network in the form the solver uses.
#[derive(Debug)]
enum Network {
    /// `r_wire > 0`: the forward orientation, and the transposed one built on first use.
    Distributed {
        forward: Orientation,
        transposed: OnceLock<Orientation>,
        ends: EndConductances,
    },
    /// `r_wire = 0`: every line is one node.
    Lumped {
        forward: LumpedOrientation,
        transposed: LumpedOrientation,
    },
}

/// Wire and terminal conductances of the distributed network (S).
#[derive(Debug, Clone, Copy)]
struct EndConductances {
    g_wire_s: f64,
    g_driver_end_s: f64,
    g_sense_end_s: f64,
}

/// One orientation (forward or transposed) of the network.
#[derive(Debug, Clone, Copy)]
enum Oriented<'a> {
    Distributed(&'a Orientation),
    Lumped(&'a LumpedOrientation),
}

/// IR-drop solver for one conductance matrix: build once, solve for many input vectors.
///
/// ```
/// use xbar::crossbar::ir_drop::{IrDropSolver, SolveMode, WireParams};
/// let g_s = vec![10e-6; 4 * 3]; // 4 rows x 3 columns of 10 µS
/// let wires = WireParams { r_wire_ohm: 1.0, r_driver_ohm: 0.0, r_sense_ohm: 0.0 };
/// let solver = IrDropSolver::new(&g_s, 4, 3, &wires, SolveMode::Exact)?;
/// let i_a = solver.solve(&[0.2; 4]);
/// // IR drop lowers every column current below the ideal 4 x 10 µS x 0.2 V = 8 µA.
/// assert!(i_a.iter().all(|&i| i < 8e-6 && i > 7.9e-6));
/// # anyhow::Ok(())
/// ```
#[derive(Debug)]
pub struct IrDropSolver {
    g_s: Vec<f64>,
    n_rows: usize,
    n_cols: usize,
    mode: SolveMode,
    network: Network,
}

impl IrDropSolver {
    /// Build the solver for the conductances `g_siemens` (row-major `n_rows x n_cols`, S).
    ///
    /// Fails on empty or mismatched sizes, negative or non-finite conductances and invalid
    /// resistances. Costs `O(N·M)` (plus a dense `O(M³ + N·M²)` factorisation when
    /// `r_wire = 0` with non-zero `r_driver` and `r_sense`).
    pub fn new(
        g_siemens: &[f64],
        n_rows: usize,
        n_cols: usize,
        wires: &WireParams,
        mode: SolveMode,
    ) -> Result<Self> {
        ensure!(
            n_rows > 0 && n_cols > 0,
            "the array needs at least one row and one column"
        );
        let Some(n_cells) = n_rows.checked_mul(n_cols) else {
            bail!("array size {n_rows} x {n_cols} overflows");
        };
        ensure!(
            g_siemens.len() == n_cells,
            "conductance matrix has {} values, expected {n_rows} x {n_cols} = {n_cells}",
            g_siemens.len()
        );
        if let Some(k) = g_siemens.iter().position(|g| !g.is_finite() || *g < 0.0) {
            bail!(
                "conductance of cell ({}, {}) is {}: conductances must be finite and >= 0 S",
                k / n_cols,
                k % n_cols,
                g_siemens[k]
            );
        }
        wires.validate()?;
        let wires = &wires.without_negligible(g_siemens, n_rows, n_cols);
        let network = if wires.r_wire_ohm == 0.0 {
            Self::lumped_network(g_siemens, n_rows, n_cols, wires)?
        } else {
            Self::distributed_network(g_siemens, n_rows, n_cols, wires)
        };
        Ok(Self {
            g_s: g_siemens.to_vec(),
            n_rows,
            n_cols,
            mode,
            network,
        })
    }

    fn distributed_network(g_s: &[f64], n: usize, m: usize, wires: &WireParams) -> Network {
        let ends = EndConductances {
            g_wire_s: 1.0 / wires.r_wire_ohm,
            g_driver_end_s: 1.0 / (wires.r_wire_ohm + wires.r_driver_ohm),
            g_sense_end_s: 1.0 / (wires.r_wire_ohm + wires.r_sense_ohm),
        };
        Network::Distributed {
            forward: Self::orientation(LineAxis::Rows, g_s, n, m, ends),
            transposed: OnceLock::new(),
            ends,
        }
    }

    fn orientation(
        driven: LineAxis,
        g_s: &[f64],
        n: usize,
        m: usize,
        ends: EndConductances,
    ) -> Orientation {
        let EndConductances {
            g_wire_s,
            g_driver_end_s,
            g_sense_end_s,
        } = ends;
        Orientation::new(driven, g_s, n, m, g_wire_s, g_driver_end_s, g_sense_end_s)
    }

    fn lumped_network(g_s: &[f64], n: usize, m: usize, wires: &WireParams) -> Result<Network> {
        let conductance = |r: f64| (r > 0.0).then(|| 1.0 / r);
        let (g_d, g_sense) = (
            conductance(wires.r_driver_ohm),
            conductance(wires.r_sense_ohm),
        );
        let mut g_t = vec![0.0; g_s.len()];
        for (i, row) in g_s.chunks_exact(m).enumerate() {
            for (j, &g) in row.iter().enumerate() {
                g_t[j * n + i] = g;
            }
        }
        Ok(Network::Lumped {
            forward: LumpedOrientation::new(g_s.to_vec(), n, m, g_d, g_sense)?,
            transposed: LumpedOrientation::new(g_t, m, n, g_d, g_sense)?,
        })
    }

    /// Number of rows `N`.
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// Number of columns `M`.
    pub fn n_cols(&self) -> usize {
        self.n_cols
    }

    /// The solve mode chosen at construction.
    pub fn mode(&self) -> SolveMode {
        self.mode
    }

    /// Column currents (A, length `M`) for row voltages `v_rows` (V, length `N`).
    /// Non-finite voltages give non-finite currents. An exact solve that has not converged
    /// (not seen for physical arrays) returns its last iterate: [`Self::solve_nodes`]
    /// reports the residual.
    ///
    /// # Panics
    /// If `v_rows.len() != N` (a programming error; validate user input before).
    pub fn solve(&self, v_rows: &[f64]) -> Vec<f64> {
        self.solve_oriented(false, v_rows)
    }

    /// Row currents (A, length `N`) for column voltages `v_cols` (V, length `M`), the
    /// columns driven at their bottom ends and the rows sensed at their left ends.
    ///
    /// # Panics
    /// If `v_cols.len() != M`.
    pub fn solve_transposed(&self, v_cols: &[f64]) -> Vec<f64> {
        self.solve_oriented(true, v_cols)
    }

    /// Column currents for a batch of row-voltage vectors: `inputs` is `batch x N`
    /// row-major, the result `batch x M`. Vectors are solved independently and in parallel
    /// (rayon), so the result does not depend on the thread count.
    ///
    /// # Panics
    /// If `inputs.len()` is not a multiple of `N`.
    pub fn solve_batch(&self, inputs: &[f64]) -> Vec<f64> {
        self.solve_batch_oriented(false, inputs)
    }

    /// Row currents for a batch of column-voltage vectors (`batch x M` in, `batch x N`
    /// out), solved independently and in parallel.
    ///
    /// # Panics
    /// If `inputs.len()` is not a multiple of `M`.
    pub fn solve_batch_transposed(&self, inputs: &[f64]) -> Vec<f64> {
        self.solve_batch_oriented(true, inputs)
    }

    /// Full solution of a forward read: node voltages, currents and the Kirchhoff residual.
    ///
    /// # Panics
    /// If `v_rows.len() != N`.
    pub fn solve_nodes(&self, v_rows: &[f64]) -> IrDropSolution {
        self.solve_nodes_oriented(false, v_rows)
    }

    /// Full solution of a transposed read (columns driven, rows sensed).
    ///
    /// # Panics
    /// If `v_cols.len() != M`.
    pub fn solve_nodes_transposed(&self, v_cols: &[f64]) -> IrDropSolution {
        self.solve_nodes_oriented(true, v_cols)
    }

    /// Number of inputs and outputs of a forward (`false`) or transposed (`true`) read.
    fn io_sizes(&self, transposed: bool) -> (usize, usize) {
        if transposed {
            (self.n_cols, self.n_rows)
        } else {
            (self.n_rows, self.n_cols)
        }
    }

    fn check_inputs(&self, transposed: bool, v_in: &[f64]) {
        let (n_in, _) = self.io_sizes(transposed);
        assert_eq!(
            v_in.len(),
            n_in,
            "IR-drop solve: expected {n_in} input voltages"
        );
    }

    /// The forward (`false`) or transposed (`true`) orientation of the network.
    fn oriented(&self, transposed: bool) -> Oriented<'_> {
        match &self.network {
            Network::Distributed {
                forward,
                transposed: trans,
                ends,
            } => {
                if transposed {
                    Oriented::Distributed(trans.get_or_init(|| {
                        Self::orientation(
                            LineAxis::Cols,
                            &self.g_s,
                            self.n_rows,
                            self.n_cols,
                            *ends,
                        )
                    }))
                } else {
                    Oriented::Distributed(forward)
                }
            }
            Network::Lumped {
                forward,
                transposed: trans,
            } => Oriented::Lumped(if transposed { trans } else { forward }),
        }
    }

    fn solve_oriented(&self, transposed: bool, v_in: &[f64]) -> Vec<f64> {
        self.check_inputs(transposed, v_in);
        match (self.oriented(transposed), self.mode) {
            (Oriented::Distributed(o), SolveMode::Exact) => {
                let (sensed_v, _) = o.exact_sensed_v(&self.g_s, v_in);
                o.sensed_currents(&sensed_v)
            }
            (Oriented::Distributed(o), SolveMode::Approx) => o.approx_currents(&self.g_s, v_in),
            (Oriented::Lumped(o), _) => o.solve(v_in).currents_a,
        }
    }

    fn solve_batch_oriented(&self, transposed: bool, inputs: &[f64]) -> Vec<f64> {
        let (n_in, n_out) = self.io_sizes(transposed);
        assert!(
            inputs.len().is_multiple_of(n_in),
            "IR-drop batch: {} values is not a whole number of {n_in}-voltage vectors",
            inputs.len()
        );
        let batch = inputs.len() / n_in;
        let mut out = vec![0.0; batch * n_out];
        out.par_chunks_mut(n_out)
            .zip(inputs.par_chunks(n_in))
            .for_each(|(o, v)| {
                o.copy_from_slice(&self.solve_oriented(transposed, v));
            });
        out
    }

    fn solve_nodes_oriented(&self, transposed: bool, v_in: &[f64]) -> IrDropSolution {
        self.check_inputs(transposed, v_in);
        match self.oriented(transposed) {
            Oriented::Distributed(o) => {
                let sol = match self.mode {
                    SolveMode::Exact => o.solve_exact(&self.g_s, v_in),
                    SolveMode::Approx => o.solve_approx(&self.g_s, v_in),
                };
                let residual_rel = o.kcl_residual(&self.g_s, v_in, &sol);
                let currents_a = o.sensed_currents(&sol.sensed_v);
                let (row_node_v, col_node_v) = if transposed {
                    (sol.sensed_v, sol.driven_v)
                } else {
                    (sol.driven_v, sol.sensed_v)
                };
                IrDropSolution {
                    row_node_v,
                    col_node_v,
                    currents_a,
                    residual_rel,
                    iterations: sol.iterations,
                }
            }
            Oriented::Lumped(o) => {
                let sol = o.solve(v_in);
                let residual_rel = o.kcl_residual(v_in, &sol);
                self.expand_lumped(transposed, sol, residual_rel)
            }
        }
    }

    /// Node voltages of the lumped network: every node of a line at the line's voltage.
    fn expand_lumped(
        &self,
        transposed: bool,
        sol: LumpedSolution,
        residual: f64,
    ) -> IrDropSolution {
        let (n, m) = (self.n_rows, self.n_cols);
        let (row_line_v, col_line_v) = if transposed {
            (&sol.sensed_v, &sol.driven_v)
        } else {
            (&sol.driven_v, &sol.sensed_v)
        };
        let row_node_v = (0..n * m).map(|k| row_line_v[k / m]).collect();
        let col_node_v = (0..n * m).map(|k| col_line_v[k % m]).collect();
        IrDropSolution {
            row_node_v,
            col_node_v,
            currents_a: sol.currents_a,
            residual_rel: residual,
            iterations: 0,
        }
    }
}
