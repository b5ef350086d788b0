//! The `on_chip_training` experiment kind through the `xbar` binary: a tiny sweep over
//! rules and devices writes the same results with 1 and 2 threads, equilibrium
//! propagation on fine-grained ideal devices tracks the digital twin, and bad keys or
//! values fail before any output with a message naming them.

use std::path::{Path, PathBuf};
mod common;

use common::{read, stderr, xbar_run};

/// Both rules on ideal, RRAM and PCM tiles: a 784-16-10 network, one epoch of 300
/// digits, 200 test digits.
const TINY: &str = r#"
[experiment]
name = "tiny_training"
kind = "on_chip_training"
seed = 4

[data]
train_limit = 300
test_limit = 200

[network]
hidden = [16]

[rule]
epochs = 1

[rule.ep]
learning_rates = [0.2, 0.1]

[hardware]
w_max = [0.2, 0.5]

[[sweep]]
path = "rule.kind"
values = ["ep", "sgd"]

[[sweep]]
paths = ["hardware.device", "hardware.pulses.pair_update", "labels.x"]
values = [
    ["ideal", "canonical", 0],
    ["rram_hfo2", "canonical", 1],
    ["pcm_gst", "set_only", 2],
]

[[plot]]
name = "acc"
x = "labels.x"
y = "accuracy"
series = "rule.kind"
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Rows of a results file as maps from column name to cell.
fn rows(results: &str) -> Vec<std::collections::HashMap<String, String>> {
    let mut lines = results.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .map(|l| {
            header
                .iter()
                .zip(l.split(','))
                .map(|(h, c)| (h.to_string(), c.to_string()))
                .collect()
        })
        .collect()
}

fn number(row: &std::collections::HashMap<String, String>, key: &str) -> f64 {
    row[key]
        .parse()
        .unwrap_or_else(|_| panic!("{key} = {}", row[key]))
}

/// Every random stream derives from (seed, repeat, point), so the results file is the same
/// byte for byte with 1 and 2 worker threads; every job trained on devices applied
/// programming pulses, and every accuracy is a measurement of a 10-class problem.
#[test]
fn a_tiny_training_sweep_is_identical_with_one_and_two_threads() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "tiny.toml", TINY);
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    let o = xbar_run(&file, &one, &["--threads", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = xbar_run(&file, &two, &["--threads", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let results = read(&one.join("results.csv"));
    assert_eq!(results, read(&two.join("results.csv")));
    assert!(
        results.starts_with(
            "point,repeat,rule.kind,hardware.device,hardware.pulses.pair_update,labels.x,\
             accuracy,digital_accuracy,train_accuracy,pulses_per_update,\
             write_energy_per_update_j,write_time_per_update_s,accuracy_epoch_1,\
             train_accuracy_epoch_1\n"
        ),
        "{results}"
    );
    let rows = rows(&results);
    assert_eq!(rows.len(), 6);
    for row in &rows {
        for key in ["accuracy", "digital_accuracy", "train_accuracy"] {
            assert!((0.0..=1.0).contains(&number(row, key)), "{row:?}");
        }
        assert!(number(row, "pulses_per_update") > 0.0, "{row:?}");
        assert!(number(row, "write_energy_per_update_j") > 0.0, "{row:?}");
    }
    assert!(one.join("acc.png").exists());
}

/// With devices of 2,000 linear levels (one pulse = 2.5e-4 of w_max = 0.5) and an ideal
/// periphery, the pulsed EP update equals the floating-point one in expectation with a
/// tiny rounding noise, so EP on the tiles ends close to the digital twin trained from
/// the same initial weights on the same mini-batches (measured: 0.5-1.5 points apart over
/// three repeats of 1,000 training digits), and both learn far above chance. The digital
/// device itself reproduces the twin exactly.
#[test]
fn ep_on_fine_ideal_devices_tracks_digital_ep() {
    let text = r#"
[experiment]
name = "ep_ideal"
kind = "on_chip_training"
seed = 9
repeats = 3

[data]
train_limit = 1000
test_limit = 400

[network]
hidden = [32]

[rule]
kind = "ep"
epochs = 1

[hardware]
device_params = { levels = 2000 }
w_max = 0.5

[[sweep]]
path = "hardware.device"
values = ["ideal", "digital"]

[[plot]]
x = "hardware.variability_scale"
y = "accuracy"

[[sweep]]
path = "hardware.variability_scale"
values = [1.0]
"#;
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "ideal.toml", text);
    let out = dir.path().join("out");
    let o = xbar_run(&file, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    for row in rows(&read(&out.join("results.csv"))) {
        let (on_chip, digital) = (number(&row, "accuracy"), number(&row, "digital_accuracy"));
        assert!(digital > 0.7, "{row:?}");
        if row["hardware.device"] == "digital" {
            assert_eq!(on_chip, digital, "{row:?}");
            assert_eq!(number(&row, "pulses_per_update"), 0.0);
        } else {
            assert!((on_chip - digital).abs() < 0.04, "{row:?}");
        }
    }
}

/// The digital reference `rule.kind = "backprop"`: the ConvNet of `network.convs` (each
/// convolution + ReLU + max pooling) and `network.hidden` trained by backpropagation on
/// the same data, with a test accuracy after every epoch, no pulses, the same numbers with
/// 1 and 2 threads; EP on the same layers in the same file. It learns far above chance
/// (measured: 81.3 % after one epoch of 1,000 digits, 91.3 % after three); it refuses devices and its own
/// epoch count, naming the key to use.
#[test]
fn backprop_reference_trains_the_same_convnet_per_epoch() {
    let text = r#"
[experiment]
name = "bp_conv"
kind = "on_chip_training"
seed = 2

[data]
train_limit = 1000
test_limit = 300

[network]
convs = [ { out = 4, kernel = 5, pool = 2 } ]
hidden = []

[rule]
epochs = 3

[rule.ep]
free_steps = 20
learning_rates = [0.1, 0.05]
activation = "hard_sigmoid"

[rule.backprop]
batch_size = 32
optimizer = { kind = "adam", learning_rate = 3e-3, beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8 }

[hardware]
device = "digital"

[[sweep]]
path = "rule.kind"
values = ["backprop", "ep"]

[[plot]]
name = "bp_conv"
x = "epoch"
y = "accuracy"
series = "rule.kind"
"#;
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "bp.toml", text);
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    let o = xbar_run(&file, &one, &["--threads", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = xbar_run(&file, &two, &["--threads", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let results = read(&one.join("results.csv"));
    assert_eq!(results, read(&two.join("results.csv")));
    let rows = rows(&results);
    let bp = rows.iter().find(|r| r["rule.kind"] == "backprop").unwrap();
    assert!(number(bp, "accuracy") > 0.8, "{bp:?}");
    assert_eq!(number(bp, "accuracy"), number(bp, "accuracy_epoch_3"));
    assert!(
        number(bp, "accuracy_epoch_1") < number(bp, "accuracy"),
        "{bp:?}"
    );
    assert_eq!(number(bp, "pulses_per_update"), 0.0);
    let ep = rows.iter().find(|r| r["rule.kind"] == "ep").unwrap();
    assert!(number(ep, "accuracy") > 0.5, "{ep:?}");
    assert_ne!(
        number(ep, "train_accuracy_epoch_1"),
        number(bp, "train_accuracy_epoch_1"),
        "EP and backprop trained alike: {ep:?} {bp:?}"
    );
    assert!(one.join("bp_conv.png").exists());
    let out = dir.path().join("never");
    let only_bp = text.replace("values = [\"backprop\", \"ep\"]", "values = [\"backprop\"]");
    let file = write(dir.path(), "only_bp.toml", &only_bp);
    for (set, needle) in [
        ("hardware.device=\"ideal\"", "hardware.device = \"digital\""),
        ("rule.backprop.epochs=5", "rule.epochs"),
        ("rule.backprop.batch_size=0", "batch_size"),
    ] {
        let o = xbar_run(&file, &out, &["--set", set]);
        assert!(!o.status.success(), "--set {set} should fail");
        assert!(stderr(&o).contains(needle), "--set {set}: {}", stderr(&o));
        assert!(!out.exists(), "--set {set} left output behind");
    }
}

/// Analog SGD on ideal devices with ideal periphery is digital SGD up to the pulse
/// granularity (unbiased stochastic updates of 1 % of w_max): on a small MNIST subset both
/// learn far above chance (10 %) and end within 5 points of each other. The test accuracy
/// after each epoch is a metric (`accuracy_epoch_K`, the last one the final accuracy), and
/// a `[[plot]]` over `x = "epoch"` draws it.
#[test]
fn analog_sgd_on_ideal_devices_tracks_digital_sgd_epoch_by_epoch() {
    let text = r#"
[experiment]
name = "sgd_ideal"
kind = "on_chip_training"
seed = 2

[data]
train_limit = 1500
test_limit = 500

[network]
hidden = [32]

[rule]
kind = "sgd"
epochs = 2

[[sweep]]
path = "hardware.device"
values = ["digital", "ideal"]

[[plot]]
name = "curve"
x = "epoch"
y = "accuracy"
series = "hardware.device"
"#;
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "sgd.toml", text);
    let out = dir.path().join("out");
    let o = xbar_run(&file, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = rows(&read(&out.join("results.csv")));
    assert_eq!(rows.len(), 2);
    let (digital, ideal) = (&rows[0], &rows[1]);
    let (a_d, a_i) = (number(digital, "accuracy"), number(ideal, "accuracy"));
    assert!(a_d > 0.75 && a_i > 0.75, "digital {a_d}, ideal {a_i}");
    assert!((a_d - a_i).abs() < 0.05, "digital {a_d}, ideal {a_i}");
    assert!(number(ideal, "pulses_per_update") > 0.0);
    assert_eq!(number(digital, "pulses_per_update"), 0.0);
    for row in &rows {
        assert_eq!(number(row, "accuracy_epoch_2"), number(row, "accuracy"));
        assert_eq!(
            number(row, "train_accuracy_epoch_2"),
            number(row, "train_accuracy")
        );
        assert!(number(row, "accuracy_epoch_1") > 0.5, "{row:?}");
        assert!(!row.contains_key("accuracy_epoch_3"), "{row:?}");
    }
    assert!(out.join("curve.png").exists() && out.join("curve.svg").exists());
    // A plot over epochs needs per-epoch metrics of its y.
    let bad = text.replace("y = \"accuracy\"", "y = \"pulses_per_update\"");
    let file = write(dir.path(), "bad.toml", &bad);
    let o = xbar_run(&file, &dir.path().join("never"), &[]);
    assert!(
        !o.status.success() && stderr(&o).contains("pulses_per_update_epoch_1"),
        "{}",
        stderr(&o)
    );
}

/// Unknown keys, unknown sections and out-of-range values are errors that name the key,
/// and nothing is written.
#[test]
fn bad_keys_and_values_fail_with_a_message_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "tiny.toml", TINY);
    let out = dir.path().join("never");
    let cases: Vec<(&str, &str)> = vec![
        ("rule.ep.betta=0.1", "betta"),
        ("rule.epochs=0", "rule.epochs"),
        ("rule.sgd.learning_rate=-1", "rule.sgd.learning_rate"),
        ("rule.ep.learning_rates=[0.1]", "learning_rates"),
        ("hardware.w_max=[0.1, 0.2, 0.3]", "hardware.w_max"),
        ("hardware.w_max=\"big\"", "hardware.w_max"),
        ("hardware.refresh_intervall=3", "refresh_intervall"),
        ("hardware.device_params.c2c_sigmaa=0.1", "c2c_sigmaa"),
        ("hardware.pulses.pulse_train_length=0", "pulse_train_length"),
        ("hardware.tile.mapping.weight_max=1.0", "hardware.w_max"),
        ("network.hidden=[0]", "network.hidden"),
        ("labels.note=[1, 2]", "labels.note"),
        (
            "rule.sgd.layer_learning_rates=[0.1]",
            "rule.sgd.layer_learning_rates",
        ),
        (
            "rule.sgd.layer_learning_rates=[0.1, -0.2]",
            "rule.sgd.layer_learning_rates",
        ),
        ("rule.sgd.loss=\"hinge\"", "hinge"),
        ("rule.sgd.update=\"sparse\"", "sparse"),
        ("hardware.pulses.rounding=\"up\"", "up"),
        ("hardware.pulses.pulse_count=\"levels\"", "levels"),
        ("data.crop=[20]", "data.crop"),
        ("data.binarize=0.0", "data.binarize"),
        ("rule.ep.optimizer={kind=\"adam\", beta2=1.5}", "beta2"),
        (
            "rule.ep.optimizer={kind=\"sgd\", momentum=-0.5}",
            "momentum",
        ),
        ("rule.ep.optimizer={kind=\"rmsprop\"}", "rmsprop"),
        ("rule.ep.schedule=\"linear\"", "linear"),
        ("rule.ep.learning_rate_decay=1.5", "learning_rate_decay"),
    ];
    for (set, needle) in cases {
        let o = xbar_run(&file, &out, &["--set", set]);
        assert!(!o.status.success(), "--set {set} should fail");
        assert!(stderr(&o).contains(needle), "--set {set}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
        assert!(!out.exists(), "--set {set} left output behind");
    }
    let cosine = [
        "rule.ep.schedule=\"cosine\"",
        "rule.ep.learning_rate_decay=0.5",
    ];
    let o = xbar_run(&file, &out, &["--set", cosine[0], "--set", cosine[1]]);
    assert!(
        !o.status.success() && stderr(&o).contains("exponential schedule only"),
        "{}",
        stderr(&o)
    );
    assert!(
        !out.exists(),
        "decay with a cosine schedule left output behind"
    );
    let misspelt = TINY.replace("[rule.ep]", "[rule.equilibrium]");
    let file = write(dir.path(), "misspelt.toml", &misspelt);
    let o = xbar_run(&file, &out, &[]);
    assert!(
        !o.status.success() && stderr(&o).contains("equilibrium"),
        "{}",
        stderr(&o)
    );
    let unknown_rule = TINY.replace("values = [\"ep\", \"sgd\"]", "values = [\"ep\", \"hebb\"]");
    let file = write(dir.path(), "hebb.toml", &unknown_rule);
    let o = xbar_run(&file, &out, &[]);
    assert!(
        !o.status.success() && stderr(&o).contains("hebb"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());
}
