//! `xbar crossbar ...` circuit tools: `solve` computes the output currents of a resistive
//! crossbar with wire resistance (IR drop) from CSV files, for comparison with SPICE.

use anyhow::{Context, Result, bail, ensure};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use xbar::crossbar::ir_drop::{IrDropSolver, SolveMode, WireParams};
use xbar::device::preset::MAX_CELL_CONDUCTANCE_S;

/// Crossbar circuit tools.
#[derive(Debug, Subcommand)]
pub enum CrossbarCommand {
    /// Solve the resistive network of a crossbar (IR drop) and print the output currents.
    #[command(long_about = SOLVE_LONG_ABOUT)]
    Solve(SolveArgs),
}

const SOLVE_LONG_ABOUT: &str = "\
Solve the resistive network of a crossbar (nodal analysis with wire resistance, IR drop) \
and print the output currents in amperes, one per line, for comparison with SPICE.

Topology (N rows, M columns; device (i,j) of conductance G_ij joins row node (i,j) to \
column node (i,j)):
  * row i is driven at its left end by V_i through r_driver, then one wire segment r_wire \
leads to cell (i,0) and one r_wire lies between consecutive cells along the row; the \
right end of the row is open;
  * column j is held at 0 V (the sense amplifier's virtual ground) at its bottom end \
through r_sense, with one r_wire segment between consecutive cells down the column and one \
after cell (N-1,j); the top end of the column is open;
  * output: each column's current into its sense amplifier (M values).
With --transpose the columns are driven at their bottom ends (M voltages, through \
r_driver) and the rows are sensed at their left ends (through r_sense); output: each row's \
current (N values). r_driver = r_sense = 0 connect the end segment straight to the ideal \
source / virtual ground; r_wire = 0 gives the ideal product G^T V.

Files: G.csv has N lines of M comma-separated conductances in siemens (finite, >= 0); \
V.csv has one voltage (volts) per line, N values (M with --transpose). Blank lines are \
ignored.

--exact (default) solves to a Kirchhoff residual below 1e-9; --approx runs two block \
Gauss-Seidel line sweeps (much faster; error documented in xbar::crossbar::ir_drop).";

/// Arguments of `xbar crossbar solve`.
#[derive(Debug, Args)]
pub struct SolveArgs {
    /// Conductance matrix: N lines of M comma-separated values (siemens).
    #[arg(long, value_name = "G.csv")]
    conductances: PathBuf,
    /// Input voltages, one per line (volts): N values, or M with --transpose.
    #[arg(long, value_name = "V.csv")]
    voltages: PathBuf,
    /// Resistance of one wire segment (ohms, >= 0).
    #[arg(long, value_name = "OHMS", allow_negative_numbers = true)]
    r_wire: f64,
    /// Output resistance of each driver (ohms, >= 0; 0 = ideal source).
    #[arg(
        long,
        value_name = "OHMS",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    r_driver: f64,
    /// Input resistance of each sense amplifier (ohms, >= 0; 0 = ideal virtual ground).
    #[arg(
        long,
        value_name = "OHMS",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    r_sense: f64,
    /// Drive the columns (bottom ends) and sense the rows (left ends).
    #[arg(long)]
    transpose: bool,
    /// Exact solve (the default): Kirchhoff residual below 1e-9.
    #[arg(long, conflicts_with = "approx")]
    exact: bool,
    /// Approximate solve: two line-relaxation sweeps.
    #[arg(long)]
    approx: bool,
}

/// Run a crossbar subcommand.
pub fn run(cmd: CrossbarCommand) -> Result<()> {
    match cmd {
        CrossbarCommand::Solve(args) => run_solve(&args),
    }
}

fn run_solve(args: &SolveArgs) -> Result<()> {
    for (flag, r) in [
        ("--r-wire", args.r_wire),
        ("--r-driver", args.r_driver),
        ("--r-sense", args.r_sense),
    ] {
        ensure!(
            r.is_finite() && r >= 0.0,
            "{flag} {r}: resistances must be finite and >= 0 ohm"
        );
    }
    let (g_s, n_rows, n_cols) = read_conductances(&args.conductances)?;
    let v_in = read_voltages(&args.voltages)?;
    let (n_expected, driven) = if args.transpose {
        (n_cols, "columns")
    } else {
        (n_rows, "rows")
    };
    ensure!(
        v_in.len() == n_expected,
        "{}: {} voltages, but {} has {n_rows} rows x {n_cols} columns and the {driven} are \
         driven: give {n_expected} voltages, one per line",
        args.voltages.display(),
        v_in.len(),
        args.conductances.display()
    );
    let wires = WireParams {
        r_wire_ohm: args.r_wire,
        r_driver_ohm: args.r_driver,
        r_sense_ohm: args.r_sense,
    };
    let mode = SolveMode::approximate_if(args.approx);
    let solver = IrDropSolver::new(&g_s, n_rows, n_cols, &wires, mode).with_context(|| {
        format!(
            "cannot build the network from {}",
            args.conductances.display()
        )
    })?;
    let currents_a = if args.transpose {
        solver.solve_transposed(&v_in)
    } else {
        solver.solve(&v_in)
    };
    if let Some(k) = currents_a.iter().position(|i| !i.is_finite()) {
        bail!(
            "the solution is not finite (current {} = {}): the network is outside the range \
             where the solver is accurate; please report these files",
            k + 1,
            currents_a[k]
        );
    }
    let mut out = String::with_capacity(currents_a.len() * 24);
    for i in currents_a {
        // Adding 0 turns a -0 (an empty column's rounding) into 0.
        out.push_str(&format!("{:e}\n", i + 0.0));
    }
    print!("{out}");
    Ok(())
}

/// The largest drive voltage accepted, volts: far beyond any crossbar read (below 1 V) or
/// write (a few volts) voltage, so a larger value is a unit mistake.
const MAX_DRIVE_V: f64 = 1e3;

/// Non-blank lines of a text file with their 1-based line numbers (a UTF-8 byte-order mark,
/// as spreadsheet programs write, is ignored).
fn data_lines(path: &Path) -> Result<Vec<(usize, String)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let lines: Vec<(usize, String)> = xbar::output::results::strip_bom(&text)
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(k, l)| (k + 1, l.trim().to_string()))
        .collect();
    ensure!(!lines.is_empty(), "{}: the file is empty", path.display());
    Ok(lines)
}

/// Parse one finite number of a CSV field.
fn parse_value(field: &str, path: &Path, line: usize, what: &str) -> Result<f64> {
    let value: f64 = field.trim().parse().map_err(|_| {
        anyhow::anyhow!(
            "{}:{line}: {what} {:?} is not a number",
            path.display(),
            field.trim()
        )
    })?;
    ensure!(
        value.is_finite(),
        "{}:{line}: {what} {value} is not finite",
        path.display()
    );
    Ok(value)
}

/// Read the conductance matrix: one row per line, comma-separated siemens.
fn read_conductances(path: &Path) -> Result<(Vec<f64>, usize, usize)> {
    let lines = data_lines(path)?;
    let mut g_s = Vec::new();
    let mut n_cols = 0;
    for (row, (line, text)) in lines.iter().enumerate() {
        let fields: Vec<&str> = text.split(',').collect();
        if row == 0 {
            n_cols = fields.len();
        } else if fields.len() != n_cols {
            bail!(
                "{}:{line}: row {} has {} values but the first row has {n_cols}: every row \
                 needs one conductance per column",
                path.display(),
                row + 1,
                fields.len()
            );
        }
        for (col, field) in fields.iter().enumerate() {
            let g = parse_value(
                field,
                path,
                *line,
                &format!("conductance in column {}", col + 1),
            )?;
            ensure!(
                g >= 0.0,
                "{}:{line}: conductance in column {} is negative ({g:e} S): conductances must \
                 be >= 0 siemens",
                path.display(),
                col + 1
            );
            ensure!(
                g <= MAX_CELL_CONDUCTANCE_S,
                "{}:{line}: conductance in column {} is {g:e} S, more than a memory cell's \
                 {MAX_CELL_CONDUCTANCE_S} S (a 1-ohm cell): check the unit (siemens)",
                path.display(),
                col + 1
            );
            g_s.push(g);
        }
    }
    Ok((g_s, lines.len(), n_cols))
}

/// Read the input voltages: one value per line.
fn read_voltages(path: &Path) -> Result<Vec<f64>> {
    data_lines(path)?
        .iter()
        .map(|(line, text)| {
            ensure!(
                !text.contains(','),
                "{}:{line}: expected one voltage per line, found {text:?}",
                path.display()
            );
            let v = parse_value(text, path, *line, "voltage")?;
            ensure!(
                v.abs() <= MAX_DRIVE_V,
                "{}:{line}: voltage {v:e} V is beyond the {MAX_DRIVE_V} V any crossbar is \
                 driven with: check the unit (volts)",
                path.display()
            );
            Ok(v)
        })
        .collect()
}
