//! The `xbar devices` and `xbar characterize` commands, run as a user would run them.

use std::path::Path;
mod common;

use common::{NEUROSIM_PRESETS, stderr, stdout, xbar, xbar_threads};

#[test]
fn devices_lists_every_preset_under_its_family() {
    let o = xbar(&["devices"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for name in xbar::device::preset::builtin_names() {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("  {name} "))),
            "{name} missing from\n{text}"
        );
    }
    // Each preset sits under the header of its family: the nearest header line above it.
    for (name, model) in [
        ("gokmen_vlasov", "constant_step"),
        ("ecram", "linear_step"),
        ("capacitor", "linear_step"),
        ("reram_sb", "soft_bounds"),
        ("reram_es", "exp_step"),
        ("aihwkit_pcm", "exp_step"),
        ("rram_hfo2", "rram"),
        ("neurosim_agasi", "rram"),
        ("neurosim_taox_hfox", "rram"),
        ("neurosim_pcmo", "rram"),
        ("neurosim_alox_hfo2", "rram"),
        ("neurosim_gst", "rram"),
        ("neurosim_epiram", "rram"),
        ("neurosim_hzo_fefet", "rram"),
        ("stt_mram", "mram"),
        ("sot_mram", "mram"),
    ] {
        let header = text
            .lines()
            .take_while(|l| !l.starts_with(&format!("  {name} ")))
            .filter(|l| !l.starts_with(' ') && !l.is_empty())
            .last()
            .unwrap_or_else(|| panic!("no header above {name} in\n{text}"));
        assert!(
            header.ends_with(&format!("(model = \"{model}\")")),
            "{name} under `{header}`"
        );
    }
}

#[test]
fn devices_show_prints_every_parameter_with_unit_and_source() {
    let o = xbar(&["devices", "show", "pcm_gst"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let preset = xbar::device::preset::read("pcm_gst").unwrap();
    for p in &preset.params {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{} ", p.name)))
            .unwrap_or_else(|| panic!("parameter {} missing from\n{text}", p.name));
        assert!(line.contains(&p.source), "{line}");
    }
    assert!(
        text.contains("2.5e-5"),
        "values are printed compactly:\n{text}"
    );
}

/// `xbar devices show` prints every parameter of each NeuroSim benchmark preset, and of the
/// later zoo presets, with its source.
#[test]
fn devices_show_prints_the_sources_of_the_neurosim_and_zoo_presets() {
    for name in NEUROSIM_PRESETS
        .into_iter()
        .chain(["aihwkit_pcm", "sot_mram"])
    {
        let o = xbar(&["devices", "show", name]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let text = stdout(&o);
        let preset = xbar::device::preset::read(name).unwrap();
        for p in &preset.params {
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("{} ", p.name)))
                .unwrap_or_else(|| panic!("{name}: parameter {} missing from\n{text}", p.name));
            assert!(line.contains(&p.source), "{name}: {line}");
        }
    }
}

/// `xbar devices show` prints every parameter of every built-in pulsed preset (found from
/// the presets' families, so a new one is covered) with its source.
#[test]
fn devices_show_prints_the_sources_of_a_pulsed_preset() {
    let pulsed: Vec<String> = xbar::device::preset::list()
        .unwrap()
        .into_iter()
        .filter(|p| xbar::device::pulsed::FAMILIES.contains(&p.model.as_str()))
        .map(|p| p.name)
        .collect();
    assert!(pulsed.len() >= 7, "pulsed presets: {pulsed:?}");
    for name in &pulsed {
        let name = name.as_str();
        let o = xbar(&["devices", "show", name]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let text = stdout(&o);
        let preset = xbar::device::preset::read(name).unwrap();
        for p in &preset.params {
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("{} ", p.name)))
                .unwrap_or_else(|| panic!("{name}: parameter {} missing from\n{text}", p.name));
            assert!(line.contains(&p.source), "{line}");
        }
    }
    let text = stdout(&xbar(&["devices", "show", "reram_es"]));
    assert!(
        text.contains("ReRamESPresetDevice.A_up") && text.contains("-1.18445"),
        "{text}"
    );
}

#[test]
fn an_unknown_device_fails_with_a_message() {
    for args in [
        &["devices", "show", "flash_nand"][..],
        &["characterize", "flash_nand", "--out", "/tmp/x"],
    ] {
        let o = xbar(args);
        assert!(!o.status.success());
        let err = stderr(&o);
        assert!(
            err.contains("unknown device `flash_nand`") && err.contains("stt_mram"),
            "{err}"
        );
    }
}

#[test]
fn a_bad_preset_file_fails_naming_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad_mtj.toml");
    let text = xbar::device::preset::BUILTIN[3]
        .1
        .replace("value = 50e-6", "value = -50e-6");
    std::fs::write(&path, text).unwrap();
    let o = xbar(&["devices", "show", path.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("bad_mtj.toml: params.ic0_a: must be > 0"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

fn assert_protocol_files(dir: &Path, stems: &[&str]) {
    for stem in stems {
        for ext in ["csv", "png", "svg"] {
            let f = dir.join(format!("{stem}.{ext}"));
            assert!(
                f.metadata().map(|m| m.len() > 100).unwrap_or(false),
                "{} missing",
                f.display()
            );
        }
    }
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["command"], "characterize");
    assert!(run["config"]["params"].is_object());
}

#[test]
fn characterize_writes_every_applicable_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[&str], &[&str]); 4] = [
        (
            "ideal",
            &["pulses", "programming"],
            &["switching", "drift", "compliance"],
        ),
        (
            "rram_hfo2",
            &["pulses", "switching", "programming", "compliance"],
            &["drift"],
        ),
        (
            "pcm_gst",
            &["pulses", "drift", "programming"],
            &["switching", "compliance"],
        ),
        (
            "stt_mram",
            &["pulses", "switching", "programming"],
            &["drift", "compliance"],
        ),
    ];
    for (name, written, skipped) in cases {
        let out = dir.path().join(name);
        let o = xbar(&[
            "characterize",
            name,
            "--out",
            out.to_str().unwrap(),
            "--devices",
            "4",
            "--trials",
            "40",
        ]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        assert_protocol_files(&out, written);
        let text = stdout(&o);
        for s in skipped {
            assert!(text.contains(&format!("{s}: skipped (")), "{name}: {text}");
            assert!(!out.join(format!("{s}.csv")).exists());
        }
    }
    let header = std::fs::read_to_string(dir.path().join("stt_mram/switching.csv")).unwrap();
    let first = header.lines().next().unwrap();
    for column in ["amplitude", "width_s", "trials", "p_measured", "p_model"] {
        assert!(
            first.split(',').any(|c| c == column),
            "{column} not in {first}"
        );
    }
}

#[test]
fn characterize_output_does_not_depend_on_the_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut csvs = Vec::new();
    for threads in ["1", "2"] {
        let out = dir.path().join(threads);
        let args = [
            "characterize",
            "rram_hfo2",
            "--out",
            out.to_str().unwrap(),
            "--devices",
            "6",
            "--trials",
            "30",
            "--seed",
            "9",
        ];
        let o = xbar_threads(&args, threads);
        assert!(o.status.success(), "{}", stderr(&o));
        let files: Vec<String> = ["pulses", "switching", "programming"]
            .iter()
            .map(|s| std::fs::read_to_string(out.join(format!("{s}.csv"))).unwrap())
            .collect();
        csvs.push(files);
    }
    assert_eq!(csvs[0], csvs[1]);
}

#[test]
fn characterize_accepts_overrides_and_refuses_unknown_ones() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    let o = xbar(&[
        "characterize",
        "pcm_gst",
        "--out",
        out.to_str().unwrap(),
        "--devices",
        "3",
        "--trials",
        "20",
        "--set",
        "drift_scale=0",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["config"]["params"]["drift_scale"], 0.0);
    let o = xbar(&[
        "characterize",
        "pcm_gst",
        "--out",
        out.to_str().unwrap(),
        "--set",
        "drift_speed=2",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("drift_speed"), "{}", stderr(&o));
}
