//! The experiment workflow end to end through the `xbar` binary: committed experiment
//! files validate, a tiny sweep writes its results, summary, record and plot, runs are
//! identical for 1 and 2 threads, shards merge into the full run, re-runs resume, and bad
//! input fails cleanly without leaving output behind.

use std::path::{Path, PathBuf};
mod common;

use common::{read, stderr, stdout, xbar, xbar_run};
use xbar::experiment::config::{self, Overrides};
use xbar::experiment::kinds::Action;
use xbar::experiment::registry;
use xbar::experiment::tree;
use xbar::studies::KINDS;
use xbar::studies::on_chip_training::OnChipTraining;

/// A small but real inference sweep: a 784-16-10 MLP trained for one epoch on 600
/// digits, deployed on PCM tiles and read at two times, two repeats.
const TINY: &str = r#"
[experiment]
name = "tiny"
seed = 11
repeats = 2

[data]
train_limit = 600
test_limit = 200

[network]
hidden = [16]

[train]
epochs = 1

[hardware]
device = "pcm_gst"

[hardware.tile]
max_rows = 128
max_cols = 128

[[sweep]]
path = "hardware.t_inference_s"
values = [1.0, 1e6]

[[plot]]
name = "acc"
x = "hardware.t_inference_s"
y = "accuracy"
log_x = true
"#;

fn tiny_file(dir: &Path) -> PathBuf {
    let path = dir.join("tiny.toml");
    std::fs::write(&path, TINY).unwrap();
    path
}

/// The `data.source` of an experiment that runs on a CIFAR-10 directory the user
/// downloads (`data.format = "cifar10"`), which the repository cannot hold.
fn user_data_source(table: &toml::Table) -> Option<String> {
    let data = table.get("data")?.as_table()?;
    (data.get("format")?.as_str()? == "cifar10")
        .then(|| data.get("source")?.as_str().map(String::from))
        .flatten()
}

/// The configuration of every sweep point of a committed `on_chip_training` file (its
/// plan's base, every default filled in, with the point's values set), in grid order.
fn training_point_configs(file: &str) -> Vec<toml::Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("experiments")
        .join(file);
    let table = config::read_table(&path).unwrap();
    let plan =
        config::plan_from_table::<OnChipTraining>(table, &Overrides::default(), None).unwrap();
    plan.points()
        .iter()
        .map(|p| p.apply(&plan.base).unwrap())
        .collect()
}

/// `neurosim_devices_seeds.toml` repeats the differential-pair series of
/// `neurosim_devices.toml` with more seeds, and its header says every setting is the
/// other file's: each of its points is, setting for setting, the differential-pair point
/// of the same device there (less the series label), so the two files cannot drift apart.
#[test]
fn the_neurosim_seed_spread_runs_the_cross_checks_differential_pair_points() {
    let pair_points: Vec<toml::Value> = training_point_configs("neurosim_devices.toml")
        .into_iter()
        .filter(|c| {
            tree::get(c, "hardware.tile.mapping.encoding").and_then(|v| v.as_str())
                == Some("analog")
        })
        .map(|mut c| {
            c["labels"].as_table_mut().unwrap().remove("mapping");
            c
        })
        .collect();
    let seed_points = training_point_configs("neurosim_devices_seeds.toml");
    assert_eq!(
        seed_points.len(),
        8,
        "the digital reference and seven devices"
    );
    assert_eq!(seed_points, pair_points);
}

/// An inference experiment's `[labels]` names series without entering an unlabelled
/// configuration: the completed base of a file without labels has no `labels` key (so the
/// fingerprints of results made before labels existed still match), and a labelled sweep
/// sets its label at each point.
#[test]
fn inference_labels_name_series_and_stay_out_of_unlabelled_configurations() {
    use xbar::studies::inference::Inference;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let plan = |file: &str| {
        let table = config::read_table(&dir.join(file)).unwrap();
        config::plan_from_table::<Inference>(table, &Overrides::default(), None).unwrap()
    };
    let unlabelled = plan("cnn_variability.toml");
    assert!(tree::get(&unlabelled.base, "labels").is_none());
    let labelled = plan("depthwise_variability.toml");
    let names: Vec<String> = labelled
        .points()
        .iter()
        .map(|p| {
            let c = p.apply(&labelled.base).unwrap();
            tree::get(&c, "labels.network")
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(names[0], "standard");
    assert_eq!(names.last().unwrap(), "depthwise-separable");
}

/// Every committed experiment file passes the checks of `xbar run` (configuration, data,
/// memory) and draws a plot; one that runs on a downloaded CIFAR-10 directory is refused
/// naming that directory, and passes once `data.source` points at a CIFAR-10 directory
/// (synthetic files in the binary layout).
#[test]
fn every_committed_experiment_file_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let cifar = tempfile::tempdir().unwrap();
    common::write_cifar_dir(cifar.path());
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        count += 1;
        let table = config::read_table(&path).unwrap();
        let overrides = match user_data_source(&table) {
            None => Overrides::default(),
            Some(source) => {
                let e = registry::dispatch(KINDS, &path, &Overrides::default(), &Action::Check)
                    .expect_err("the user's data directory is not in the repository");
                let e = format!("{e:#}");
                assert!(
                    e.contains(&source) && e.contains("does not exist"),
                    "{}: {e}",
                    path.display()
                );
                let source = toml::Value::String(cifar.path().to_str().unwrap().into());
                Overrides {
                    sets: vec![("data.source".into(), source)],
                    seed: None,
                }
            }
        };
        registry::dispatch(KINDS, &path, &overrides, &Action::Check)
            .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
        let kind = registry::find(KINDS, &config::kind_name(&table).unwrap()).unwrap();
        assert!(
            kind.study || table.contains_key("plot"),
            "{} draws no plot",
            path.display()
        );
    }
    assert!(
        count >= 8,
        "expected the reference experiments, found {count}"
    );
}

#[test]
fn a_tiny_sweep_writes_results_summary_record_and_plot() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = xbar_run(&tiny_file(dir.path()), &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let results = read(&out.join("results.csv"));
    assert_eq!(results.lines().count(), 1 + 4, "{results}");
    assert!(
        results
            .lines()
            .next()
            .unwrap()
            .starts_with("point,repeat,hardware.t_inference_s,accuracy,")
    );
    assert_eq!(read(&out.join("summary.csv")).lines().count(), 1 + 2);
    let record: serde_json::Value = serde_json::from_str(&read(&out.join("run.json"))).unwrap();
    assert_eq!(record["plan"]["seed"], 11);
    assert_eq!(record["plan"]["base"]["hardware"]["device"], "pcm_gst");
    assert!(record["xbar_version"].is_string());
    assert!(record["timings_s"]["total"].as_f64().unwrap() > 0.0);
    assert!(out.join("acc.png").exists() && out.join("acc.svg").exists());
    // Every accuracy is a real measurement of a 10-class problem.
    for line in results.lines().skip(1) {
        let acc: f64 = line.split(',').nth(3).unwrap().parse().unwrap();
        assert!((0.0..=1.0).contains(&acc), "{line}");
    }
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let file = tiny_file(dir.path());
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    assert!(xbar_run(&file, &one, &["--threads", "1"]).status.success());
    assert!(xbar_run(&file, &two, &["--threads", "2"]).status.success());
    assert_eq!(
        read(&one.join("results.csv")),
        read(&two.join("results.csv"))
    );
}

#[test]
fn shards_merge_into_the_full_run_and_reruns_resume() {
    let dir = tempfile::tempdir().unwrap();
    let file = tiny_file(dir.path());
    let full = dir.path().join("full");
    assert!(xbar_run(&file, &full, &[]).status.success());
    let (s0, s1) = (dir.path().join("s0"), dir.path().join("s1"));
    assert!(xbar_run(&file, &s0, &["--shard", "0/2"]).status.success());
    assert!(xbar_run(&file, &s1, &["--shard", "1/2"]).status.success());
    let merged = dir.path().join("merged");
    let o = xbar(&[
        "merge",
        s0.to_str().unwrap(),
        s1.to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        read(&merged.join("results.csv")),
        read(&full.join("results.csv"))
    );
    assert_eq!(
        read(&merged.join("summary.csv")),
        read(&full.join("summary.csv"))
    );
    let again = xbar_run(&file, &full, &[]);
    assert!(again.status.success());
    assert!(
        stderr(&again).contains("resuming: 4 of 4 jobs already done"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn bad_input_fails_with_a_message_naming_the_key_and_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let file = tiny_file(dir.path());
    let out = dir.path().join("never");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--set", "hardware.tile.periphery.adc.bitz=4"], "bitz"),
        (vec!["--set", "hardwar.device=pcm_gst"], "hardwar"),
        (vec!["--set", "hardware.device=unobtainium"], "unobtainium"),
        (vec!["--set", "hardware.device_params.g_max_z=1"], "g_max_z"),
        (
            vec!["--set", "hardware.variability_scale=-1"],
            "variability_scale",
        ),
        (vec!["--set", "hardware.t_inference_s=5"], "swept"),
        (vec!["--set", "train.epochs=nan"], "epochs"),
        (
            vec!["--set", "network.binary_inputs=true"],
            "network.binary_inputs",
        ),
        (vec!["--shard", "2/2"], "--shard"),
    ];
    for (extra, needle) in cases {
        let o = xbar_run(&file, &out, &extra);
        assert!(!o.status.success(), "{extra:?} should fail");
        assert!(stderr(&o).contains(needle), "{extra:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
        assert!(!out.exists(), "{extra:?} left output behind");
    }
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "[experiment]\nname = \"x\"\n[hardware\n").unwrap();
    let o = xbar(&[
        "run",
        broken.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("malformed TOML"),
        "{}",
        stderr(&o)
    );
    let o = xbar(&["run", dir.path().join("missing.toml").to_str().unwrap()]);
    assert!(!o.status.success() && stderr(&o).contains("cannot read the experiment file"));
    let plain = dir.path().join("plain-file");
    std::fs::write(&plain, "x").unwrap();
    let o = xbar_run(&file, &plain.join("sub"), &[]);
    assert!(
        !o.status.success() && stderr(&o).contains("--out"),
        "{}",
        stderr(&o)
    );
}

/// A study kind runs through `xbar run` and writes what every experiment writes —
/// `results.csv` (here one row per junction and population), `summary.csv` (mean, std,
/// 95 % CI and n per population) and `run.json` — plus its report and figures; an unknown
/// key of its section, in the file or with `--set`, is an error naming the key.
#[test]
fn a_study_writes_results_summary_report_figures_and_record() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rng.toml");
    let text = "[experiment]\nname = \"rng\"\nkind = \"mram_rng\"\nseed = 3\n\n[mram_rng]\ndevices = 4\nbits_per_device = 256\n";
    std::fs::write(&file, text).unwrap();
    let out = dir.path().join("out");
    let o = xbar(&[
        "run",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let record: serde_json::Value = serde_json::from_str(&read(&out.join("run.json"))).unwrap();
    assert_eq!(record["seed"], 3);
    assert_eq!(record["config"]["mram_rng"]["seed"], 3);
    assert_eq!(record["config"]["mram_rng"]["devices"], 4);
    let outputs: Vec<&str> = record["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for file in ["results.csv", "summary.csv", "report.json", "run.json"] {
        assert!(outputs.contains(&file), "{outputs:?}");
        assert!(out.join(file).exists(), "{file}");
    }
    let results = read(&out.join("results.csv"));
    let mut lines = results.lines();
    assert_eq!(
        lines.next().unwrap(),
        "population,junction,amplitude_v,model_p,measured_p"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 2 * 4, "{results}");
    let report: serde_json::Value = serde_json::from_str(&read(&out.join("report.json"))).unwrap();
    let measured = report["calibrated"]["measured_p"].as_array().unwrap();
    for (row, p) in rows[4..].iter().zip(measured) {
        assert_eq!(row[0], "calibrated");
        assert_eq!(row[4].parse::<f64>().unwrap(), p.as_f64().unwrap());
    }
    let summary = read(&out.join("summary.csv"));
    let mut lines = summary.lines();
    assert_eq!(
        lines.next().unwrap(),
        "population,amplitude_v_mean,amplitude_v_std,amplitude_v_ci95,model_p_mean,model_p_std,\
         model_p_ci95,measured_p_mean,measured_p_std,measured_p_ci95,n"
    );
    let calibrated: Vec<&str> = lines.nth(1).unwrap().split(',').collect();
    assert_eq!(calibrated[0], "calibrated");
    assert_eq!(calibrated[10], "4");
    let mean = measured.iter().map(|p| p.as_f64().unwrap()).sum::<f64>() / 4.0;
    assert!((calibrated[7].parse::<f64>().unwrap() - mean).abs() < 1e-12);
    assert!(out.join("rng_bias_vs_amplitude.png").exists());
    let bad = xbar(&[
        "run",
        file.to_str().unwrap(),
        "--out",
        dir.path().join("bad").to_str().unwrap(),
        "--set",
        "mram_rng.devicez=3",
    ]);
    assert!(!bad.status.success() && stderr(&bad).contains("devicez"));
    let typo = dir.path().join("typo.toml");
    std::fs::write(&typo, text.replace("bits_per_device", "bits_per_devise")).unwrap();
    let bad = xbar_run(&typo, &dir.path().join("bad"), &[]);
    assert!(
        !bad.status.success() && stderr(&bad).contains("bits_per_devise"),
        "{}",
        stderr(&bad)
    );
    assert!(!dir.path().join("bad").exists());
}

/// The registry is the one list of kinds: `xbar run --help` lists every kind with its
/// description, and an unknown kind is an error listing them all.
#[test]
fn the_registry_drives_the_help_and_the_unknown_kind_error() {
    let help = stdout(&xbar(&["run", "--help"]));
    for kind in KINDS {
        assert!(
            help.contains(&format!("  {}: {}", kind.name, kind.description)),
            "{} missing from:\n{help}",
            kind.name
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("unknown.toml");
    std::fs::write(&file, "[experiment]\nname = \"u\"\nkind = \"analog_sgd\"\n").unwrap();
    let o = xbar_run(&file, &dir.path().join("out"), &[]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("'analog_sgd' is not a kind xbar knows"),
        "{err}"
    );
    for kind in KINDS {
        assert!(err.contains(&format!("  {}: ", kind.name)), "{err}");
    }
    assert!(!dir.path().join("out").exists());
}

/// The digital twin: ideal devices, ideal converters, no read noise and no faults give
/// exactly the accuracy of the floating-point network (for every repeat).
#[test]
fn ideal_hardware_reproduces_the_digital_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("twin.toml");
    std::fs::write(
        &file,
        r#"
[experiment]
name = "twin"
seed = 5
repeats = 2

[data]
train_limit = 1000
test_limit = 500

[network]
hidden = [32, 16]

[train]
epochs = 2

[hardware]
device = "ideal"

[hardware.tile]
max_rows = 100
max_cols = 20
programming = { method = "open_loop" }
periphery = { dac_bits = 0, adc = { bits = 0 }, read_noise = false }

[[plot]]
x = "hardware.t_inference_s"
y = "accuracy"

[[sweep]]
path = "hardware.t_inference_s"
values = [1.0, 1e5]
"#,
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = xbar_run(&file, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let results = read(&out.join("results.csv"));
    for line in results.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells[3], cells[4], "accuracy vs digital accuracy: {line}");
        assert!(cells[3].parse::<f64>().unwrap() > 0.5, "{line}");
    }
}
