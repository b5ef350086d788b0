//! Results are never lost, stale or mislabelled: regression tests, through the `xbar`
//! binary, for every defect of that class found in the adversarial review (issue 10):
//! output-directory safety (shards, locks, other runs' results), resume fingerprints of
//! input contents, refused duplicate sweep paths, provenance that matches what ran, size
//! guards, capped threads, the circuit solver's numerics, non-finite metrics, plot file
//! names, empty shards, nonsense settings, and newcomer friction.

use std::path::{Path, PathBuf};
use std::process::Command;
mod common;

use common::{read, stderr, stdout, xbar, xbar_run};

/// A fast inference sweep: 784-8-10 MLP, one epoch on 300 digits, three read times.
const SMALL: &str = r#"
[experiment]
name = "small"
seed = 3
repeats = 2

[data]
train_limit = 300
test_limit = 100

[network]
hidden = [8]

[train]
epochs = 1

[hardware]
device = "pcm_gst"

[[sweep]]
path = "hardware.t_inference_s"
values = [1.0, 1e3, 1e6]

[[plot]]
name = "acc"
x = "hardware.t_inference_s"
y = "accuracy"
log_x = true
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn small(dir: &Path) -> PathBuf {
    write(dir, "small.toml", SMALL)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn run_json(out: &Path) -> serde_json::Value {
    serde_json::from_str(&read(&out.join("run.json"))).unwrap()
}

fn assert_fails_with(o: &std::process::Output, needles: &[&str]) {
    let err = stderr(o);
    assert!(!o.status.success(), "expected a failure, got: {err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "'{n}' not in: {err}");
    }
}

/// Item 1: a shard run into a directory of finished results keeps them.
#[test]
fn a_shard_into_finished_results_keeps_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let (file, out) = (small(dir.path()), dir.path().join("out"));
    assert!(xbar_run(&file, &out, &[]).status.success());
    let full = read(&out.join("results.csv"));
    let o = xbar_run(&file, &out, &["--shard", "1/2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read(&out.join("results.csv")), full, "no row may be lost");
    assert_eq!(full.lines().count(), 1 + 6);
    assert_eq!(run_json(&out)["jobs_done"], 6);
}

/// Item 2: resume refuses results made from another version of an input file.
#[test]
fn an_edited_preset_file_is_not_resumed_onto() {
    let dir = tempfile::tempdir().unwrap();
    let (file, out) = (small(dir.path()), dir.path().join("out"));
    let preset = include_str!("../device_models/pcm_gst.toml");
    let mine = write(dir.path(), "mine.toml", preset);
    let set = format!("hardware.device={}", s(&mine));
    assert!(xbar_run(&file, &out, &["--set", &set]).status.success());
    assert!(run_json(&out)["plan"]["inputs"][s(&mine)].is_string());
    write(
        dir.path(),
        "mine.toml",
        &preset.replacen("value = 25e-6", "value = 20e-6", 1),
    );
    let before = read(&out.join("results.csv"));
    let o = xbar_run(&file, &out, &["--set", &set]);
    assert_fails_with(&o, &["mine.toml", "changed"]);
    assert_eq!(read(&out.join("results.csv")), before);
}

/// Item 3: a directory in use by another run is refused at once.
#[test]
fn a_directory_in_use_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (file, out) = (small(dir.path()), dir.path().join("out"));
    let held = xbar::output::results::OutputDir::acquire(&out).unwrap();
    let o = xbar_run(&file, &out, &["--seed", "9"]);
    assert_fails_with(&o, &["another xbar run", "--out"]);
    drop(held);
    assert!(xbar_run(&file, &out, &[]).status.success());
    let o = xbar_run(&file, &out, &["--seed", "9"]);
    assert_fails_with(&o, &["seed 3 there, 9 now", "kept"]);
}

/// Item 4: two axes on one path are refused, naming both entries.
#[test]
fn a_path_swept_twice_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("{SMALL}\n[[sweep]]\npath = \"hardware.t_inference_s\"\nvalues = [5.0]\n");
    let file = write(dir.path(), "dup.toml", &text);
    let out = dir.path().join("out");
    let o = xbar_run(&file, &out, &[]);
    assert_fails_with(&o, &["entries 1 and 2", "hardware.t_inference_s"]);
    assert!(!out.exists());
}

/// Item 5: imported weights of another shape are an error naming the shape to use; after
/// a plot failure the run record still counts every saved job.
#[test]
fn provenance_matches_what_ran() {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("w");
    let mlp = xbar::nn::Mlp::random(&[784, 32, 10], 1).unwrap();
    xbar::nn::save_mlp(&mlp, &weights).unwrap();
    let file = small(dir.path());
    let set = format!("network.weights={}", s(&weights));
    let o = xbar_run(&file, &dir.path().join("a"), &["--set", &set]);
    assert_fails_with(&o, &["784-32-10", "network.hidden = [32]"]);
    let o = xbar_run(
        &file,
        &dir.path().join("b"),
        &["--set", &set, "--set", "network.hidden=[32]"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        run_json(&dir.path().join("b"))["plan"]["base"]["network"]["hidden"],
        serde_json::json!([32])
    );

    // A figure that cannot be written (a directory stands where acc.png goes): the results
    // are kept and the record counts them.
    let out = dir.path().join("c");
    std::fs::create_dir_all(out.join("acc.png")).unwrap();
    let o = xbar_run(&small(dir.path()), &out, &[]);
    assert_fails_with(&o, &["every job's result is saved", "acc.png"]);
    assert_eq!(read(&out.join("results.csv")).lines().count(), 1 + 6);
    let record = run_json(&out);
    assert_eq!(record["jobs_done"], 6);
    assert_eq!(record["complete"], true);
    assert!(record["figures_error"].is_string());
}

/// Items 6 and 7: sizes beyond the machine are refused with the estimate; too many threads
/// are capped with a warning.
#[test]
fn oversized_jobs_are_refused_and_threads_capped() {
    let dir = tempfile::tempdir().unwrap();
    let file = small(dir.path());
    let out = dir.path().join("out");
    for hidden in ["[4000000000]", "[100000, 100000]"] {
        let o = xbar_run(&file, &out, &["--set", &format!("network.hidden={hidden}")]);
        assert_fails_with(&o, &["needs an estimated", "network.hidden"]);
        assert!(!out.exists());
    }
    let o = xbar(&[
        "characterize",
        "pcm_gst",
        "--out",
        s(&out),
        "--devices",
        "1000000000",
    ]);
    assert_fails_with(&o, &["needs an estimated", "--devices"]);
    let o = xbar_run(&file, &out, &["--threads", "1000"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("more than the"), "{}", stderr(&o));
}

/// Item 8: the circuit solver gives the ideal currents for negligible wires, never -0 or
/// NaN, and refuses values outside a memory array's range.
#[test]
fn the_circuit_solver_never_prints_wrong_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let g = write(dir.path(), "G.csv", "\u{feff}1e-5,2e-5\n3e-5,0\n");
    let v = write(dir.path(), "V.csv", "0.2\n0.1\n");
    let solve = |g: &Path, v: &Path, extra: &[&str]| {
        let mut args = vec![
            "crossbar",
            "solve",
            "--conductances",
            s(g),
            "--voltages",
            s(v),
        ];
        args.extend_from_slice(extra);
        xbar(&args)
    };
    let ideal = stdout(&solve(&g, &v, &["--r-wire", "0"]));
    assert_eq!(ideal, "5e-6\n4.000000000000001e-6\n");
    for tiny in ["1e-200", "1e-150"] {
        assert_eq!(stdout(&solve(&g, &v, &["--r-wire", tiny])), ideal, "{tiny}");
    }
    let zeros = write(dir.path(), "Z.csv", "0,0\n0,0\n");
    let o = solve(&zeros, &v, &["--r-wire", "1", "--approx"]);
    assert_eq!(stdout(&o), "0e0\n0e0\n");
    let huge_g = write(dir.path(), "H.csv", "1e300,0\n0,0\n");
    assert_fails_with(&solve(&huge_g, &v, &["--r-wire", "1"]), &["H.csv:1", "1 S"]);
    let huge_v = write(dir.path(), "HV.csv", "1e300\n0\n");
    assert_fails_with(
        &solve(&g, &huge_v, &["--r-wire", "1"]),
        &["HV.csv:1", "volts"],
    );
}

/// Item 9: a collapsed network is recorded (its weight error as inf), not an abort.
#[test]
fn a_collapsed_network_is_a_result() {
    let dir = tempfile::tempdir().unwrap();
    let (file, out) = (small(dir.path()), dir.path().join("out"));
    let o = xbar_run(
        &file,
        &out,
        &[
            "--set",
            "hardware.device=rram_hfo2",
            "--set",
            "hardware.variability_scale=1000",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let results = read(&out.join("results.csv"));
    for line in results.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        let accuracy: f64 = cells[3].parse().unwrap();
        assert!((0.0..=1.0).contains(&accuracy), "{line}");
        assert_eq!(cells[5], "inf", "{line}");
    }
}

/// Items 10 and 11: plot names stay inside the output directory, and dots in a stem are
/// kept.
#[test]
fn plot_files_are_named_as_asked_and_stay_inside() {
    let dir = tempfile::tempdir().unwrap();
    let escaped = SMALL.replace("name = \"acc\"", "name = \"../../escaped_plot\"");
    let file = write(dir.path(), "esc.toml", &escaped);
    let o = xbar_run(&file, &dir.path().join("x"), &[]);
    assert_fails_with(&o, &["not a plain file name"]);
    let text_x = SMALL
        .replace(
            "path = \"hardware.t_inference_s\"\nvalues = [1.0, 1e3, 1e6]",
            "path = \"hardware.device\"\nvalues = [\"ideal\", \"pcm_gst\"]",
        )
        .replace("x = \"hardware.t_inference_s\"", "x = \"hardware.device\"");
    let file = write(dir.path(), "textx.toml", &text_x);
    let o = xbar_run(&file, &dir.path().join("y"), &[]);
    assert_fails_with(&o, &["not a number", "series"]);
    assert!(!dir.path().join("y").exists());
    let (file, out) = (small(dir.path()), dir.path().join("out"));
    assert!(xbar_run(&file, &out, &[]).status.success());
    for x in ["hardware.t_inference_s", "point"] {
        let o = xbar(&["plot", s(&out), "--x", x, "--y", "accuracy"]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(
            out.join(format!("plot-accuracy-vs-{x}.png")).exists(),
            "{x}"
        );
    }
    let stem = dir.path().join("fig.v2");
    let o = xbar(&[
        "plot",
        s(&out),
        "--x",
        "point",
        "--y",
        "accuracy",
        "--out",
        s(&stem),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(dir.path().join("fig.v2.png").exists() && dir.path().join("fig.v2.svg").exists());
}

/// Item 12: a shard that owns no point succeeds and says so.
#[test]
fn an_empty_shard_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let (file, out) = (small(dir.path()), dir.path().join("out"));
    let o = xbar_run(&file, &out, &["--shard", "5/10"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("owns none of the 3 points"),
        "{}",
        stderr(&o)
    );
    assert_eq!(read(&out.join("results.csv")).lines().count(), 1);
}

/// Item 13: nonsense settings are refused; one repeat has no spread.
#[test]
fn nonsense_is_refused_and_single_repeats_have_no_spread() {
    let dir = tempfile::tempdir().unwrap();
    let (file, out) = (small(dir.path()), dir.path().join("out"));
    let o = xbar_run(&file, &out, &["--set", "train.max_shift_px=100"]);
    assert_fails_with(&o, &["max_shift_px = 100", "half the image side"]);
    assert!(
        !out.exists(),
        "a failed validation leaves no directory behind"
    );
    let o = xbar_run(
        &file,
        &out,
        &["--set", "hardware.device_params.g_max_s=1e300"],
    );
    assert_fails_with(&o, &["g_max_s", "check the unit"]);
    let o = xbar_run(&file, &out, &["--set", "experiment.repeats=1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary = read(&out.join("summary.csv"));
    let row: Vec<&str> = summary.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(
        (row[3], row[4]),
        ("", ""),
        "std and ci95 of n = 1: {summary}"
    );
}

/// Item 14: newcomer friction.
#[test]
fn newcomer_friction_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let (file, out) = (small(dir.path()), dir.path().join("out"));
    // A --set typo cites a path that exists.
    let o = xbar_run(&file, &out, &["--set", "hardware..bits=4"]);
    assert_fails_with(&o, &["hardware.tile.periphery.adc.bits"]);
    // Switching a tagged table's mode by one key fills that mode's defaults.
    let o = xbar_run(
        &file,
        &out,
        &[
            "--set",
            "hardware.tile.periphery.adc.range.mode=calibrated",
            "--set",
            "experiment.seed=18446744073709551615",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let record = run_json(&out);
    assert_eq!(
        record["plan"]["base"]["hardware"]["tile"]["periphery"]["adc"]["range"]["margin"],
        1.2
    );
    assert_eq!(record["plan"]["seed"], u64::MAX);
    // f32 settings are recorded as configured, not widened.
    assert!(!read(&out.join("run.json")).contains("0.0010000000474974513"));
    // No blank padding before the summary of a run without sweep.
    let single = SMALL.split("[[sweep]]").next().unwrap();
    let file1 = write(dir.path(), "single.toml", single);
    let o = xbar_run(&file1, &dir.path().join("single"), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("accuracy = "), "{}", stdout(&o));
}

/// Item 14: relative paths in an experiment file are relative to the file, whatever the
/// working directory.
#[test]
fn relative_paths_resolve_against_the_experiment_file() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("exp");
    std::fs::create_dir(&sub).unwrap();
    write(
        &sub,
        "mine.toml",
        include_str!("../device_models/pcm_gst.toml"),
    );
    let text = SMALL.replace("device = \"pcm_gst\"", "device = \"mine.toml\"");
    let file = write(&sub, "rel.toml", &text);
    let o = Command::new(env!("CARGO_BIN_EXE_xbar"))
        .args(["run", s(&file), "--out", "out", "--quiet"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let device = run_json(&dir.path().join("out"))["plan"]["base"]["hardware"]["device"].clone();
    assert_eq!(Path::new(device.as_str().unwrap()), sub.join("mine.toml"));
}

/// Item 14: a data set whose splits have different image sizes is blamed on the data.
#[test]
fn mismatched_splits_are_blamed_on_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    for (split, side) in [("train", 32u32), ("t10k", 28u32)] {
        let pixels = vec![0u8; (4 * side * side) as usize];
        common::write_idx_split(&data, split, &pixels, &[0, 1, 0, 1], side, side);
    }
    let file = small(dir.path());
    let set = format!("data.source={}", s(&data));
    let o = xbar_run(&file, &dir.path().join("out"), &["--set", &set]);
    assert_fails_with(&o, &["32x32", "28x28", "data directory"]);
}

/// Item 14: Ctrl-C says how many jobs are saved and how to resume.
#[test]
fn an_interrupt_says_what_is_saved() {
    let dir = tempfile::tempdir().unwrap();
    let (file, out) = (small(dir.path()), dir.path().join("out"));
    let child = Command::new(env!("CARGO_BIN_EXE_xbar"))
        .args(["run", s(&file), "--out", s(&out), "--quiet"])
        .args([
            "--set",
            "train.epochs=400",
            "--set",
            "data.train_limit=2000",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the run has written its record (it is then in the training phase).
    let start = std::time::Instant::now();
    while !out.join("run.json").exists() && start.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130));
    assert!(
        stderr(&o).contains("0 of 6 jobs are saved")
            && stderr(&o).contains("run the same command again"),
        "{}",
        stderr(&o)
    );
}

/// The same class of defect in the other writers: a study and a characterisation never
/// overwrite another run's finished results, and re-running the same one does nothing.
#[test]
fn studies_and_characterisations_keep_finished_results() {
    let dir = tempfile::tempdir().unwrap();
    let study = write(
        dir.path(),
        "rng.toml",
        "[experiment]\nname = \"rng\"\nkind = \"mram_rng\"\nseed = 3\n\n[mram_rng]\ndevices = 4\nbits_per_device = 256\n",
    );
    let out = dir.path().join("out");
    let run = |extra: &[&str]| {
        let mut args = vec!["run", s(&study), "--out", s(&out)];
        args.extend_from_slice(extra);
        xbar(&args)
    };
    assert!(run(&[]).status.success());
    let report = read(&out.join("report.json"));
    let again = run(&[]);
    assert!(again.status.success() && stdout(&again).contains("nothing to do"));
    assert_fails_with(&run(&["--seed", "4"]), &["finished results of another run"]);
    assert_eq!(read(&out.join("report.json")), report);
    // A sweep into the study's directory is refused too.
    let o = xbar_run(&small(dir.path()), &out, &[]);
    assert_fails_with(&o, &["study"]);
    let chars = dir.path().join("chars");
    let characterize = |devices: &str| {
        xbar(&[
            "characterize",
            "pcm_gst",
            "--out",
            s(&chars),
            "--devices",
            devices,
            "--trials",
            "20",
            "--quiet",
        ])
    };
    assert!(characterize("3").status.success());
    assert!(stdout(&characterize("3")).contains("nothing to do"));
    assert_fails_with(&characterize("4"), &["finished results of another run"]);
}

/// Merging never drops what the output directory holds, and refuses other runs' results.
#[test]
fn a_merge_keeps_what_its_output_holds() {
    let dir = tempfile::tempdir().unwrap();
    let file = small(dir.path());
    let (s0, s1, full) = (
        dir.path().join("s0"),
        dir.path().join("s1"),
        dir.path().join("full"),
    );
    assert!(xbar_run(&file, &s0, &["--shard", "0/2"]).status.success());
    assert!(xbar_run(&file, &s1, &["--shard", "1/2"]).status.success());
    assert!(xbar_run(&file, &full, &[]).status.success());
    // Merging shard 1 into shard 0's directory gives the full run.
    let o = xbar(&["merge", s(&s1), "--out", s(&s0)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        read(&s0.join("results.csv")),
        read(&full.join("results.csv"))
    );
    let other = dir.path().join("other");
    assert!(xbar_run(&file, &other, &["--seed", "8"]).status.success());
    let o = xbar(&["merge", s(&s1), "--out", s(&other)]);
    assert_fails_with(&o, &["other inputs"]);
}
