//! The distributed network (`r_wire > 0`): the 2·N·M-node nodal system solved on its
//! sensed-line Schur complement.
//!
//! With `x` the driven-line node voltages and `y` the sensed-line node voltages, the nodal
//! equations read `R x - D y = b` and `-D x + C y = 0`, where `R` and `C` are the
//! block-tridiagonal line operators of the two families (wires, terminals and device
//! conductances on the diagonal), `D = diag(G)` and `b` injects `g_end · V` at the driven
//! terminals. Eliminating the driven lines (one Thomas sweep) leaves the symmetric positive
//! definite system `S y = D R⁻¹ b` with `S = C - D R⁻¹ D`, which is solved by conjugate
//! gradients preconditioned with the sensed-line factorisation `C⁻¹`. The preconditioned
//! operator is `I - C⁻¹ D R⁻¹ D`, whose eigenvalues lie in `(1 - ρ², 1]` where `ρ` measures
//! how strongly the devices couple a row line to the column lines compared with the
//! wires: few iterations for realistic arrays.

use super::lines::{LineAxis, LineFamily};
use super::lumped::relative;

/// Relative tolerance on the Schur residual `‖D R⁻¹ b - S y‖ / ‖D R⁻¹ b‖` of the exact mode.
/// `D R⁻¹ b` is the vector of device currents the driven lines would push into grounded
/// sensed lines, so the criterion is a current balance relative to the device currents.
pub(super) const EXACT_REL_TOL: f64 = 1e-12;

/// Upper bound on conjugate-gradient iterations (never reached for physical arrays: the
/// iteration count grows like the square root of the preconditioned condition number).
const MAX_CG_ITERATIONS: usize = 20_000;

/// Number of block Gauss–Seidel line sweeps of the approximate mode.
pub(super) const APPROX_SWEEPS: usize = 2;

/// One orientation of the network: which line family is driven and which is sensed.
#[derive(Debug, Clone)]
pub(super) struct Orientation {
    driven: LineFamily,
    sensed: LineFamily,
    /// Driven-line node voltages per volt of input with the sensed lines grounded,
    /// `φ = R⁻¹ (g_end e_terminal)` for every driven line (V/V).
    unit_profile: Vec<f64>,
}

/// Node voltages of one solve of the distributed network, both families row-major `N x M`.
#[derive(Debug, Clone)]
pub(super) struct DistributedSolution {
    pub(super) driven_v: Vec<f64>,
    pub(super) sensed_v: Vec<f64>,
    pub(super) iterations: usize,
}

impl Orientation {
    /// Factorise both families; `driven_axis` says which family carries the inputs.
    pub(super) fn new(
        driven_axis: LineAxis,
        g_s: &[f64],
        n_rows: usize,
        n_cols: usize,
        g_wire_s: f64,
        g_driver_end_s: f64,
        g_sense_end_s: f64,
    ) -> Self {
        let sensed_axis = match driven_axis {
            LineAxis::Rows => LineAxis::Cols,
            LineAxis::Cols => LineAxis::Rows,
        };
        let driven = LineFamily::new(driven_axis, g_s, n_rows, n_cols, g_wire_s, g_driver_end_s);
        let sensed = LineFamily::new(sensed_axis, g_s, n_rows, n_cols, g_wire_s, g_sense_end_s);
        let mut unit_profile = vec![0.0; g_s.len()];
        for line in 0..driven.n_lines() {
            unit_profile[driven.end_index(line)] = g_driver_end_s;
        }
        driven.solve_in_place(&mut unit_profile);
        Self {
            driven,
            sensed,
            unit_profile,
        }
    }

    /// Driven-line voltages with the sensed lines grounded: `R⁻¹ b = φ V`.
    fn grounded_driven_v(&self, v_in: &[f64]) -> Vec<f64> {
        let mut x = vec![0.0; self.unit_profile.len()];
        self.driven
            .add_scaled_profile(&mut x, &self.unit_profile, v_in);
        x
    }

    /// Driven-line voltages for sensed-line voltages `y` held in `x` on entry:
    /// `x = R⁻¹ (b + D y) = φ V + R⁻¹ D y`, in place.
    fn driven_response_in_place(&self, g_s: &[f64], v_in: &[f64], x: &mut [f64]) {
        multiply_in_place(x, g_s);
        self.driven.solve_in_place(x);
        self.driven.add_scaled_profile(x, &self.unit_profile, v_in);
    }

    /// Driven-line voltages for sensed-line voltages `sensed_v` (see
    /// [`Self::driven_response_in_place`]).
    fn driven_response(&self, g_s: &[f64], v_in: &[f64], sensed_v: &[f64]) -> Vec<f64> {
        let mut x = sensed_v.to_vec();
        self.driven_response_in_place(g_s, v_in, &mut x);
        x
    }

    /// `q = S p = C p - D R⁻¹ D p`, using `t` as workspace; returns `p · q`.
    fn apply_schur(&self, g_s: &[f64], p: &[f64], t: &mut [f64], q: &mut [f64]) -> f64 {
        for ((ti, &g), &pi) in t.iter_mut().zip(g_s).zip(p) {
            *ti = g * pi;
        }
        self.driven.solve_in_place(t);
        // Row by row, so the wire product, the device terms and the dot product share one
        // pass over memory.
        let m = self.driven.n_cols();
        let mut pq = 0.0;
        for (i, q_row) in q.chunks_exact_mut(m).enumerate() {
            self.sensed.wire_matvec_row(p, i, q_row);
            let row = i * m..(i + 1) * m;
            let terms = q_row
                .iter_mut()
                .zip(&g_s[row.clone()])
                .zip(&p[row.clone()])
                .zip(&t[row]);
            for (((qk, &g), &pk), &tk) in terms {
                *qk += g * (pk - tk);
                pq += pk * *qk;
            }
        }
        pq
    }

    /// Exact sensed-line voltages: preconditioned conjugate gradients on the Schur
    /// complement until the relative residual is below [`EXACT_REL_TOL`]. Returns the
    /// voltages and the number of iterations.
    pub(super) fn exact_sensed_v(&self, g_s: &[f64], v_in: &[f64]) -> (Vec<f64>, usize) {
        // Right-hand side D R⁻¹ b: the device currents into grounded sensed lines.
        let mut rhs = self.grounded_driven_v(v_in);
        multiply_in_place(&mut rhs, g_s);
        let rhs_norm = norm2(&rhs);
        let len = g_s.len();
        if !rhs_norm.is_finite() {
            // Non-finite input voltages: no meaningful solution, propagate NaN.
            return (vec![f64::NAN; len], 0);
        }
        let mut y = vec![0.0; len];
        let mut iterations = 0;
        if rhs_norm > 0.0 {
            let mut ws = Workspace::new(len);
            ws.r.copy_from_slice(&rhs);
            // Restart from the true residual if the recursive one drifted (rare).
            for _ in 0..3 {
                iterations += self.pcg(g_s, &mut y, &mut ws, EXACT_REL_TOL * rhs_norm);
                self.apply_schur(g_s, &y, &mut ws.t, &mut ws.q);
                for ((r, &b), &q) in ws.r.iter_mut().zip(&rhs).zip(&ws.q) {
                    *r = b - q;
                }
                if norm2(&ws.r) <= EXACT_REL_TOL * rhs_norm {
                    break;
                }
            }
        }
        (y, iterations)
    }

    /// Exact solve with all node voltages.
    pub(super) fn solve_exact(&self, g_s: &[f64], v_in: &[f64]) -> DistributedSolution {
        let (sensed_v, iterations) = self.exact_sensed_v(g_s, v_in);
        let driven_v = self.driven_response(g_s, v_in, &sensed_v);
        DistributedSolution {
            driven_v,
            sensed_v,
            iterations,
        }
    }

    /// Conjugate gradients from the residual already in `ws.r`; returns the iterations.
    fn pcg(&self, g_s: &[f64], y: &mut [f64], ws: &mut Workspace, abs_tol: f64) -> usize {
        let Workspace { r, z, p, q, t } = ws;
        if norm2(r) <= abs_tol {
            return 0;
        }
        z.copy_from_slice(r);
        self.sensed.solve_in_place(z);
        p.copy_from_slice(z);
        let mut rz = dot(r, z);
        for iteration in 1..=MAX_CG_ITERATIONS {
            let alpha = rz / self.apply_schur(g_s, p, t, q);
            let mut r2 = 0.0;
            for (((yi, ri), &pi), &qi) in y.iter_mut().zip(r.iter_mut()).zip(&*p).zip(&*q) {
                *yi += alpha * pi;
                *ri -= alpha * qi;
                r2 += *ri * *ri;
            }
            if r2.sqrt() <= abs_tol {
                return iteration;
            }
            z.copy_from_slice(r);
            self.sensed.solve_in_place(z);
            let rz_new = dot(r, z);
            let beta = rz_new / rz;
            rz = rz_new;
            for (pi, &zi) in p.iter_mut().zip(&*z) {
                *pi = zi + beta * *pi;
            }
        }
        MAX_CG_ITERATIONS
    }

    /// Driven-line voltages after `APPROX_SWEEPS - 1` block Gauss–Seidel sweeps from
    /// grounded sensed lines, in place in one vector.
    fn approx_driven_v(&self, g_s: &[f64], v_in: &[f64]) -> Vec<f64> {
        let mut x = self.grounded_driven_v(v_in);
        for _ in 1..APPROX_SWEEPS {
            multiply_in_place(&mut x, g_s);
            self.sensed.solve_in_place(&mut x);
            self.driven_response_in_place(g_s, v_in, &mut x);
        }
        x
    }

    /// Approximate output currents: [`APPROX_SWEEPS`] block Gauss–Seidel sweeps over the
    /// two line families, starting from grounded sensed lines; the last sensed-line solve
    /// stops at the terminal nodes.
    pub(super) fn approx_currents(&self, g_s: &[f64], v_in: &[f64]) -> Vec<f64> {
        let mut injected = self.approx_driven_v(g_s, v_in);
        multiply_in_place(&mut injected, g_s);
        let g_end = self.sensed.g_end_s();
        let mut currents = self.sensed.solve_terminals(&mut injected);
        currents.iter_mut().for_each(|c| *c *= g_end);
        currents
    }

    /// Approximate solve with all node voltages (the driven-line voltages of the last
    /// sweep and the sensed-line voltages they produce).
    pub(super) fn solve_approx(&self, g_s: &[f64], v_in: &[f64]) -> DistributedSolution {
        let driven_v = self.approx_driven_v(g_s, v_in);
        let mut sensed_v = device_currents(g_s, &driven_v);
        self.sensed.solve_in_place(&mut sensed_v);
        DistributedSolution {
            driven_v,
            sensed_v,
            iterations: APPROX_SWEEPS,
        }
    }

    /// Kirchhoff residual of the full network (see `lumped::relative`) for the inputs `v_in`.
    pub(super) fn kcl_residual(&self, g_s: &[f64], v_in: &[f64], sol: &DistributedSolution) -> f64 {
        let mut sums = (0.0, 0.0);
        self.driven
            .accumulate_kcl(g_s, &sol.driven_v, &sol.sensed_v, v_in, &mut sums);
        let grounds = vec![0.0; self.sensed.n_lines()];
        self.sensed
            .accumulate_kcl(g_s, &sol.sensed_v, &sol.driven_v, &grounds, &mut sums);
        relative(sums.0, sums.1)
    }

    /// Currents into the sense amplifiers: `g_end · y` at each sensed terminal (A).
    pub(super) fn sensed_currents(&self, sensed_v: &[f64]) -> Vec<f64> {
        let g_end = self.sensed.g_end_s();
        (0..self.sensed.n_lines())
            .map(|line| g_end * sensed_v[self.sensed.end_index(line)])
            .collect()
    }
}

/// `x ∘= g`.
fn multiply_in_place(x: &mut [f64], g_s: &[f64]) {
    x.iter_mut().zip(g_s).for_each(|(xk, g)| *xk *= g);
}

/// Device currents `G ∘ x` for node voltages `x` across grounded counterparts.
fn device_currents(g_s: &[f64], x: &[f64]) -> Vec<f64> {
    g_s.iter().zip(x).map(|(g, v)| g * v).collect()
}

/// Conjugate-gradient work vectors.
struct Workspace {
    r: Vec<f64>,
    z: Vec<f64>,
    p: Vec<f64>,
    q: Vec<f64>,
    t: Vec<f64>,
}

impl Workspace {
    fn new(len: usize) -> Self {
        Self {
            r: vec![0.0; len],
            z: vec![0.0; len],
            p: vec![0.0; len],
            q: vec![0.0; len],
            t: vec![0.0; len],
        }
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm2(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}
