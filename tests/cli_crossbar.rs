//! End-to-end tests of `xbar crossbar solve`: the built binary on small CSV files.

use std::path::{Path, PathBuf};
mod common;

use common::xbar;
use std::process::Output;
use xbar::crossbar::ir_drop::{IrDropSolver, SolveMode, WireParams};

/// 2 rows x 3 columns of conductances (S), as written to G.csv below.
const G_S: [f64; 6] = [10e-6, 20e-6, 30e-6, 40e-6, 50e-6, 60e-6];
const G_CSV: &str = "1e-5,2e-5,3e-5\n4e-5, 5e-5 ,6e-5\n";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write test file");
    path
}

/// Run `xbar crossbar solve` on G.csv and a voltage file, returning the output.
fn solve(dir: &Path, g_csv: &str, v_csv: &str, extra: &[&str]) -> Output {
    let g = write(dir, "G.csv", g_csv);
    let v = write(dir, "V.csv", v_csv);
    let mut args = vec![
        "crossbar",
        "solve",
        "--conductances",
        g.to_str().expect("utf-8 path"),
        "--voltages",
        v.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    xbar(&args)
}

fn currents(out: &Output) -> Vec<f64> {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.parse().expect("one current per line"))
        .collect()
}

fn stderr(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn zero_wire_resistance_prints_the_ideal_product() {
    let dir = tempfile::tempdir().expect("tempdir");
    let got = currents(&solve(dir.path(), G_CSV, "0.1\n0.2\n", &["--r-wire", "0"]));
    // Column j collects sum_i G_ij V_i.
    let expected = [9e-6, 12e-6, 15e-6];
    assert_eq!(got.len(), 3);
    for (g, e) in got.iter().zip(expected) {
        assert!((g - e).abs() < 1e-15 * e, "{g:e} vs {e:e}");
    }
}

/// The CLI prints the library's currents to full precision (round trip of `{:e}`), forward
/// and transposed, exact and approximate, with resistive periphery.
#[test]
fn prints_the_library_currents_to_full_precision() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wires = WireParams {
        r_wire_ohm: 2.5,
        r_driver_ohm: 100.0,
        r_sense_ohm: 50.0,
    };
    let resistances = ["--r-wire", "2.5", "--r-driver", "100", "--r-sense", "50"];
    for (mode, flag) in [
        (SolveMode::Exact, "--exact"),
        (SolveMode::Approx, "--approx"),
    ] {
        let solver = IrDropSolver::new(&G_S, 2, 3, &wires, mode).expect("valid array");
        let mut args = resistances.to_vec();
        args.push(flag);
        let got = currents(&solve(dir.path(), G_CSV, "0.1\n\n0.2\n", &args));
        assert_eq!(got, solver.solve(&[0.1, 0.2]));
        args.push("--transpose");
        let got = currents(&solve(dir.path(), G_CSV, "0.3\n-0.1\n0.2\n", &args));
        assert_eq!(got, solver.solve_transposed(&[0.3, -0.1, 0.2]));
    }
}

#[test]
fn help_states_the_topology() {
    let out = xbar(&["crossbar", "solve", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for phrase in [
        "left end",
        "virtual ground",
        "bottom end",
        "after cell (N-1,j)",
        "--transpose",
    ] {
        assert!(help.contains(phrase), "help lacks {phrase:?}");
    }
}

#[test]
fn csv_errors_name_the_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = ["--r-wire", "1"];
    let cases: [(&str, &str, &str); 8] = [
        (
            "1e-5,2e-5\n3e-5\n",
            "0.1\n0.2\n",
            "G.csv:2: row 2 has 1 values but the first row has 2",
        ),
        (
            "1e-5,abc\n",
            "0.1\n",
            "G.csv:1: conductance in column 2 \"abc\" is not a number",
        ),
        (
            "1e-5,-2e-5\n",
            "0.1\n",
            "G.csv:1: conductance in column 2 is negative",
        ),
        (
            "1e-5,NaN\n",
            "0.1\n",
            "G.csv:1: conductance in column 2 NaN is not finite",
        ),
        ("\n  \n", "0.1\n", "G.csv: the file is empty"),
        ("1e-5\n2e-5\n", "0.1\n", "V.csv: 1 voltages, but"),
        (
            "1e-5\n",
            "0.1,0.2\n",
            "V.csv:1: expected one voltage per line",
        ),
        (
            "1e-5\n",
            "\nvolts\n",
            "V.csv:2: voltage \"volts\" is not a number",
        ),
    ];
    for (g_csv, v_csv, message) in cases {
        let err = stderr(&solve(dir.path(), g_csv, v_csv, &r));
        assert!(err.contains(message), "expected {message:?} in {err:?}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn bad_resistances_and_missing_files_are_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = stderr(&solve(dir.path(), G_CSV, "0.1\n0.2\n", &["--r-wire", "-1"]));
    assert!(
        err.contains("--r-wire -1: resistances must be finite and >= 0"),
        "{err}"
    );
    let err = stderr(&solve(
        dir.path(),
        G_CSV,
        "0.1\n0.2\n",
        &["--r-wire", "1", "--r-sense", "inf"],
    ));
    assert!(err.contains("--r-sense"), "{err}");
    let err = stderr(&xbar(&[
        "crossbar",
        "solve",
        "--conductances",
        "/nonexistent/G.csv",
        "--voltages",
        "/nonexistent/V.csv",
        "--r-wire",
        "1",
    ]));
    assert!(err.contains("cannot read /nonexistent/G.csv"), "{err}");
    let err = stderr(&solve(
        dir.path(),
        G_CSV,
        "0.1\n0.2\n",
        &["--r-wire", "1", "--exact", "--approx"],
    ));
    assert!(err.contains("cannot be used with"), "{err}");
}
