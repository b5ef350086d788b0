//! The lumped network (`r_wire = 0`): every line is one equipotential node.
//!
//! Driven line `a` sits at `x_a` behind the driver conductance `g_d` (an ideal source when
//! `r_driver = 0`), sensed line `b` at `y_b` behind the sense conductance `g_s` (an ideal
//! virtual ground when `r_sense = 0`), and device `(a, b)` joins them. Kirchhoff's current
//! law gives `(g_d + Σ_b G_ab) x_a - Σ_b G_ab y_b = g_d V_a` and
//! `(g_s + Σ_a G_ab) y_b - Σ_a G_ab x_a = 0`. With an ideal source and an ideal ground this
//! is the ideal product `I = Gᵀ V`; with one ideal end the other unknowns follow in closed
//! form; with both ends resistive the driven lines are eliminated and the dense
//! `n_sensed x n_sensed` Schur complement is solved by Cholesky factorisation.

use anyhow::{Result, bail};
use nalgebra::{Cholesky, DMatrix, DVector, Dyn};

/// Line voltages of one solve of the lumped network.
#[derive(Debug, Clone)]
pub(super) struct LumpedSolution {
    /// One voltage per driven line (V).
    pub(super) driven_v: Vec<f64>,
    /// One voltage per sensed line (V).
    pub(super) sensed_v: Vec<f64>,
    /// Current into each sensed line's sense amplifier (A).
    pub(super) currents_a: Vec<f64>,
}

/// One orientation of the lumped network: `g` is `n_driven x n_sensed` row-major.
#[derive(Debug)]
pub(super) struct LumpedOrientation {
    g_s: Vec<f64>,
    n_driven: usize,
    n_sensed: usize,
    /// Driver conductance (S), `None` for an ideal source.
    g_driver_s: Option<f64>,
    /// Sense conductance (S), `None` for an ideal virtual ground.
    g_sense_s: Option<f64>,
    /// Total device conductance on each driven line (S).
    driven_sum_s: Vec<f64>,
    /// Total device conductance on each sensed line (S).
    sensed_sum_s: Vec<f64>,
    /// Cholesky factor of the sensed Schur complement (both ends resistive only).
    schur: Option<Cholesky<f64, Dyn>>,
}

impl LumpedOrientation {
    /// `g_s` is `n_driven x n_sensed` row-major; `None` end conductances are ideal ends.
    pub(super) fn new(
        g_s: Vec<f64>,
        n_driven: usize,
        n_sensed: usize,
        g_driver_s: Option<f64>,
        g_sense_s: Option<f64>,
    ) -> Result<Self> {
        let driven_sum_s = g_s
            .chunks_exact(n_sensed)
            .map(|row| row.iter().sum())
            .collect();
        let mut sensed_sum_s = vec![0.0; n_sensed];
        for row in g_s.chunks_exact(n_sensed) {
            for (s, &g) in sensed_sum_s.iter_mut().zip(row) {
                *s += g;
            }
        }
        let mut network = Self {
            g_s,
            n_driven,
            n_sensed,
            g_driver_s,
            g_sense_s,
            driven_sum_s,
            sensed_sum_s,
            schur: None,
        };
        if let (Some(g_d), Some(g_sense)) = (g_driver_s, g_sense_s) {
            network.schur = Some(network.factor_schur(g_d, g_sense)?);
        }
        Ok(network)
    }

    /// Solve for the inputs `v_in` (one per driven line).
    pub(super) fn solve(&self, v_in: &[f64]) -> LumpedSolution {
        let driven_v = match (self.g_driver_s, self.g_sense_s, &self.schur) {
            (None, ..) => v_in.to_vec(),
            (Some(g_d), Some(g_sense), Some(chol)) => {
                return self.solve_both_resistive(g_d, g_sense, chol, v_in);
            }
            (Some(g_d), ..) => (0..self.n_driven)
                .map(|a| g_d * v_in[a] / (g_d + self.driven_sum_s[a]))
                .collect(),
        };
        let injected = self.transpose_product(&driven_v);
        let (sensed_v, currents_a) = match self.g_sense_s {
            None => (vec![0.0; self.n_sensed], injected),
            Some(g_s) => {
                let y: Vec<f64> = injected
                    .iter()
                    .zip(&self.sensed_sum_s)
                    .map(|(i, s)| i / (g_s + s))
                    .collect();
                let currents = y.iter().map(|v| g_s * v).collect();
                (y, currents)
            }
        };
        LumpedSolution {
            driven_v,
            sensed_v,
            currents_a,
        }
    }

    /// `Gᵀ x`: the current each sensed line collects from driven-line voltages `x`.
    fn transpose_product(&self, x: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; self.n_sensed];
        for (row, &xa) in self.g_s.chunks_exact(self.n_sensed).zip(x) {
            for (o, &g) in out.iter_mut().zip(row) {
                *o += g * xa;
            }
        }
        out
    }

    fn solve_both_resistive(
        &self,
        g_d: f64,
        g_sense: f64,
        chol: &Cholesky<f64, Dyn>,
        v_in: &[f64],
    ) -> LumpedSolution {
        let scaled: Vec<f64> = (0..self.n_driven)
            .map(|a| g_d * v_in[a] / (g_d + self.driven_sum_s[a]))
            .collect();
        let rhs = DVector::from_vec(self.transpose_product(&scaled));
        let sensed_v: Vec<f64> = chol.solve(&rhs).iter().copied().collect();
        let driven_v = (0..self.n_driven)
            .map(|a| {
                let row = &self.g_s[a * self.n_sensed..(a + 1) * self.n_sensed];
                let collected: f64 = row.iter().zip(&sensed_v).map(|(g, y)| g * y).sum();
                (g_d * v_in[a] + collected) / (g_d + self.driven_sum_s[a])
            })
            .collect();
        let currents_a = sensed_v.iter().map(|y| g_sense * y).collect();
        LumpedSolution {
            driven_v,
            sensed_v,
            currents_a,
        }
    }

    /// Cholesky factor of `diag(g_s + Σ_a G_ab) - Gᵀ diag(1 / (g_d + Σ_b G_ab)) G`.
    fn factor_schur(&self, g_d: f64, g_sense: f64) -> Result<Cholesky<f64, Dyn>> {
        let mut scaled = DMatrix::from_row_slice(self.n_driven, self.n_sensed, &self.g_s);
        for (a, mut row) in scaled.row_iter_mut().enumerate() {
            row /= (g_d + self.driven_sum_s[a]).sqrt();
        }
        let mut schur = -(scaled.transpose() * &scaled);
        for (b, s) in self.sensed_sum_s.iter().enumerate() {
            schur[(b, b)] += g_sense + s;
        }
        match Cholesky::new(schur) {
            Some(chol) => Ok(chol),
            None => bail!(
                "the r_wire = 0 network is numerically singular (sense conductance {g_sense:e} S \
                 is negligible next to the device conductances); use a smaller r_sense"
            ),
        }
    }

    /// Kirchhoff residual of the lumped equations relative to the branch currents.
    pub(super) fn kcl_residual(&self, v_in: &[f64], sol: &LumpedSolution) -> f64 {
        let mut imbalance2 = 0.0;
        let mut magnitude2 = 0.0;
        let mut sensed_in = vec![0.0; self.n_sensed];
        let mut sensed_abs = vec![0.0; self.n_sensed];
        let lines = self
            .g_s
            .chunks_exact(self.n_sensed)
            .zip(v_in)
            .zip(&sol.driven_v);
        for ((row, &v), &x) in lines {
            let (mut net, mut abs) = match self.g_driver_s {
                Some(g_d) => {
                    let i = g_d * (v - x);
                    (i, i.abs())
                }
                None => (0.0, 0.0),
            };
            for (b, &g) in row.iter().enumerate() {
                let i_dev = g * (x - sol.sensed_v[b]);
                net -= i_dev;
                abs += i_dev.abs();
                sensed_in[b] += i_dev;
                sensed_abs[b] += i_dev.abs();
            }
            if self.g_driver_s.is_some() {
                imbalance2 += net * net;
                magnitude2 += abs * abs;
            }
        }
        if let Some(g_s) = self.g_sense_s {
            let lines = sol.sensed_v.iter().zip(&sensed_in).zip(&sensed_abs);
            for ((&y, &i_in), &i_abs) in lines {
                let i_out = g_s * y;
                let net = i_in - i_out;
                let abs = i_abs + i_out.abs();
                imbalance2 += net * net;
                magnitude2 += abs * abs;
            }
        }
        relative(imbalance2, magnitude2)
    }
}

/// `sqrt(imbalance2 / magnitude2)`, 0 when nothing flows.
pub(super) fn relative(imbalance2: f64, magnitude2: f64) -> f64 {
    if imbalance2 == 0.0 {
        0.0
    } else {
        (imbalance2 / magnitude2).sqrt()
    }
}
