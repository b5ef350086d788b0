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
//! Run: `cargo bench --bench ep` (uses rayon's default thread count).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use xbar::learning::ep::{Activation, EpConfig, EpNetwork, evaluate, train_epoch};

fn ep_benches(c: &mut Criterion) {
    let split = xbar::data::mnist10k().expect("embedded MNIST-10k");
    let reference = EpConfig::default();
    let mut group = c.benchmark_group("ep");
    group.sample_size(10);
    for (name, activation) in [
        ("hard_sigmoid", Activation::HardSigmoid),
        ("steep_sigmoid", Activation::SteepSigmoid),
    ] {
        let mut net = EpNetwork::digital(&[784, 512, 10], activation, 1).expect("network");
        let mut epoch = 0;
        group.bench_function(format!("784_512_10_{name}_train_epoch_8000"), |b| {
            b.iter(|| {
                epoch += 1;
                black_box(
                    train_epoch(
                        &mut net,
                        &split.train,
                        &reference,
                        &mut reference.rule(),
                        epoch,
                    )
                    .expect("train"),
                )
            })
        });
    }
    let tuned = EpConfig::mnist10k_784_512_10();
    let mut net = EpNetwork::digital(&[784, 512, 10], Activation::SteepSigmoid, 1).expect("net");
    let mut epoch = 0;
    group.bench_function("784_512_10_steep_sigmoid_batch_10_train_epoch_8000", |b| {
        b.iter(|| {
            epoch += 1;
            black_box(
                train_epoch(&mut net, &split.train, &tuned, &mut tuned.rule(), epoch)
                    .expect("train"),
            )
        })
    });
    let mut net = EpNetwork::digital(&[784, 512, 10], Activation::HardSigmoid, 1).expect("net");
    group.bench_function("784_512_10_evaluate_2000", |b| {
        b.iter(|| black_box(evaluate(&mut net, &split.test, reference.free_steps).expect("eval")))
    });
    let deep = EpConfig {
        learning_rates: vec![0.08, 0.04, 0.02],
        ..EpConfig::default()
    };
    let mut net =
        EpNetwork::digital(&[784, 512, 512, 10], Activation::HardSigmoid, 1).expect("network");
    let mut epoch = 0;
    group.bench_function("784_512_512_10_hard_sigmoid_train_epoch_8000", |b| {
        b.iter(|| {
            epoch += 1;
            black_box(
                train_epoch(&mut net, &split.train, &deep, &mut deep.rule(), epoch).expect("train"),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, ep_benches);
criterion_main!(benches);
