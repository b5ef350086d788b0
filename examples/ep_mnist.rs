//! Train a 784-512-10 (or any) equilibrium-propagation network on MNIST-10k with the
//! reference settings of Laborieux et al. 2021 and print the test accuracy and training
//! time of every epoch.
//!
//! Run: `cargo run --release --example ep_mnist -- [epochs] [nudging] [activation] [sizes]
//! [learning rates] [batch size]`, e.g.
//! `cargo run --release --example ep_mnist -- 30 symmetric hard_sigmoid 784-512-10 0.08,0.04 50`.

use anyhow::{Context, Result, bail};
use xbar::learning::ep::{
    Activation, EpConfig, EpNetwork, EpOptimizerState, Nudging, evaluate, train_epoch,
};

/// Parsed command line: epochs, nudging, activation, layer sizes, learning rates, batch size.
type Args = (usize, Nudging, Activation, Vec<usize>, Vec<f32>, usize);

fn parse_args() -> Result<Args> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let epochs = match args.first() {
        Some(e) => e
            .parse()
            .with_context(|| format!("epochs must be an integer, got {e}"))?,
        None => 30,
    };
    let nudging = match args.get(1).map(String::as_str) {
        None | Some("symmetric") => Nudging::Symmetric,
        Some("one_sided") => Nudging::OneSided,
        Some("random_sign") => Nudging::RandomSign,
        Some(other) => bail!("nudging must be symmetric, one_sided or random_sign, got {other}"),
    };
    let activation = match args.get(2).map(String::as_str) {
        None | Some("steep_sigmoid") => Activation::SteepSigmoid,
        Some("hard_sigmoid") => Activation::HardSigmoid,
        Some(other) => bail!("activation must be steep_sigmoid or hard_sigmoid, got {other}"),
    };
    let sizes = match args.get(3) {
        Some(s) => s
            .split('-')
            .map(|v| {
                v.parse()
                    .with_context(|| format!("bad layer size {v} in {s}"))
            })
            .collect::<Result<Vec<usize>>>()?,
        None => vec![784, 512, 10],
    };
    // Reference learning rates 0.08 (first layer) and 0.04 (second) by default; deeper
    // networks halve the rate at every further layer unless given.
    let learning_rates = match args.get(4) {
        Some(s) => s
            .split(',')
            .map(|v| {
                v.parse()
                    .with_context(|| format!("bad learning rate {v} in {s}"))
            })
            .collect::<Result<Vec<f32>>>()?,
        None => (0..sizes.len() - 1)
            .map(|k| 0.08 / 2f32.powi(k as i32))
            .collect(),
    };
    let batch_size = match args.get(5) {
        Some(b) => b
            .parse()
            .with_context(|| format!("batch size must be an integer, got {b}"))?,
        None => EpConfig::default().batch_size,
    };
    Ok((
        epochs,
        nudging,
        activation,
        sizes,
        learning_rates,
        batch_size,
    ))
}

fn main() -> Result<()> {
    let (epochs, nudging, activation, sizes, learning_rates, batch_size) = parse_args()?;
    let split = xbar::data::mnist10k()?;
    let config = EpConfig {
        nudging,
        learning_rates,
        batch_size,
        ..EpConfig::default()
    };
    let mut net = EpNetwork::digital(&sizes, activation, config.seed)?;
    println!("sizes {sizes:?}, {nudging:?}, {activation:?}, {config:?}");
    let mut rule = config.rule();
    let mut optimizer = EpOptimizerState::new(&config);
    let mut total_s = 0.0;
    for epoch in 0..epochs {
        let start = std::time::Instant::now();
        let report = train_epoch(
            &mut net,
            &split.train,
            &config,
            &mut rule,
            &mut optimizer,
            epoch,
        )?;
        let train_s = start.elapsed().as_secs_f64();
        total_s += train_s;
        let test = evaluate(&mut net, &split.test, config.free_steps)?;
        println!(
            "epoch {:>2}  train {:.2} %  test {:.2} %  \
             ({train_s:.2} s training, {total_s:.1} s total)",
            epoch + 1,
            100.0 * report.train_accuracy,
            100.0 * test
        );
    }
    Ok(())
}
