//! Add an on-chip learning rule: implement `xbar::learning::rule::LearningRule` and train
//! a network on device tiles with it. This is the worked example of
//! `docs/LEARNING_RULES.md`.
//!
//! The Manhattan rule (Zamanidoost et al., IEEE ISRA 2015) moves every weight whose
//! mini-batch gradient exceeds a threshold by one fixed step in the gradient's direction:
//! one programming pulse per device and update, whatever the gradient size. Here it trains
//! a 784-32-10 MLP on tiles of the `rram_hfo2` preset for one epoch of 1,500 MNIST digits
//! and reports the test accuracy on 500 (measured: 80.4 %), with the pulses and energy the
//! updates cost. The program fails if the network does not learn (accuracy below 70 %).
//!
//! Run: `cargo run --release --example custom_rule`.

use anyhow::{Result, ensure};
use xbar::crossbar::TileConfig;
use xbar::crossbar::update::PulsedUpdateConfig;
use xbar::device::preset;
use xbar::learning::rule::{LearningRule, LocalSignals, SignalRequest, WeightChange};
use xbar::learning::sgd::{self, HiddenActivation, Mlp};
use xbar::synapses::CrossbarSynapses;
use xbar::synapses::DigitalSynapses;

/// Training and test digits, mini-batch size, weight scale of a full conductance window.
const TRAIN: usize = 1500;
const TEST: usize = 500;
const BATCH: usize = 10;
const W_MAX: f64 = 1.0;
/// Learning rate of the digital biases; |gradient| below which a weight is left alone.
const BIAS_LEARNING_RATE: f32 = 0.1;
const THRESHOLD: f32 = 0.05;
/// Seed of the initial weights, the devices and the pulses.
const SEED: u64 = 1;

/// The Manhattan rule.
struct Manhattan {
    /// Weight change of one step (set it to the device's Δw_min: one pulse).
    step: f32,
    /// |gradient| below which a weight is left alone.
    threshold: f32,
}

impl LearningRule for Manhattan {
    fn name(&self) -> &str {
        "manhattan"
    }

    fn signals(&self) -> SignalRequest {
        SignalRequest {
            error: true,
            ..SignalRequest::default()
        }
    }

    fn propose(&mut self, s: &LocalSignals<'_>) -> Result<WeightChange> {
        let error = s.require_error(self.name())?;
        let (n_in, n_out) = (s.phase.inputs.len() / s.rows, error.len() / s.rows);
        let mut grad = vec![0.0f32; n_out * n_in];
        for b in 0..s.rows {
            let x = &s.phase.inputs[b * n_in..(b + 1) * n_in];
            for (j, &e) in error[b * n_out..(b + 1) * n_out].iter().enumerate() {
                let row = &mut grad[j * n_in..(j + 1) * n_in];
                row.iter_mut().zip(x).for_each(|(g, &xi)| *g += e * xi);
            }
        }
        let step = |g: f32| match g.abs() > self.threshold {
            true => self.step * g.signum(),
            false => 0.0,
        };
        Ok(WeightChange::Dense(grad.into_iter().map(step).collect()))
    }
}

fn main() -> Result<()> {
    let data = xbar::data::mnist10k()?;
    let (train, test) = (data.train.take(TRAIN), data.test.take(TEST));
    let device = preset::load("rram_hfo2", &toml::Table::new())?;
    let layers = [(784, 32), (32, 10)]
        .iter()
        .enumerate()
        .map(|(k, &(n_in, n_out))| {
            let init = DigitalSynapses::uniform_random(n_in, n_out, SEED, k as u64)?;
            CrossbarSynapses::program(
                device.clone(),
                n_in,
                n_out,
                init.weight(),
                W_MAX,
                TileConfig::ideal(),
                PulsedUpdateConfig::default(),
                SEED,
                k as u64,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let mut mlp = Mlp::new(layers, HiddenActivation::Sigmoid)?;
    let step = mlp.layers()[0].tile().weight_step()? as f32;
    let mut rule = Manhattan {
        step,
        threshold: THRESHOLD,
    };
    for start in (0..train.len()).step_by(BATCH) {
        let x = &train.images[start * 784..(start + BATCH) * 784];
        let labels = &train.labels[start..start + BATCH];
        mlp.train_step(&mut rule, BIAS_LEARNING_RATE, x, labels)?;
    }
    let accuracy = sgd::accuracy(&mut mlp, &test)?;
    let (pulses, energy_j) = mlp.layers().iter().fold((0, 0.0), |(n, e), l| {
        let total = l.tile().ledger().total;
        (n + total.programming_pulses, e + total.programming_j)
    });
    println!(
        "Manhattan rule on rram_hfo2 tiles, one epoch of {TRAIN} digits: test accuracy {:.1} % on {TEST}; {pulses} programming pulses, {energy_j:.3e} J",
        accuracy * 100.0
    );
    ensure!(
        accuracy > 0.7,
        "the rule did not learn (accuracy {accuracy})"
    );
    Ok(())
}
