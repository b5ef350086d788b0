//! The `xbar fit` command, run as a user would run it: a measurement file in, a preset that
//! loads wherever a preset name does and a figure out; existing files are never overwritten;
//! a bad file is an error naming its line.

use std::path::Path;
mod common;

use common::{read, stderr, stdout, xbar};
use xbar::device::AnyDevice;
use xbar::device::fit;
use xbar::device::pulsed::{PulsedDevice, PulsedParams, SoftBoundsParams, StepFamily};
use xbar::rng::stream;

/// A soft-bounds device on [5, 25] uS with moderate spreads.
fn truth() -> PulsedDevice {
    let params = PulsedParams {
        w_min_dtod: 0.05,
        w_max_dtod: 0.05,
        dw_min_dtod: 0.1,
        dw_min_std: 0.3,
        ..PulsedParams::noise_free((5e-6, 25e-6), (-1.0, 1.0), 0.01, (1.0, 100e-9))
    };
    PulsedDevice::new(
        params,
        StepFamily::SoftBounds(SoftBoundsParams { mult_noise: true }),
    )
}

/// Eight devices, two cycles of 400 up and 400 down pulses, as a CSV file in `dir`.
fn write_measurement(dir: &Path) -> std::path::PathBuf {
    let device = truth();
    let schedule = fit::cycle_schedule(2, 400, 400);
    let responses: Vec<Vec<f64>> = (0..8)
        .map(|d| fit::simulate_response(&device, &schedule, &mut stream(3, &[d])))
        .collect();
    let path = dir.join("pulses.csv");
    std::fs::write(&path, fit::to_csv(&schedule, &responses)).unwrap();
    path
}

#[test]
fn fit_writes_a_preset_that_loads_and_a_figure() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_measurement(dir.path());
    let out = dir.path().join("my_device.toml");
    let stem = dir.path().join("fit");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let args = [
        "fit".to_string(),
        s(&data),
        "--family".into(),
        "soft_bounds".into(),
        "--name".into(),
        "my_device".into(),
        "--out".into(),
        s(&out),
        "--plot".into(),
        s(&stem),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = xbar(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("residual RMS"), "{}", stdout(&o));
    for ext in ["png", "svg"] {
        let f = dir.path().join(format!("fit.{ext}"));
        assert!(
            std::fs::metadata(&f).unwrap().len() > 1000,
            "{}",
            f.display()
        );
    }

    // The preset loads with the ordinary loader, as a path, and is the fitted family.
    let text = read(&out);
    let preset = xbar::device::preset::read(out.to_str().unwrap()).unwrap();
    assert_eq!(preset.name, "my_device");
    assert_eq!(preset.model, "soft_bounds");
    let sha = xbar::output::results::sha256_of_path(&data).unwrap();
    let origin = format!("xbar fit from pulses.csv (sha256 {sha}), 8 devices, 12800 pulses");
    for p in &preset.params {
        assert!(
            p.source.contains(&origin),
            "params.{}: source `{}` does not name the data",
            p.name,
            p.source
        );
    }
    let fitted = preset
        .params
        .iter()
        .filter(|p| p.source.starts_with("fitted by"))
        .count();
    assert!(fitted >= 10, "only {fitted} parameters fitted:\n{text}");
    let AnyDevice::Pulsed(device) =
        xbar::device::preset::load(out.to_str().unwrap(), &toml::Table::new()).unwrap()
    else {
        panic!("a fitted preset is a pulsed device");
    };
    // Same window as the truth (8 devices, spread 5 % of a 10 uS half-window: SE 0.18 uS).
    let p = &device.params;
    assert!((p.g_min_s - 5e-6).abs() < 0.8e-6, "g_min_s {}", p.g_min_s);
    assert!((p.g_max_s - 25e-6).abs() < 0.8e-6, "g_max_s {}", p.g_max_s);
    // A user preset works wherever a name does: `xbar devices show PATH`.
    let o = xbar(&["devices", "show", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("fitted by xbar fit from pulses.csv"));

    // Results are never overwritten: a second run refuses and leaves the file as it was.
    let o = xbar(&args);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("already exists") && stderr(&o).contains("choose another path"),
        "{}",
        stderr(&o)
    );
    assert_eq!(read(&out), text);
    // So is an existing figure, before anything is written.
    let other = dir.path().join("other.toml");
    let mut args2 = args.clone();
    args2[7] = other.to_str().unwrap();
    let o = xbar(&args2);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("fit.png"), "{}", stderr(&o));
    assert!(!other.exists());
}

#[test]
fn fit_reports_a_bad_file_by_line_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_measurement(dir.path());
    let text = read(&data);
    let mut lines: Vec<&str> = text.lines().collect();
    lines[10] = "d0,9,up,NaN";
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, lines.join("\n")).unwrap();
    let out = dir.path().join("never.toml");
    let o = xbar(&[
        "fit",
        bad.to_str().unwrap(),
        "--family",
        "constant_step",
        "--name",
        "x",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("bad.csv") && err.contains("line 11") && err.contains("not a finite number"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(!out.exists());
}
