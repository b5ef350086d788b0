//! The `inference` kind with `network.kind = "sequential"`: convolutional networks trained
//! or imported from a PyTorch `state_dict`, deployed on tiles, and refused with a clear
//! message when the description, the data or the weights do not fit.

mod common;

use common::{read, stderr, xbar_run};
use std::path::{Path, PathBuf};
use xbar::data::mnist10k;
use xbar::nn::evaluate;
use xbar::nn::sequential::Sequential;
use xbar::nn::sequential::spec::{named, parse_layers};
use xbar::nn::sequential::state_dict;

/// A small ConvNet on 600 digits, two epochs, on ideal tiles (no quantisation, noise or
/// faults) at two read times.
const SMALL_CNN: &str = r#"
[experiment]
name = "small_cnn"
seed = 3
repeats = 1

[data]
train_limit = 600
test_limit = 200

[network]
kind = "sequential"
layers = [ { conv2d = { out = 4, kernel = 5, stride = 2 } }, "relu", { maxpool2d = 2 },
           "flatten", { linear = 10 } ]

[train]
epochs = 2
batch_size = 16
optimizer = { kind = "adam", learning_rate = 2e-3, beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8 }

[hardware]
device = "ideal"

[hardware.tile]
max_rows = 64
max_cols = 32
programming = { method = "open_loop" }
periphery = { dac_bits = 0, adc = { bits = 0 }, read_noise = false }

[[sweep]]
path = "hardware.t_inference_s"
values = [1.0, 1e5]
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Columns `accuracy` and `digital_accuracy` of every row of `results.csv`.
fn accuracies(out: &Path) -> Vec<(f64, f64)> {
    read(&out.join("results.csv"))
        .lines()
        .skip(1)
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            (cells[3].parse().unwrap(), cells[4].parse().unwrap())
        })
        .collect()
}

/// The digital twin of a ConvNet: ideal devices and converters give exactly the accuracy
/// of the floating-point network, and training learned something.
#[test]
fn a_convnet_on_ideal_tiles_reproduces_its_digital_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "cnn.toml", SMALL_CNN);
    let out = dir.path().join("out");
    let o = xbar_run(&file, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = accuracies(&out);
    assert_eq!(rows.len(), 2);
    for (hardware, digital) in rows {
        assert_eq!(hardware, digital);
        assert!(digital > 0.5, "two epochs on 600 digits gave {digital}");
    }
}

/// Calibrated ADC ranges work for convolutions (every stage calibrated on what it reads
/// in the digital network): 8-bit converters on ideal devices lose at most 2 points.
#[test]
fn calibrated_adcs_serve_convolutions() {
    let dir = tempfile::tempdir().unwrap();
    let text = SMALL_CNN.replace(
        "periphery = { dac_bits = 0, adc = { bits = 0 }, read_noise = false }",
        "periphery = { dac_bits = 8, adc = { bits = 8, range = { mode = \"calibrated\", \
         margin = 1.2 } }, read_noise = false }",
    );
    let file = write(dir.path(), "cnn.toml", &text);
    let out = dir.path().join("out");
    let o = xbar_run(&file, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    for (hardware, digital) in accuracies(&out) {
        assert!(
            (hardware - digital).abs() <= 0.02,
            "{hardware} vs {digital}"
        );
    }
}

/// `network.weights` imports a PyTorch LeNet-5 `state_dict` and skips training: the
/// digital accuracy is the one of the saved network, not of a trained one.
#[test]
fn imported_safetensors_weights_replace_training() {
    let dir = tempfile::tempdir().unwrap();
    let (input, layers) = named("lenet5").unwrap();
    let mut net = Sequential::random(input, &layers, 42).unwrap();
    let weights = dir.path().join("lenet5.safetensors");
    state_dict::save(&net, &weights).unwrap();
    let test = mnist10k().unwrap().test.take(200);
    let expected = evaluate(&mut net, &test).unwrap();

    let text = SMALL_CNN
        .replace(
            "layers = [ { conv2d = { out = 4, kernel = 5, stride = 2 } }, \"relu\", { maxpool2d = 2 },\n           \"flatten\", { linear = 10 } ]",
            &format!("arch = \"lenet5\"\nweights = \"{}\"", weights.display()),
        )
        .replace("epochs = 2", "epochs = 40");
    let file = write(dir.path(), "import.toml", &text);
    let out = dir.path().join("out");
    let o = xbar_run(&file, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    for (hardware, digital) in accuracies(&out) {
        assert_eq!(digital, expected);
        assert_eq!(hardware, digital);
    }
}

/// `network.export` writes the trained network into the output directory as a PyTorch
/// `state_dict`; imported back with `network.weights` it gives the same digital accuracy
/// (so it is the network that was trained), it is listed in `run.json`, and re-running the
/// finished run leaves it byte for byte as it was.
#[test]
fn exported_weights_reload_to_the_trained_network() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "export.toml", SMALL_CNN);
    let out = dir.path().join("out");
    let o = xbar_run(&file, &out, &["--set", "network.export=true"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let exported = out.join("weights/point_0_repeat_0.safetensors");
    let bytes = std::fs::read(&exported).unwrap();
    assert!(read(&out.join("run.json")).contains("weights/point_0_repeat_0.safetensors"));
    assert!(
        !out.join("weights/point_1_repeat_0.safetensors").exists(),
        "one network"
    );
    let trained = accuracies(&out)[0].1;

    let again = xbar_run(&file, &out, &["--set", "network.export=true"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(std::fs::read(&exported).unwrap(), bytes);

    let reimport = dir.path().join("reimport");
    let set = format!("network.weights=\"{}\"", exported.display());
    let o = xbar_run(&file, &reimport, &["--set", &set]);
    assert!(o.status.success(), "{}", stderr(&o));
    for (_, digital) in accuracies(&reimport) {
        assert_eq!(digital, trained);
    }
    let refused = dir.path().join("refused");
    let both = xbar_run(
        &file,
        &refused,
        &["--set", &set, "--set", "network.export=true"],
    );
    assert!(!both.status.success() && stderr(&both).contains("network.export"));
    assert!(!refused.exists());
}

/// An MLP exports as a directory of `.npy` files in `nn.Linear` layout (no partial
/// directory left behind) that `network.weights` imports back to the same network.
#[test]
fn an_exported_mlp_is_a_weight_directory_that_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let mlp = SMALL_CNN.replace(
        "kind = \"sequential\"\nlayers = [ { conv2d = { out = 4, kernel = 5, stride = 2 } }, \"relu\", { maxpool2d = 2 },\n           \"flatten\", { linear = 10 } ]",
        "kind = \"mlp\"\nhidden = [16]\nexport = true",
    );
    assert!(mlp.contains("export = true"));
    let file = write(dir.path(), "mlp.toml", &mlp);
    let out = dir.path().join("out");
    let o = xbar_run(&file, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let exported = out.join("weights/point_0_repeat_0");
    for f in ["0.weight.npy", "0.bias.npy", "1.weight.npy", "1.bias.npy"] {
        assert!(exported.join(f).exists(), "{f}");
    }
    assert!(!out.join("weights/point_0_repeat_0.partial").exists());
    let trained = accuracies(&out)[0].1;
    let reimport = dir.path().join("reimport");
    let text = mlp.replace(
        "export = true",
        &format!("weights = \"{}\"", exported.display()),
    );
    let file = write(dir.path(), "reimport.toml", &text);
    let o = xbar_run(&file, &reimport, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(accuracies(&reimport)[0].1, trained);
}

/// Bad descriptions and weight files fail before any result is written, naming the field,
/// layer or key and the fix.
#[test]
fn bad_sequential_input_is_refused_with_the_field_named() {
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.safetensors");
    let (input, _) = named("lenet5").unwrap();
    let small = parse_layers(
        &toml::from_str::<toml::Table>(
            r#"layers = [ { conv2d = { out = 3, kernel = 5, stride = 2 } }, "relu",
                { maxpool2d = 2 }, "flatten", { linear = 10 } ]"#,
        )
        .unwrap()["layers"],
    )
    .unwrap();
    state_dict::save(&Sequential::random(input, &small, 1).unwrap(), &other).unwrap();
    let truncated = dir.path().join("truncated.safetensors");
    let bytes = std::fs::read(&other).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();

    let layers_line = "layers = [ { conv2d = { out = 4, kernel = 5, stride = 2 } }, \"relu\", { maxpool2d = 2 },\n           \"flatten\", { linear = 10 } ]";
    let cases: Vec<(String, &[&str])> = vec![
        (
            SMALL_CNN.replace(layers_line, &format!("{layers_line}\narch = \"lenet5\"")),
            &["network.arch and network.layers"],
        ),
        (
            SMALL_CNN.replace(layers_line, "arch = \"resnet1000\""),
            &["network.arch", "resnet1000", "lenet5"],
        ),
        (
            SMALL_CNN.replace("kind = \"sequential\"", "kind = \"mlp\""),
            &["network.kind = \"sequential\""],
        ),
        (
            SMALL_CNN.replace("{ linear = 10 }", "{ linear = 5 }"),
            &["5 class scores", "10 classes"],
        ),
        (
            SMALL_CNN.replace("kernel = 5, stride = 2", "kernel = 40"),
            &["network.layers[0]", "larger"],
        ),
        (
            SMALL_CNN.replace(
                layers_line,
                &format!("{layers_line}\nweights = \"{}\"", other.display()),
            ),
            &[
                "network.weights",
                "key 0.bias",
                "expected shape [4], found [3]",
            ],
        ),
        (
            SMALL_CNN.replace(
                layers_line,
                &format!("{layers_line}\nweights = \"{}\"", truncated.display()),
            ),
            &["network.weights", "not a valid safetensors file"],
        ),
    ];
    for (i, (text, wanted)) in cases.iter().enumerate() {
        let file = write(dir.path(), &format!("bad{i}.toml"), text);
        let out = dir.path().join(format!("out{i}"));
        let o = xbar_run(&file, &out, &[]);
        let e = stderr(&o);
        assert!(!o.status.success(), "case {i} ran");
        for w in *wanted {
            assert!(e.contains(w), "case {i}: {w:?} not in: {e}");
        }
        assert!(!out.join("results.csv").exists(), "case {i} wrote results");
    }
}

/// Colour images of `n` per class: class 0 mostly red, class 1 mostly blue (3 x 8 x 8
/// uint8, with pixel noise from a fixed linear congruential sequence).
fn colour_images(n: usize) -> (Vec<u8>, Vec<u8>) {
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    let mut state = 12345u32;
    let mut noise = || {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        (state >> 24) as u8 / 2
    };
    for i in 0..2 * n {
        let class = (i % 2) as u8;
        for channel in 0..3u8 {
            let strong = (class == 0 && channel == 0) || (class == 1 && channel == 2);
            for _ in 0..64 {
                images.push(if strong { 128 } else { 0 } + noise());
            }
        }
        labels.push(class);
    }
    (images, labels)
}

/// A three-channel data set exported from NumPy runs through a ConvNet described as a
/// layer list (input channels from the data), on ideal tiles equal to the digital network;
/// LeNet-5, which takes 1 x 28 x 28 images, is refused on it naming both shapes.
#[test]
fn convnets_read_multichannel_numpy_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("colours");
    std::fs::create_dir(&data).unwrap();
    for (split, n) in [("train", 100), ("test", 50)] {
        let (images, labels) = colour_images(n);
        let path = |what: &str| data.join(format!("{split}_{what}.npy"));
        common::write_npy_raw(&path("images"), "|u1", &[2 * n, 3, 8, 8], false, &images);
        common::write_npy_raw(&path("labels"), "|u1", &[2 * n], false, &labels);
    }
    let text = SMALL_CNN
        .replace(
            "train_limit = 600\ntest_limit = 200",
            &format!("source = \"{}\"", data.display()),
        )
        .replace(
            "layers = [ { conv2d = { out = 4, kernel = 5, stride = 2 } }, \"relu\", { maxpool2d = 2 },\n           \"flatten\", { linear = 10 } ]",
            "layers = [ { conv2d = { out = 4, kernel = 3, padding = 1 } }, \"relu\", \
             \"global_avgpool\", \"flatten\", { linear = 2 } ]",
        )
        .replace("epochs = 2", "epochs = 10");
    let file = write(dir.path(), "colours.toml", &text);
    let out = dir.path().join("out");
    let o = xbar_run(&file, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    for (hardware, digital) in accuracies(&out) {
        assert_eq!(hardware, digital);
        assert!(digital > 0.9, "red versus blue gave {digital}");
    }

    let lenet = text.replace(
        "layers = [ { conv2d = { out = 4, kernel = 3, padding = 1 } }, \"relu\", \
         \"global_avgpool\", \"flatten\", { linear = 2 } ]",
        "arch = \"lenet5\"",
    );
    let file = write(dir.path(), "lenet.toml", &lenet);
    let o = xbar_run(&file, &dir.path().join("out_lenet"), &[]);
    let e = stderr(&o);
    assert!(!o.status.success());
    assert!(e.contains("1x28x28") && e.contains("3x8x8"), "{e}");
}

/// A binarized ConvNet on 2T2R RRAM versus compliance current, end to end through
/// `xbar run`: its binary convolution and classifier are programmed on 2T2R pairs read by
/// sense amplifiers; at 2 µA the sense amplifiers misread many weights (bit-error rate
/// above 10 %), at 100 µA none, and the accuracy there is the digital one of the
/// quantised network within 2 points.
#[test]
fn a_binarized_convnet_runs_on_2t2r_pairs_versus_compliance_current() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"
[experiment]
name = "small_cnn_bnn"
seed = 5
repeats = 1

[data]
train_limit = 600
test_limit = 200

[network]
kind = "sequential"
layers = [ { conv2d = { out = 8, kernel = 5, stride = 2, bias = false, quantization = "binary" } },
           "batchnorm2d", "sign", "flatten",
           { linear = { out = 10, bias = false, quantization = "binary" } }, "batchnorm1d" ]

[train]
epochs = 2
batch_size = 16
optimizer = { kind = "adam", learning_rate = 5e-3, beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8 }

[hardware]
device = "rram_hfo2"
device_params = { p_stuck_lrs = 0.0, p_stuck_hrs = 0.0 }

[hardware.tile]
programming = { method = "open_loop" }

[[sweep]]
path = "hardware.device_params.i_compliance_a"
values = [2e-6, 1e-4]
"#;
    let file = write(dir.path(), "bnn.toml", text);
    let out = dir.path().join("out");
    let o = xbar_run(&file, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = read(&out.join("results.csv"));
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let rows: Vec<Vec<f64>> = csv
        .lines()
        .skip(1)
        .map(|line| {
            line.split(',')
                .map(|cell| cell.parse().unwrap_or(f64::NAN))
                .collect()
        })
        .collect();
    let (accuracy, digital, ber) = (
        column("accuracy"),
        column("digital_accuracy"),
        column("bit_error_rate"),
    );
    assert_eq!(rows.len(), 2);
    assert!(rows[0][ber] > 0.1, "2 µA: bit-error rate {}", rows[0][ber]);
    assert_eq!(rows[1][ber], 0.0, "100 µA reads every weight right");
    assert!(
        rows[1][digital] > 0.5,
        "digital accuracy {}",
        rows[1][digital]
    );
    assert!(
        (rows[1][accuracy] - rows[1][digital]).abs() <= 0.02,
        "100 µA: {} vs digital {}",
        rows[1][accuracy],
        rows[1][digital]
    );
}
