//! IR-drop solver benchmarks (issue 3 targets, one core): exact 256x256 <= 50 ms,
//! exact 512x512 <= 400 ms, a batch of 64 vectors on 256x256 <= 3 s, approximate mode at
//! least 10x faster than exact.
//!
//! The array is a realistic one: conductances uniform in 1-100 µS, inputs uniform in
//! 0-0.2 V, r_wire = 1 Ω per segment, ideal drivers and sense amplifiers. `solve` groups
//! time one vector with the solver already built (the line factorisations are shared by
//! every vector of a conductance matrix); `build+solve` groups include building it.
//! Run single-threaded with `RAYON_NUM_THREADS=1 cargo bench --bench ir_drop`.

use criterion::{Criterion, criterion_group, criterion_main};
use rand::RngExt;
use std::hint::black_box;
use std::time::Duration;
use xbar::crossbar::ir_drop::{IrDropSolver, SolveMode, WireParams};

/// Lowest and highest device conductance of the benchmark arrays (S).
const G_RANGE_S: (f64, f64) = (1e-6, 100e-6);
/// Highest read voltage (V).
const V_READ_MAX_V: f64 = 0.2;
/// Wire resistance per segment (Ω).
const R_WIRE_OHM: f64 = 1.0;
/// Input vectors of the batch benchmark.
const BATCH: usize = 64;

fn conductances(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = xbar::rng::stream(seed, &[n as u64]);
    (0..n * n)
        .map(|_| rng.random_range(G_RANGE_S.0..G_RANGE_S.1))
        .collect()
}

fn voltages(len: usize, seed: u64) -> Vec<f64> {
    let mut rng = xbar::rng::stream(seed, &[len as u64, 1]);
    (0..len)
        .map(|_| rng.random_range(0.0..V_READ_MAX_V))
        .collect()
}

fn wires() -> WireParams {
    WireParams {
        r_wire_ohm: R_WIRE_OHM,
        r_driver_ohm: 0.0,
        r_sense_ohm: 0.0,
    }
}

fn bench_single(c: &mut Criterion) {
    for (n, mode, label) in [
        (256, SolveMode::Exact, "exact"),
        (512, SolveMode::Exact, "exact"),
        (256, SolveMode::Approx, "approx"),
        (512, SolveMode::Approx, "approx"),
    ] {
        let g = conductances(n, 1);
        let v = voltages(n, 2);
        let solver = IrDropSolver::new(&g, n, n, &wires(), mode).expect("valid benchmark array");
        let mut group = c.benchmark_group(format!("ir_drop_{label}_{n}x{n}"));
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(3));
        group.bench_function("solve", |b| b.iter(|| solver.solve(black_box(&v))));
        group.bench_function("build+solve", |b| {
            b.iter(|| {
                let s = IrDropSolver::new(black_box(&g), n, n, &wires(), mode);
                s.map(|s| s.solve(&v))
            })
        });
        group.finish();
    }
}

fn bench_batch(c: &mut Criterion) {
    let n = 256;
    let g = conductances(n, 3);
    let inputs = voltages(BATCH * n, 4);
    let solver =
        IrDropSolver::new(&g, n, n, &wires(), SolveMode::Exact).expect("valid benchmark array");
    let mut group = c.benchmark_group(format!("ir_drop_exact_batch{BATCH}_{n}x{n}"));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(6));
    group.bench_function("solve_batch", |b| {
        b.iter(|| solver.solve_batch(black_box(&inputs)))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    // Criterion's plots need system fonts that the build machines lack.
    config = Criterion::default().without_plots();
    targets = bench_single, bench_batch
}
criterion_main!(benches);
