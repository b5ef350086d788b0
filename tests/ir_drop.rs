//! Physics tests of the IR-drop nodal solver (`xbar::crossbar::ir_drop`).
//!
//! Circuit (module docs): row `i` is driven at its left end by `V_i` through `r_driver` and
//! one wire segment, column `j` is held at 0 V at its bottom end through `r_sense` and one
//! wire segment, one `r_wire` between neighbouring cells, device `(i, j)` joins row node
//! `(i, j)` to column node `(i, j)`; the transposed read drives the columns at their bottom
//! ends and senses the rows at their left ends.

use rand::RngExt;
use xbar::crossbar::ir_drop::{IrDropSolution, IrDropSolver, SolveMode, WireParams};

/// Conductance range of the "realistic" test arrays (S): 1-100 µS.
const G_LO_S: f64 = 1e-6;
const G_HI_S: f64 = 100e-6;
/// Highest read voltage of the test inputs (V).
const V_MAX_V: f64 = 0.2;

fn random_g(n: usize, m: usize, seed: u64) -> Vec<f64> {
    let mut rng = xbar::rng::stream(seed, &[n as u64, m as u64]);
    (0..n * m)
        .map(|_| rng.random_range(G_LO_S..G_HI_S))
        .collect()
}

fn random_v(len: usize, seed: u64) -> Vec<f64> {
    let mut rng = xbar::rng::stream(seed, &[len as u64, 7]);
    (0..len).map(|_| rng.random_range(0.01..V_MAX_V)).collect()
}

fn wires(r_wire_ohm: f64, r_driver_ohm: f64, r_sense_ohm: f64) -> WireParams {
    WireParams {
        r_wire_ohm,
        r_driver_ohm,
        r_sense_ohm,
    }
}

fn solver(g: &[f64], n: usize, m: usize, w: WireParams, mode: SolveMode) -> IrDropSolver {
    IrDropSolver::new(g, n, m, &w, mode).expect("valid test array")
}

/// Ideal product `Gᵀ V` (column currents of an array without wire resistance).
fn ideal_forward(g: &[f64], n: usize, m: usize, v_rows: &[f64]) -> Vec<f64> {
    (0..m)
        .map(|j| (0..n).map(|i| g[i * m + j] * v_rows[i]).sum())
        .collect()
}

/// Ideal product `G V` (row currents of a transposed read without wire resistance).
fn ideal_transposed(g: &[f64], n: usize, m: usize, v_cols: &[f64]) -> Vec<f64> {
    (0..n)
        .map(|i| (0..m).map(|j| g[i * m + j] * v_cols[j]).sum())
        .collect()
}

fn max_rel_diff(a: &[f64], b: &[f64]) -> f64 {
    let scale = b.iter().fold(0.0_f64, |acc, x| acc.max(x.abs()));
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
        / scale
}

/// Kirchhoff's current law at every node, recomputed here from the node voltages alone:
/// returns the largest `|Σ I| / Σ |I|` over all `2·N·M` nodes (branch currents: wires,
/// device, terminal connection to the source or the virtual ground). Also checks that the
/// reported output currents equal the terminal branch currents.
fn worst_node_kcl(
    g: &[f64],
    (n, m): (usize, usize),
    w: &WireParams,
    transposed: bool,
    v_in: &[f64],
    sol: &IrDropSolution,
) -> f64 {
    let gw = 1.0 / w.r_wire_ohm;
    let (g_row_end, g_col_end) = if transposed {
        (
            1.0 / (w.r_wire_ohm + w.r_sense_ohm),
            1.0 / (w.r_wire_ohm + w.r_driver_ohm),
        )
    } else {
        (
            1.0 / (w.r_wire_ohm + w.r_driver_ohm),
            1.0 / (w.r_wire_ohm + w.r_sense_ohm),
        )
    };
    let (u, c) = (&sol.row_node_v, &sol.col_node_v);
    let mut worst = 0.0_f64;
    let mut record = |branches: &[f64]| {
        let net: f64 = branches.iter().sum();
        let magnitude: f64 = branches.iter().map(|b| b.abs()).sum();
        worst = worst.max(net.abs() / magnitude);
    };
    for i in 0..n {
        for j in 0..m {
            let k = i * m + j;
            let device = g[k] * (c[k] - u[k]);
            // Row node (i, j): left neighbour or the row terminal, right neighbour, device.
            let row_source_v = if transposed { 0.0 } else { v_in[i] };
            let left = if j == 0 {
                g_row_end * (row_source_v - u[k])
            } else {
                gw * (u[k - 1] - u[k])
            };
            let right = if j + 1 < m {
                gw * (u[k + 1] - u[k])
            } else {
                0.0
            };
            record(&[left, right, device]);
            // Column node (i, j): upper neighbour, lower neighbour or the column terminal.
            let col_source_v = if transposed { v_in[j] } else { 0.0 };
            let up = if i > 0 { gw * (c[k - m] - c[k]) } else { 0.0 };
            let down = if i + 1 < n {
                gw * (c[k + m] - c[k])
            } else {
                g_col_end * (col_source_v - c[k])
            };
            record(&[up, down, -device]);
        }
    }
    // The outputs are the currents through the sensed terminals into the virtual ground.
    let expected: Vec<f64> = if transposed {
        (0..n).map(|i| g_row_end * u[i * m]).collect()
    } else {
        (0..m).map(|j| g_col_end * c[(n - 1) * m + j]).collect()
    };
    assert!(max_rel_diff(&sol.currents_a, &expected) < 1e-12);
    worst
}

/// KCL at every node to 1e-9 (relative to the branch currents at that node), forward and
/// transposed, with resistive drivers and sense amplifiers; the charge delivered by the
/// drivers equals the charge collected by the sense amplifiers.
#[test]
fn kirchhoff_current_law_holds_at_every_node() {
    let (n, m) = (24, 17);
    let g = random_g(n, m, 1);
    for w in [wires(2.0, 30.0, 10.0), wires(0.5, 0.0, 0.0)] {
        let s = solver(&g, n, m, w, SolveMode::Exact);
        for transposed in [false, true] {
            let v_in = random_v(if transposed { m } else { n }, 2);
            let sol = if transposed {
                s.solve_nodes_transposed(&v_in)
            } else {
                s.solve_nodes(&v_in)
            };
            let worst = worst_node_kcl(&g, (n, m), &w, transposed, &v_in, &sol);
            assert!(
                worst < 1e-9,
                "worst node KCL {worst:e} ({w:?}, transposed {transposed})"
            );
            assert!(
                sol.residual_rel < 1e-9,
                "reported residual {:e}",
                sol.residual_rel
            );
            // Current drawn from the drivers (through their terminal branches).
            let g_drv = 1.0 / (w.r_wire_ohm + w.r_driver_ohm);
            let drawn: f64 = if transposed {
                (0..m)
                    .map(|j| g_drv * (v_in[j] - sol.col_node_v[(n - 1) * m + j]))
                    .sum()
            } else {
                (0..n)
                    .map(|i| g_drv * (v_in[i] - sol.row_node_v[i * m]))
                    .sum()
            };
            let collected: f64 = sol.currents_a.iter().sum();
            assert!(
                (drawn - collected).abs() < 1e-9 * collected,
                "{drawn:e} vs {collected:e}"
            );
        }
    }
}

/// The exact mode reaches a Kirchhoff residual below 1e-9 on a large, strongly coupled array
/// (256 x 256, 1-100 µS, 3 Ω per segment: the worst column loses most of its current).
#[test]
fn exact_mode_residual_below_1e_minus_9_on_large_array() {
    let n = 256;
    let g = random_g(n, n, 3);
    let s = solver(&g, n, n, wires(3.0, 0.0, 0.0), SolveMode::Exact);
    let sol = s.solve_nodes(&random_v(n, 4));
    assert!(sol.residual_rel < 1e-9, "residual {:e}", sol.residual_rel);
    assert!(
        sol.iterations > 0 && sol.iterations < 100,
        "{} iterations",
        sol.iterations
    );
}

/// With r_wire = 0 and ideal periphery every line is one node: the outputs are exactly the
/// ideal products Gᵀ V (forward) and G V (transposed), in both modes.
#[test]
fn zero_wire_resistance_gives_the_ideal_product() {
    let (n, m) = (13, 29);
    let g = random_g(n, m, 5);
    let (v_rows, v_cols) = (random_v(n, 6), random_v(m, 7));
    for mode in [SolveMode::Exact, SolveMode::Approx] {
        let s = solver(&g, n, m, wires(0.0, 0.0, 0.0), mode);
        assert!(max_rel_diff(&s.solve(&v_rows), &ideal_forward(&g, n, m, &v_rows)) < 1e-14);
        let got = s.solve_transposed(&v_cols);
        assert!(max_rel_diff(&got, &ideal_transposed(&g, n, m, &v_cols)) < 1e-14);
    }
}

/// As r_wire -> 0 the currents converge to Gᵀ V, with an error proportional to r_wire
/// (IR drop is first order in the wire resistance): the error shrinks tenfold for each
/// tenfold smaller r_wire.
#[test]
fn vanishing_wire_resistance_converges_linearly_to_the_ideal_product() {
    let (n, m) = (40, 30);
    let g = random_g(n, m, 8);
    let v = random_v(n, 9);
    let ideal = ideal_forward(&g, n, m, &v);
    let error = |r: f64| {
        let got = solver(&g, n, m, wires(r, 0.0, 0.0), SolveMode::Exact).solve(&v);
        max_rel_diff(&got, &ideal)
    };
    let (e3, e4, e5) = (error(1e-3), error(1e-4), error(1e-5));
    assert!(e5 < 1e-5, "error at 1e-5 ohm: {e5:e}");
    assert!((e3 / e4 - 10.0).abs() < 0.05, "ratio {}", e3 / e4);
    assert!((e4 / e5 - 10.0).abs() < 0.01, "ratio {}", e4 / e5);
}

/// A single row (N = 1) is a discrete ladder: series wire conductance g_w, shunt
/// g_sh = (G⁻¹ + r_wire + r_sense)⁻¹ to ground at every node, open far end. With an ideal
/// driver, u_k = V cosh(θ (M - 1/2 - k)) / cosh(θ (M + 1/2)) with cosh θ = 1 + g_sh / (2 g_w)
/// (the open end acts as a mirror about M - 1/2 and the source as node -1), and the current
/// of column k is g_sh u_k.
#[test]
fn single_row_matches_the_ladder_closed_form() {
    let (m, g_dev, r_w, r_s, v) = (50, 80e-6, 5.0, 20.0, 0.15);
    let g = vec![g_dev; m];
    let s = solver(&g, 1, m, wires(r_w, 0.0, r_s), SolveMode::Exact);
    let got = s.solve(&[v]);
    let g_sh = 1.0 / (1.0 / g_dev + r_w + r_s);
    let theta = (1.0 + g_sh * r_w / 2.0).acosh();
    let m_f = m as f64;
    let expected: Vec<f64> = (0..m)
        .map(|k| g_sh * v * (theta * (m_f - 0.5 - k as f64)).cosh() / (theta * (m_f + 0.5)).cosh())
        .collect();
    assert!(max_rel_diff(&got, &expected) < 1e-10, "{got:?}");
}

/// A single column (M = 1) with uniform inputs is the dual ladder: every row injects through
/// g_sh = (G⁻¹ + r_wire + r_driver)⁻¹ from V, open top end, ideal virtual ground one
/// segment below the last cell: w_i = V (1 - cosh(θ (i + 1/2)) / cosh(θ (N + 1/2))) and the
/// sensed current is g_w w_(N-1).
#[test]
fn single_column_matches_the_ladder_closed_form() {
    let (n, g_dev, r_w, r_d, v) = (64, 50e-6, 8.0, 40.0, 0.1);
    let g = vec![g_dev; n];
    let s = solver(&g, n, 1, wires(r_w, r_d, 0.0), SolveMode::Exact);
    let got = s.solve(&vec![v; n])[0];
    let g_sh = 1.0 / (1.0 / g_dev + r_w + r_d);
    let theta = (1.0 + g_sh * r_w / 2.0).acosh();
    let n_f = n as f64;
    let expected = v / r_w * (1.0 - (theta * (n_f - 0.5)).cosh() / (theta * (n_f + 0.5)).cosh());
    assert!(
        ((got - expected) / expected).abs() < 1e-10,
        "{got:e} vs {expected:e}"
    );
}

/// Uniform array, uniform inputs: every column loses current, and the loss grows
/// monotonically with the distance from the drivers (the row wires carry the currents of
/// all cells further along); node voltages fall along each row away from its driver and
/// rise up each column away from its sense amplifier. Transposed: the row currents fall
/// with the distance from the column drivers at the bottom.
#[test]
fn uniform_array_loses_current_monotonically_along_the_lines() {
    let (n, m) = (32, 40);
    let g = vec![60e-6; n * m];
    let s = solver(&g, n, m, wires(2.0, 0.0, 0.0), SolveMode::Exact);
    let sol = s.solve_nodes(&vec![0.2; n]);
    let ideal = 0.2 * 60e-6 * n as f64;
    assert!(sol.currents_a.iter().all(|&i| i < ideal && i > 0.5 * ideal));
    assert!(
        sol.currents_a.windows(2).all(|w| w[1] < w[0]),
        "{:?}",
        sol.currents_a
    );
    for i in 0..n {
        let row = &sol.row_node_v[i * m..(i + 1) * m];
        assert!(row.windows(2).all(|w| w[1] < w[0]) && row[0] < 0.2);
    }
    for j in 0..m {
        assert!((1..n).all(|i| sol.col_node_v[i * m + j] < sol.col_node_v[(i - 1) * m + j]));
    }
    let rows = s.solve_transposed(&vec![0.2; m]);
    assert!(rows.windows(2).all(|w| w[1] > w[0]), "{rows:?}");
}

/// First-order IR-drop theory for a uniform array (conductance G, inputs V, ideal
/// periphery, small r = r_wire): the ideal currents flowing through the wires lower the
/// device voltages by the row drop r G V [(j+1) M - j (j+1)/2] plus the column rise
/// r G V Σ_(i'≥i) (i'+1), so column j loses the fraction
/// δ_j = r G [(j+1) M - j (j+1)/2 + (N+1)(2N+1)/6] of its ideal current N G V.
#[test]
fn uniform_array_matches_first_order_theory() {
    let (n, m, g_dev, r, v) = (32, 48, 10e-6, 0.01, 0.2);
    let g = vec![g_dev; n * m];
    let got = solver(&g, n, m, wires(r, 0.0, 0.0), SolveMode::Exact).solve(&vec![v; n]);
    let ideal = n as f64 * g_dev * v;
    let (n_f, m_f) = (n as f64, m as f64);
    for (j, &i) in got.iter().enumerate() {
        let j_f = j as f64;
        let delta = r
            * g_dev
            * ((j_f + 1.0) * m_f - j_f * (j_f + 1.0) / 2.0 + (n_f + 1.0) * (2.0 * n_f + 1.0) / 6.0);
        let loss = (ideal - i) / ideal;
        // Second-order terms are of relative size ~δ (about 3e-4 here).
        assert!(
            ((loss - delta) / delta).abs() < 2e-3,
            "column {j}: {loss:e} vs {delta:e}"
        );
    }
}

/// Mirror symmetry: a transposed read (columns driven at the bottom, rows sensed at the
/// left) is the forward read of the mirrored array G'[M-1-j][N-1-i] = G[i][j], with the
/// inputs and outputs mirrored too (the driven column j becomes row M-1-j whose terminal
/// is at its left end; the sensed row i becomes column N-1-i sensed at its bottom). Holds
/// for unequal driver and sense resistances, in both modes.
#[test]
fn transposed_read_equals_forward_read_of_the_mirrored_array() {
    let (n, m) = (21, 14);
    let g = random_g(n, m, 10);
    let mut mirrored = vec![0.0; n * m];
    for i in 0..n {
        for j in 0..m {
            mirrored[(m - 1 - j) * n + (n - 1 - i)] = g[i * m + j];
        }
    }
    let w = wires(3.0, 25.0, 7.0);
    let v_cols = random_v(m, 11);
    let v_mirrored: Vec<f64> = v_cols.iter().rev().copied().collect();
    for mode in [SolveMode::Exact, SolveMode::Approx] {
        let got = solver(&g, n, m, w, mode).solve_transposed(&v_cols);
        let mut expected = solver(&mirrored, m, n, w, mode).solve(&v_mirrored);
        expected.reverse();
        assert!(max_rel_diff(&got, &expected) < 1e-10, "{mode:?}");
    }
}

/// Reciprocity (the network is made of resistors): with equal driver and sense
/// resistances the ports are identical in both directions, so the transposed transfer
/// matrix is the transpose of the forward one: v_cᵀ K v_r = v_rᵀ K_T v_c.
#[test]
fn reciprocity_with_matched_periphery() {
    let (n, m) = (19, 26);
    let g = random_g(n, m, 12);
    let s = solver(&g, n, m, wires(4.0, 15.0, 15.0), SolveMode::Exact);
    let (v_r, v_c) = (random_v(n, 13), random_v(m, 14));
    let forward: f64 = s.solve(&v_r).iter().zip(&v_c).map(|(i, v)| i * v).sum();
    let backward: f64 = s
        .solve_transposed(&v_c)
        .iter()
        .zip(&v_r)
        .map(|(i, v)| i * v)
        .sum();
    assert!(
        ((forward - backward) / forward).abs() < 1e-10,
        "{forward:e} vs {backward:e}"
    );
}

/// Approximate mode against the exact one, against the bounds documented in the module
/// docs: error (max over outputs, relative to the largest output) below 1e-5 where the
/// worst column loses <= 10 % of its ideal current, 3e-4 up to 25 %, 1e-2 up to 50 %, 5e-2
/// up to 75 %, 0.2 beyond. Each case's bound follows from its measured loss.
#[test]
fn approx_error_within_documented_bound() {
    let n = 128;
    let g = random_g(n, n, 15);
    let v = random_v(n, 16);
    let ideal = ideal_forward(&g, n, n, &v);
    // (loss ceiling, error bound) of the documented table.
    let table = [
        (0.10, 1e-5),
        (0.25, 3e-4),
        (0.50, 1e-2),
        (0.75, 5e-2),
        (1.0, 0.2),
    ];
    let mut bins_hit = Vec::new();
    for r in [0.05, 0.2, 0.6, 3.0, 10.0] {
        let exact = solver(&g, n, n, wires(r, 0.0, 0.0), SolveMode::Exact).solve(&v);
        let approx = solver(&g, n, n, wires(r, 0.0, 0.0), SolveMode::Approx).solve(&v);
        let loss = exact
            .iter()
            .zip(&ideal)
            .map(|(e, i)| (i - e) / i)
            .fold(0.0, f64::max);
        let bin = table
            .iter()
            .position(|&(ceiling, _)| loss <= ceiling)
            .expect("loss <= 1");
        let err = max_rel_diff(&approx, &exact);
        assert!(err < table[bin].1, "r {r}: loss {loss:.3}, error {err:e}");
        assert!(err > 0.0, "the approximation is not exact for r_wire > 0");
        bins_hit.push(bin);
    }
    // The five wire resistances exercise every row of the table.
    assert_eq!(bins_hit, [0, 1, 2, 3, 4]);
}

/// Lumped network with resistive periphery (r_wire = 0, dense Cholesky path) agrees with the
/// distributed solver at a vanishing wire resistance, forward and transposed.
#[test]
fn lumped_network_with_resistive_periphery_matches_the_wire_limit() {
    let (n, m) = (15, 22);
    let g = random_g(n, m, 17);
    let w0 = wires(0.0, 120.0, 45.0);
    let lumped = solver(&g, n, m, w0, SolveMode::Exact);
    let wired = solver(&g, n, m, wires(1e-7, 120.0, 45.0), SolveMode::Exact);
    let (v_r, v_c) = (random_v(n, 18), random_v(m, 19));
    let sol = lumped.solve_nodes(&v_r);
    assert!(
        sol.residual_rel < 1e-12,
        "lumped residual {:e}",
        sol.residual_rel
    );
    assert!(max_rel_diff(&sol.currents_a, &wired.solve(&v_r)) < 1e-6);
    let sol_t = lumped.solve_nodes_transposed(&v_c);
    assert!(sol_t.residual_rel < 1e-12);
    assert!(max_rel_diff(&sol_t.currents_a, &wired.solve_transposed(&v_c)) < 1e-6);
    // Every node of a lumped line sits at the line voltage.
    assert!((0..m).all(|j| sol.row_node_v[j] == sol.row_node_v[0]));
}

/// Batches are solved vector by vector: identical (bit for bit) to single solves, with one
/// and with two threads, forward and transposed.
#[test]
fn batch_equals_single_solves_for_any_thread_count() {
    let (n, m, batch) = (48, 36, 6);
    let g = random_g(n, m, 20);
    let s = solver(&g, n, m, wires(1.5, 10.0, 5.0), SolveMode::Exact);
    let inputs = random_v(batch * n, 21);
    let inputs_t = random_v(batch * m, 22);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool");
        pool.install(|| (s.solve_batch(&inputs), s.solve_batch_transposed(&inputs_t)))
    };
    let (one, one_t) = run(1);
    let (two, two_t) = run(2);
    assert_eq!(one, two);
    assert_eq!(one_t, two_t);
    let singles: Vec<f64> = inputs.chunks(n).flat_map(|v| s.solve(v)).collect();
    let singles_t: Vec<f64> = inputs_t
        .chunks(m)
        .flat_map(|v| s.solve_transposed(v))
        .collect();
    assert_eq!(one, singles);
    assert_eq!(one_t, singles_t);
}

/// Bad construction inputs are rejected with a message naming the problem.
#[test]
fn invalid_inputs_are_rejected() {
    let ok = wires(1.0, 0.0, 0.0);
    let g = vec![1e-5; 6];
    let err = |g: &[f64], n, m, w: WireParams| {
        IrDropSolver::new(g, n, m, &w, SolveMode::Exact)
            .expect_err("must fail")
            .to_string()
    };
    assert!(err(&g, 2, 4, ok).contains("expected 2 x 4"));
    assert!(err(&g, 0, 6, ok).contains("at least one row"));
    let mut bad = g.clone();
    bad[4] = -1e-6;
    assert!(err(&bad, 2, 3, ok).contains("cell (1, 1)"));
    bad[4] = f64::NAN;
    assert!(err(&bad, 2, 3, ok).contains("finite"));
    bad[4] = f64::INFINITY;
    assert!(err(&bad, 2, 3, ok).contains("finite"));
    assert!(err(&g, 2, 3, wires(-1.0, 0.0, 0.0)).contains("r_wire_ohm"));
    assert!(err(&g, 2, 3, wires(1.0, f64::NAN, 0.0)).contains("r_driver_ohm"));
    assert!(err(&g, 2, 3, wires(1.0, 0.0, f64::INFINITY)).contains("r_sense_ohm"));
    assert!(err(&g, 2, 3, wires(1e-320, 0.0, 0.0)).contains("too small"));
    // Non-finite voltages give non-finite currents in every mode, never a silent number.
    for (w, mode) in [
        (ok, SolveMode::Exact),
        (ok, SolveMode::Approx),
        (wires(0.0, 5.0, 5.0), SolveMode::Exact),
    ] {
        let s = solver(&g, 2, 3, w, mode);
        assert!(
            s.solve(&[0.1, f64::NAN]).iter().all(|i| !i.is_finite()),
            "{w:?} {mode:?}"
        );
        assert!(
            s.solve_transposed(&[0.1, f64::INFINITY, 0.2])
                .iter()
                .all(|i| !i.is_finite())
        );
    }
}
