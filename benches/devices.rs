//! Device-model throughput: fabricate, program, pulse and read 10,000 cells of each preset
//! on one thread (the cost floor of every array operation); and `xbar fit`'s fit of a
//! 1,000-pulse, 10-device measurement file for every step family.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use xbar::device::fit::{self, FitOptions};
use xbar::device::pulsed::{self, PulsedDevice};
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

/// Parse and fit a measurement file of 10 devices, each 1,000 pulses (two cycles of 250 up
/// and 250 down pulses), simulated from `ecram`'s shared parameters with a step of 0.01 (so
/// that 250 pulses cross the window) and each family's shape (`ecram`'s own for linear step).
fn bench_fit(c: &mut Criterion) {
    let mut group = c.benchmark_group("fit");
    group.sample_size(10);
    let AnyDevice::Pulsed(base) = preset::load("ecram", &toml::Table::new()).expect("built-in")
    else {
        panic!("ecram is a pulsed preset");
    };
    let schedule = fit::cycle_schedule(2, 250, 250);
    for family in pulsed::FAMILIES {
        let shape = match family {
            "constant_step" => pulsed::StepFamily::ConstantStep,
            "soft_bounds" => {
                pulsed::StepFamily::SoftBounds(pulsed::SoftBoundsParams { mult_noise: true })
            }
            "exp_step" => pulsed::StepFamily::ExpStep(pulsed::ExpStepParams {
                a_up: 0.1,
                a_down: 0.1,
                gamma_up: 2.0,
                gamma_down: 2.0,
                a: 1.0,
                b: 0.0,
                dw_min_std_add: 0.0,
                dw_min_std_slope: 0.0,
            }),
            "pow_step" => pulsed::StepFamily::PowStep(pulsed::PowStepParams {
                pow_gamma: 0.5,
                pow_gamma_dtod: 0.0,
                pow_up_down: 0.0,
                pow_up_down_dtod: 0.0,
            }),
            "piecewise_step" => pulsed::StepFamily::PiecewiseStep(pulsed::PiecewiseStepParams {
                piecewise_up: vec![1.0, 0.5, 0.25],
                piecewise_down: vec![0.25, 0.5, 1.0],
            }),
            _ => base.family.clone(),
        };
        let mut params = base.params.clone();
        params.dw_min = 0.01;
        let device = PulsedDevice::new(params, shape);
        let responses: Vec<Vec<f64>> = (0..10)
            .map(|d| fit::simulate_response(&device, &schedule, &mut stream(1, &[d])))
            .collect();
        let text = fit::to_csv(&schedule, &responses);
        group.bench_function(BenchmarkId::new("parse_and_fit_10x1000", family), |b| {
            b.iter(|| {
                let data = fit::parse_csv(&text, "bench.csv").expect("valid file");
                fit::fit(&data, family, &FitOptions::default())
                    .expect("the family fits its own data")
                    .device
                    .params
                    .dw_min
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // No plots: criterion's plotters backend needs system fonts this machine lacks.
    config = Criterion::default().without_plots();
    targets = bench_devices, bench_fit
}
criterion_main!(benches);
