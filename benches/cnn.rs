//! Convolutional-network benchmarks (issue 12 targets, `docs/BENCHMARKS.md`): one training
//! epoch of LeNet-5 on MNIST-10k's 8,000 training digits (batch 32, Adam, no augmentation,
//! as `scripts/bench_lenet_pytorch.py` runs PyTorch), and inference of 500 test digits
//! digitally (im2col products) and on noisy PCM tiles (8-bit DAC/ADC with calibrated
//! ranges, read noise at every read, 1 s after programming). After the measurements it
//! prints analog time / digital time and the analog images per second.
//!
//! Run: `cargo bench --bench cnn` (rayon's default thread count; `RAYON_NUM_THREADS=1`
//! for the per-core figures).

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use xbar::crossbar::{AdcRange, TileConfig};
use xbar::device::preset;
use xbar::nn::sequential::Sequential;
use xbar::nn::sequential::spec::named;
use xbar::nn::sequential::train::train;
use xbar::nn::{Classifier, Deployment, Optimizer, TrainConfig};
use xbar::synapses::{DigitalSynapses, InputScaling};

/// Test images per inference measurement.
const IMAGES: usize = 500;
/// Training images the ADC ranges are calibrated on.
const CALIBRATION_IMAGES: usize = 256;

fn lenet5() -> Sequential<DigitalSynapses> {
    let (input, layers) = named("lenet5").expect("lenet5");
    Sequential::random(input, &layers, 1).expect("lenet5")
}

/// Seconds per call of `f`, the best of `runs`.
fn best_of(runs: usize, mut f: impl FnMut()) -> f64 {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn cnn(c: &mut Criterion) {
    // As `xbar run` does (`xbar::threads::with_threads`), the measured work runs on a
    // worker of a pool (RAYON_NUM_THREADS threads), so its parallel loops start there
    // instead of each being handed over from the calling thread.
    let pool = rayon::ThreadPoolBuilder::new().build().expect("rayon pool");
    let split = xbar::data::mnist10k().expect("embedded MNIST-10k");
    let one_epoch = TrainConfig {
        epochs: 1,
        batch_size: 32,
        optimizer: Optimizer::adam(1e-3),
        ..TrainConfig::default()
    };
    let mut group = c.benchmark_group("cnn");
    group.sample_size(10);
    group.bench_function("lenet5_train_epoch_8000_batch32", |b| {
        b.iter(|| {
            pool.install(|| {
                let mut net = lenet5();
                black_box(train(&mut net, &split.train, &one_epoch, &mut |_| {}).expect("train"))
            })
        })
    });

    let x = &split.test.images[..IMAGES * 784];
    let mut digital = lenet5();
    group.bench_function("lenet5_digital_infer_500", |b| {
        b.iter(|| pool.install(|| black_box(digital.logits(x, IMAGES).expect("inference"))))
    });

    let device = preset::load("pcm_gst", &toml::Table::new()).expect("pcm_gst");
    let mut tile = TileConfig::default();
    tile.periphery.dac_bits = Some(8);
    tile.periphery.adc.bits = Some(8);
    tile.periphery.adc.range = AdcRange::Calibrated { margin: 1.2 };
    let deployment = Deployment {
        device: &device,
        tile,
        t_inference_s: 1.0,
        seed: 3,
    };
    let calibration = &split.train.images[..CALIBRATION_IMAGES * 784];
    let mut analog = deployment
        .program_sequential(&digital, InputScaling::AbsMax, calibration)
        .expect("deploy");
    group.bench_function("lenet5_pcm_8bit_infer_500", |b| {
        b.iter(|| pool.install(|| black_box(analog.logits(x, IMAGES).expect("inference"))))
    });
    group.finish();

    let t_digital = best_of(5, || {
        pool.install(|| black_box(digital.logits(x, IMAGES).expect("inference")));
    });
    let t_analog = best_of(5, || {
        pool.install(|| black_box(analog.logits(x, IMAGES).expect("inference")));
    });
    println!(
        "LeNet-5 on {IMAGES} images: analog PCM tiles {:.1} ms ({:.0} images/s), digital \
         im2col {:.1} ms; analog / digital = {:.2} (target <= 2.5)",
        t_analog * 1e3,
        IMAGES as f64 / t_analog,
        t_digital * 1e3,
        t_analog / t_digital
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = cnn
}
criterion_main!(benches);
