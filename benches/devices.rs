//! Device-model throughput: fabricate, program, pulse and read 10,000 cells of each preset
//! on one thread (the cost floor of every array operation).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use xbar::device::{AnyDevice, Device, Polarity, preset};
use xbar::rng::stream;

const CELLS: usize = 10_000;

fn devices() -> Vec<(&'static str, AnyDevice)> {
    ["ideal", "rram_hfo2", "pcm_gst", "stt_mram"]
        .into_iter()
        .map(|name| {
            (
                name,
                preset::load(name, &toml::Table::new()).expect("built-in preset"),
            )
        })
        .collect()
}

fn bench_devices(c: &mut Criterion) {
    let mut group = c.benchmark_group("device");
    group.throughput(Throughput::Elements(CELLS as u64));
    group.sample_size(20);
    for (name, device) in devices() {
        let (g_min, g_max) = device.nominal_window();
        let g_target = 0.5 * (g_min + g_max);
        let mut rng = stream(1, &[0]);
        let mut cells: Vec<_> = (0..CELLS).map(|_| device.fabricate(&mut rng)).collect();
        group.bench_function(BenchmarkId::new("fabricate", name), |b| {
            b.iter(|| (0..CELLS).map(|_| device.fabricate(&mut rng)).count())
        });
        group.bench_function(BenchmarkId::new("program", name), |b| {
            b.iter(|| {
                cells
                    .iter_mut()
                    .for_each(|s| _ = device.program(s, g_target, &mut rng))
            })
        });
        let pulse = device.nominal_pulse(Polarity::Set);
        group.bench_function(BenchmarkId::new("pulse", name), |b| {
            b.iter(|| {
                cells
                    .iter_mut()
                    .for_each(|s| _ = device.apply_pulse(s, &pulse, &mut rng))
            })
        });
        group.bench_function(BenchmarkId::new("read_1h", name), |b| {
            b.iter(|| {
                cells
                    .iter_mut()
                    .map(|s| device.read(s, 3600.0, &mut rng))
                    .sum::<f64>()
            })
        });
        black_box(&cells);
    }
    group.finish();
}

criterion_group!(benches, bench_devices);
criterion_main!(benches);
