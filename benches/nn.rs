//! Network benchmarks: one training epoch of the reference 784-256-128-10 MLP and of a
//! 784-512-10 binary network on MNIST-10k's 8,000 training digits, and inference on its
//! 2,000 test digits (digital MLP and folded BNN).
//!
//! Target (issue 4): the MLP reaches ≥ 96 % test accuracy in under a minute of training on
//! 2 cores (about 30 epochs are used, so an epoch should stay well below 2 s).
//!
//! Run: `cargo bench --bench nn` (uses rayon's default thread count).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use xbar::nn::{
    InputEncoding, Mlp, Quantization, QuantizedMlp, TrainConfig, evaluate, train, train_quantized,
};

fn benches(c: &mut Criterion) {
    let split = xbar::data::mnist10k().expect("embedded MNIST-10k");
    let one_epoch = TrainConfig {
        epochs: 1,
        max_shift_px: 2,
        ..TrainConfig::default()
    };
    let mut group = c.benchmark_group("nn");
    group.sample_size(10);
    group.bench_function("mlp_784_256_128_10_train_epoch_8000", |b| {
        b.iter(|| {
            let mut mlp = Mlp::random(&[784, 256, 128, 10], 1).expect("mlp");
            black_box(train(&mut mlp, &split.train, &one_epoch).expect("train"))
        })
    });
    let mut mlp = Mlp::random(&[784, 256, 128, 10], 1).expect("mlp");
    group.bench_function("mlp_784_256_128_10_evaluate_2000", |b| {
        b.iter(|| black_box(evaluate(&mut mlp, &split.test).expect("evaluate")))
    });
    let bnn_config = TrainConfig {
        batch_size: 100,
        ..one_epoch
    };
    let random_bnn = || {
        QuantizedMlp::random(
            &[784, 512, 10],
            Quantization::Binary,
            InputEncoding::Binary,
            1,
        )
        .expect("bnn")
    };
    group.bench_function("bnn_784_512_10_train_epoch_8000", |b| {
        b.iter(|| {
            let mut net = random_bnn();
            black_box(train_quantized(&mut net, &split.train, &bnn_config).expect("train"))
        })
    });
    let mut folded = random_bnn().fold().expect("fold");
    group.bench_function("bnn_784_512_10_folded_evaluate_2000", |b| {
        b.iter(|| black_box(evaluate(&mut folded, &split.test).expect("evaluate")))
    });
    group.finish();
}

criterion_group!(nn, benches);
criterion_main!(nn);
