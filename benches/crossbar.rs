//! Crossbar tile benchmarks: the noisy tile against an ideal f32 GEMM / GEMV of the same
//! shape on the same thread count, and write-verify programming of a 256 x 256 tile.
//!
//! Targets (issue 3): noisy 512 x 512 tile, batch 256 (8-bit DAC/ADC, PCM read noise drawn
//! at every read, drift compensation) <= 2.5x the ideal GEMM; one noisy vector <= 3x the
//! ideal GEMV; write-verify of a 256 x 256 tile < 100 ms.
//!
//! Run: `cargo bench --bench crossbar` (1 and 2 threads are both measured).

use std::hint::black_box;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use faer::{Accum, MatMut, MatRef, Par, linalg::matmul::matmul};
use rand::RngExt;
use xbar::crossbar::{AdcRange, Direction, ProgrammingMethod, Tile, TileConfig, VerifyCorrection};
use xbar::device::preset;

const N: usize = 512;
const BATCH: usize = 256;
/// PCM inference time for the benchmark: one day after programming, seconds.
const ONE_DAY_S: f64 = 86_400.0;

fn random_vec(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = xbar::rng::stream(seed, &[]);
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn pcm_tile(n: usize, config: TileConfig) -> Tile<xbar::device::AnyDevice> {
    let device = preset::load("pcm_gst", &toml::Table::new()).expect("pcm_gst preset");
    Tile::new(device, n, n, config, 7, 0).expect("tile")
}

fn noisy_config() -> TileConfig {
    let mut config = TileConfig {
        max_rows: N,
        max_cols: N,
        ..TileConfig::default()
    };
    config.periphery.dac_bits = Some(8);
    config.periphery.adc.bits = Some(8);
    config.periphery.adc.range = AdcRange::ColumnMax { fraction: 0.25 };
    config.periphery.read_noise = true;
    config.periphery.drift_compensation = true;
    config.programming.method = ProgrammingMethod::OpenLoop;
    config
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool")
}

/// The noisy 512 x 512 PCM tile programmed with random weights and read one day later,
/// a batch of inputs, an ideal f32 matrix of the same shape, and an output buffer.
fn mvm_setup() -> (Tile<xbar::device::AnyDevice>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let weights: Vec<f64> = random_vec(N * N, 1).iter().map(|&w| f64::from(w)).collect();
    let mut tile = pcm_tile(N, noisy_config());
    tile.program(&weights).expect("program");
    tile.set_read_time(ONE_DAY_S).expect("drift");
    let x = random_vec(BATCH * N, 2);
    let g32 = random_vec(N * N, 3);
    (tile, x, g32, vec![0f32; BATCH * N])
}

fn bench_mvm(c: &mut Criterion) {
    let (mut tile, x, g32, mut y) = mvm_setup();
    let mut group = c.benchmark_group("mvm_512");
    for threads in [1usize, 2] {
        let pool = pool(threads);
        let par = if threads == 1 {
            Par::Seq
        } else {
            Par::rayon(threads)
        };
        group.bench_function(BenchmarkId::new("ideal_gemm_f32_batch256", threads), |b| {
            b.iter(|| {
                pool.install(|| {
                    let dst = MatMut::from_row_major_slice_mut(&mut y, BATCH, N);
                    let lhs = MatRef::from_row_major_slice(&x, BATCH, N);
                    let rhs = MatRef::from_row_major_slice(&g32, N, N);
                    matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, par);
                });
                black_box(&y);
            })
        });
        group.bench_function(BenchmarkId::new("noisy_pcm_tile_batch256", threads), |b| {
            b.iter(|| {
                pool.install(|| tile.forward_batch(&x, BATCH, &mut y).expect("mvm"));
                black_box(&y);
            })
        });
        group.bench_function(
            BenchmarkId::new("noisy_pcm_tile_transposed_batch256", threads),
            |b| {
                b.iter(|| {
                    pool.install(|| {
                        tile.read_batch(Direction::Transposed, &x, BATCH, &mut y)
                            .expect("mvm")
                    });
                    black_box(&y);
                })
            },
        );
    }
    let x1 = &x[..N];
    let mut y1 = vec![0f32; N];
    group.bench_function("ideal_gemv_f32_single", |b| {
        b.iter(|| {
            let dst = MatMut::from_column_major_slice_mut(&mut y1, N, 1);
            let lhs = MatRef::from_row_major_slice(&g32, N, N);
            let rhs = MatRef::from_column_major_slice(x1, N, 1);
            matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, Par::Seq);
            black_box(&y1);
        })
    });
    group.bench_function("noisy_pcm_tile_single", |b| {
        b.iter(|| {
            // A single vector runs on the calling thread (no rayon hand-off), like the GEMV.
            tile.forward_batch(x1, 1, &mut y1).expect("mvm");
            black_box(&y1);
        })
    });
    group.finish();
}

/// Fastest of `reps` runs, seconds: the least disturbed measurement on a shared machine.
fn min_time(reps: usize, f: &mut dyn FnMut()) -> f64 {
    (0..reps)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// Interleaved minimum-time ratios noisy tile / ideal product (printed), so that load from
/// other processes, which inflates criterion's means, cancels out.
fn report_ratios(_c: &mut Criterion) {
    let (mut tile, x, g32, mut y) = mvm_setup();
    for threads in [1usize, 2] {
        let pool = pool(threads);
        let par = if threads == 1 {
            Par::Seq
        } else {
            Par::rayon(threads)
        };
        let (mut ideal, mut noisy) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..20 {
            ideal = ideal.min(min_time(20, &mut || {
                pool.install(|| {
                    let dst = MatMut::from_row_major_slice_mut(&mut y, BATCH, N);
                    let lhs = MatRef::from_row_major_slice(&x, BATCH, N);
                    let rhs = MatRef::from_row_major_slice(&g32, N, N);
                    matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, par);
                })
            }));
            noisy = noisy.min(min_time(20, &mut || {
                pool.install(|| tile.forward_batch(&x, BATCH, &mut y).expect("mvm"))
            }));
        }
        println!(
            "ratio batch {BATCH} x {N}x{N}, {threads} thread(s): ideal GEMM {:.3} ms, noisy \
             tile {:.3} ms, noisy/ideal {:.2}",
            ideal * 1e3,
            noisy * 1e3,
            noisy / ideal
        );
    }
    let mut y1 = vec![0f32; N];
    let (mut ideal, mut noisy) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..5 {
        ideal = ideal.min(min_time(200, &mut || {
            let dst = MatMut::from_column_major_slice_mut(&mut y1, N, 1);
            let lhs = MatRef::from_row_major_slice(&g32, N, N);
            let rhs = MatRef::from_column_major_slice(&x[..N], N, 1);
            matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, Par::Seq);
        }));
        noisy = noisy.min(min_time(200, &mut || {
            tile.forward_batch(&x[..N], 1, &mut y1).expect("mvm");
        }));
    }
    println!(
        "ratio single vector {N}x{N}: ideal GEMV {:.1} us, noisy tile {:.1} us, noisy/ideal {:.2}",
        ideal * 1e6,
        noisy * 1e6,
        noisy / ideal
    );
}

fn bench_program(c: &mut Criterion) {
    let n = 256;
    let weights: Vec<f64> = random_vec(n * n, 4).iter().map(|&w| f64::from(w)).collect();
    let mut config = noisy_config();
    config.programming.method = ProgrammingMethod::WriteVerify;
    config.programming.correction = VerifyCorrection::Reprogram;
    config.programming.tolerance_fraction = 0.02;
    config.programming.max_pulses = 20;
    let mut tile = pcm_tile(n, config);
    let mut group = c.benchmark_group("program_256");
    group.sample_size(20);
    for threads in [1usize, 2] {
        let pool = pool(threads);
        group.bench_function(BenchmarkId::new("write_verify_pcm", threads), |b| {
            b.iter(|| pool.install(|| black_box(tile.program(&weights).expect("program"))))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // No plots: criterion's plotters backend needs system fonts this machine lacks.
    config = Criterion::default().without_plots();
    targets = report_ratios, bench_mvm, bench_program
}
criterion_main!(benches);
