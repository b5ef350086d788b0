//! Equilibrium-propagation benchmarks: one training epoch of the reference 784-512-10
//! network on MNIST-10k's 8,000 training digits (T1 30, T2 10, β 0.1, symmetric ±β
//! nudging, mini-batches of 50: three relaxation phases per batch, 160 batches), with both
//! activations, one epoch of the 95 %-accuracy settings (`EpConfig::mnist10k_784_512_10`,
//! mini-batches of 10), inference on the 2,000 test digits, and one epoch of the
//! two-hidden-layer 784-512-512-10 variant.
//!
//! Target (issue 5): under 4 s per epoch on 2 threads, 3x faster than the authors' PyTorch
//! code (about 11 s per epoch on this machine kind).
//!
//! The ConvNet of `experiments/ep_conv_mnist.toml` (Laborieux et al. 2021's P_CNN: conv 32
//! and 64 channels, 5 x 5, 2 x 2 max pooling, fc 10, hard sigmoid, T1 60, T2 10, symmetric
//! nudging, batches of 50) trains on 200 digits (4 mini-batches): divide by 4 for the time
//! per batch that `benches/reference/ep_convnet_laborieux.py` reports for the reference
//! code (issue 12 target: 3x faster).
//!
//! Run: `cargo bench --bench ep` (uses rayon's default thread count).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use xbar::learning::ep::{
    Activation, EpConfig, EpConv, EpNetwork, EpOptimizerState, Nudging, evaluate, train_epoch,
};
use xbar::synapses::DigitalSynapses;

type Group<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

fn ep_benches(c: &mut Criterion) {
    // As `xbar run` does (`xbar::threads::with_threads`), the measured work runs on a
    // worker of a pool (rayon's default size), so its parallel loops start there instead
    // of each being handed over from the calling thread.
    let pool = rayon::ThreadPoolBuilder::new().build().expect("rayon pool");
    let split = xbar::data::mnist10k().expect("embedded MNIST-10k");
    let reference = EpConfig::default();
    let mut group = c.benchmark_group("ep");
    group.sample_size(10);
    for (name, activation) in [
        ("hard_sigmoid", Activation::HardSigmoid),
        ("steep_sigmoid", Activation::SteepSigmoid),
    ] {
        let net = EpNetwork::digital(&[784, 512, 10], activation, 1).expect("network");
        let name = format!("784_512_10_{name}_train_epoch_8000");
        train_epochs(&mut group, &pool, &name, net, &split.train, &reference);
    }
    let tuned = EpConfig::mnist10k_784_512_10();
    let net = EpNetwork::digital(&[784, 512, 10], Activation::SteepSigmoid, 1).expect("net");
    let name = "784_512_10_steep_sigmoid_batch_10_train_epoch_8000";
    train_epochs(&mut group, &pool, name, net, &split.train, &tuned);
    let mut net = EpNetwork::digital(&[784, 512, 10], Activation::HardSigmoid, 1).expect("net");
    group.bench_function("784_512_10_evaluate_2000", |b| {
        b.iter(|| {
            pool.install(|| {
                black_box(evaluate(&mut net, &split.test, reference.free_steps).expect("eval"))
            })
        })
    });
    let deep = EpConfig {
        learning_rates: vec![0.08, 0.04, 0.02],
        ..EpConfig::default()
    };
    let net =
        EpNetwork::digital(&[784, 512, 512, 10], Activation::HardSigmoid, 1).expect("network");
    let name = "784_512_512_10_hard_sigmoid_train_epoch_8000";
    train_epochs(&mut group, &pool, name, net, &split.train, &deep);
    convnet_bench(&mut group, &pool, &split.train.take(200));
    group.finish();
}

/// Bench `name`: one epoch of `config` on `data` per iteration, training `net` on (the
/// epoch number counting up from 1, as a run's epochs do).
fn train_epochs(
    group: &mut Group<'_>,
    pool: &rayon::ThreadPool,
    name: &str,
    mut net: EpNetwork<DigitalSynapses>,
    data: &xbar::data::Dataset,
    config: &EpConfig,
) {
    let mut epoch = 0;
    group.bench_function(name, |b| {
        b.iter(|| {
            pool.install(|| {
                epoch += 1;
                let mut rule = config.rule();
                let mut state = EpOptimizerState::new(config);
                let report = train_epoch(&mut net, data, config, &mut rule, &mut state, epoch);
                black_box(report.expect("train"))
            })
        })
    });
}

/// Four mini-batches of the reference EP ConvNet.
fn convnet_bench(group: &mut Group<'_>, pool: &rayon::ThreadPool, data: &xbar::data::Dataset) {
    let conv = |out| EpConv {
        out,
        kernel: 5,
        padding: 0,
        pool: 2,
    };
    let config = EpConfig {
        free_steps: 60,
        nudged_steps: 10,
        beta: 0.4,
        nudging: Nudging::Symmetric,
        learning_rates: vec![0.1, 0.05, 0.02],
        batch_size: 50,
        ..EpConfig::default()
    };
    let net = EpNetwork::digital_convnet(
        [1, 28, 28],
        &[conv(32), conv(64)],
        &[10],
        Activation::HardSigmoid,
        1,
    )
    .expect("ConvNet");
    let name = "convnet_32_64_hard_sigmoid_train_200";
    train_epochs(group, pool, name, net, data, &config);
}

criterion_group! {
    name = benches;
    // Criterion's plots need system fonts (see docs/BENCHMARKS.md).
    config = Criterion::default().without_plots();
    targets = ep_benches
}
criterion_main!(benches);
