//! Results tables: reading `results.csv` back, summarising repeats per point, and drawing
//! the mean-with-error-bars figures that `xbar run` and `xbar plot` produce.

use super::stats::{ErrorBars, Summary};
use crate::output::plot::{Figure, Series, Style};
use crate::output::results::{Table, format_float};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A CSV table held as text cells.
#[derive(Clone, Debug, PartialEq)]
pub struct ResultsTable {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows of cells, one per column.
    pub rows: Vec<Vec<String>>,
}

impl ResultsTable {
    /// Read a CSV file with a header line.
    pub fn read(path: &Path) -> Result<ResultsTable> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot open the results file {}", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The rows of a CSV table built in memory.
    pub fn from_table(table: &Table) -> Result<ResultsTable> {
        let csv = String::from_utf8(table.to_csv()?).context("a CSV table is not UTF-8")?;
        Self::parse(&csv, "a results table")
    }

    /// Parse CSV text with a header line; `name` names it in errors.
    fn parse(text: &str, name: &str) -> Result<ResultsTable> {
        let mut reader =
            csv::Reader::from_reader(crate::output::results::strip_bom(text).as_bytes());
        let columns = reader
            .headers()
            .with_context(|| format!("{name}: cannot read the header line"))?
            .iter()
            .map(str::to_string)
            .collect();
        let mut rows = Vec::new();
        for (i, record) in reader.records().enumerate() {
            let record = record.with_context(|| format!("{name}: line {} is malformed", i + 2))?;
            rows.push(record.iter().map(str::to_string).collect());
        }
        Ok(ResultsTable { columns, rows })
    }

    /// Index of column `name`, or an error listing the columns there are.
    pub fn column(&self, name: &str) -> Result<usize> {
        self.columns
            .iter()
            .position(|c| c == name)
            .with_context(|| {
                format!(
                    "no column '{name}' in the results; the columns are: {}",
                    self.columns.join(", ")
                )
            })
    }

    /// Cell `(row, col)` parsed as a number (`true`/`false` as 1/0).
    pub fn number(&self, row: usize, col: usize) -> Result<f64> {
        let cell = &self.rows[row][col];
        match cell.as_str() {
            "true" => Ok(1.0),
            "false" => Ok(0.0),
            _ => cell.parse().with_context(|| {
                format!(
                    "column '{}' row {}: '{cell}' is not a number",
                    self.columns[col],
                    row + 1
                )
            }),
        }
    }

    /// Convert to a writable CSV table.
    pub fn to_table(&self) -> Result<Table> {
        let mut t = Table::new(&self.columns);
        for row in &self.rows {
            t.push_row(row.clone())?;
        }
        Ok(t)
    }
}

/// Group rows by the `group` columns (in order of first appearance) and summarise each
/// metric: columns `<group...>, <metric>_mean, <metric>_std, <metric>_ci95, n`.
pub fn summarize(
    table: &ResultsTable,
    group: &[String],
    metrics: &[String],
) -> Result<ResultsTable> {
    let group_idx: Vec<usize> = group
        .iter()
        .map(|g| table.column(g))
        .collect::<Result<_>>()?;
    let metric_idx: Vec<usize> = metrics
        .iter()
        .map(|m| table.column(m))
        .collect::<Result<_>>()?;
    let mut keys: Vec<Vec<String>> = Vec::new();
    let mut members: Vec<Vec<usize>> = Vec::new();
    for (r, row) in table.rows.iter().enumerate() {
        let key: Vec<String> = group_idx.iter().map(|&c| row[c].clone()).collect();
        match keys.iter().position(|k| *k == key) {
            Some(k) => members[k].push(r),
            None => {
                keys.push(key);
                members.push(vec![r]);
            }
        }
    }
    let mut columns = group.to_vec();
    for m in metrics {
        columns.extend([format!("{m}_mean"), format!("{m}_std"), format!("{m}_ci95")]);
    }
    columns.push("n".to_string());
    let mut rows = Vec::new();
    for (key, rs) in keys.into_iter().zip(members) {
        let mut row = key;
        for &c in &metric_idx {
            let values: Vec<f64> = rs
                .iter()
                .map(|&r| table.number(r, c))
                .collect::<Result<_>>()?;
            let s = Summary::of(&values);
            let optional = |v: Option<f64>| v.map(format_float).unwrap_or_default();
            row.extend([format_float(s.mean), optional(s.std), optional(s.ci95)]);
        }
        row.push(rs.len().to_string());
        rows.push(row);
    }
    Ok(ResultsTable { columns, rows })
}

/// What to plot from a results table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlotSpec {
    /// Output file stem inside the output directory (`<name>.png`, `<name>.svg`).
    #[serde(default = "default_plot_name")]
    pub name: String,
    /// Column (a sweep path) for the x axis; its values must be numbers or booleans.
    pub x: String,
    /// Metric column for the y axis.
    pub y: String,
    /// Column whose values make one series each.
    #[serde(default)]
    pub series: Option<String>,
    /// Column whose values make one panel each.
    #[serde(default)]
    pub panel: Option<String>,
    /// Logarithmic x axis.
    #[serde(default)]
    pub log_x: bool,
    /// Logarithmic y axis.
    #[serde(default)]
    pub log_y: bool,
    /// Error bars: one standard deviation (`std`) or the 95 % confidence interval (`ci95`).
    #[serde(default)]
    pub error: ErrorBars,
    /// Title (default: y versus x).
    #[serde(default)]
    pub title: Option<String>,
    /// x-axis label with unit (default: the column name).
    #[serde(default)]
    pub x_label: Option<String>,
    /// y-axis label with unit (default: the metric name).
    #[serde(default)]
    pub y_label: Option<String>,
    /// Legend label prefix for series (default: the series column name).
    #[serde(default)]
    pub series_label: Option<String>,
}

fn default_plot_name() -> String {
    "plot".to_string()
}

impl PlotSpec {
    /// A plot of `y` versus `x` with defaults for everything else.
    pub fn new(x: &str, y: &str) -> PlotSpec {
        PlotSpec {
            name: default_plot_name(),
            x: x.to_string(),
            y: y.to_string(),
            series: None,
            panel: None,
            log_x: false,
            log_y: false,
            error: ErrorBars::Std,
            title: None,
            x_label: None,
            y_label: None,
            series_label: None,
        }
    }
}

/// Distinct values of column `col` in order of first appearance.
fn distinct(table: &ResultsTable, col: Option<usize>) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for row in &table.rows {
        let v = col.map_or_else(String::new, |c| row[c].clone());
        if !seen.contains(&v) {
            seen.push(v);
        }
    }
    seen
}

/// The x column of a plot over training epochs: a `[[plot]]` with `x = "epoch"` and
/// `y = "NAME"` draws the per-epoch metrics `NAME_epoch_1`, `NAME_epoch_2`, ... (see
/// [`epoch_metric`]) against the epoch.
pub const EPOCH: &str = "epoch";

/// The name of the per-epoch metric of `family` after epoch `epoch` (from 1), e.g.
/// `accuracy_epoch_3`.
pub fn epoch_metric(family: &str, epoch: usize) -> String {
    format!("{family}_{EPOCH}_{epoch}")
}

/// The per-epoch metrics `y_epoch_K` of `table` as rows: each row becomes one row per
/// epoch K with the columns `epoch` (K) and `y` (its value) in place of the family (and
/// of any column `y` itself); every other column is kept.
pub fn by_epoch(table: &ResultsTable, y: &str) -> Result<ResultsTable> {
    let family: Vec<(usize, usize)> = (1..)
        .map_while(|k| {
            let name = epoch_metric(y, k);
            table
                .columns
                .iter()
                .position(|c| *c == name)
                .map(|c| (k, c))
        })
        .collect();
    if family.is_empty() {
        bail!(
            "x = '{EPOCH}' draws per-epoch metrics, but there is no column '{}'; the columns \
             are: {}",
            epoch_metric(y, 1),
            table.columns.join(", ")
        );
    }
    let prefix = format!("{y}_{EPOCH}_");
    let kept: Vec<usize> = (0..table.columns.len())
        .filter(|&c| table.columns[c] != y && !table.columns[c].starts_with(&prefix))
        .collect();
    let mut columns: Vec<String> = kept.iter().map(|&c| table.columns[c].clone()).collect();
    columns.extend([EPOCH.to_string(), y.to_string()]);
    let mut rows = Vec::with_capacity(table.rows.len() * family.len());
    for row in &table.rows {
        for &(k, c) in &family {
            let mut cells: Vec<String> = kept.iter().map(|&i| row[i].clone()).collect();
            cells.extend([k.to_string(), row[c].clone()]);
            rows.push(cells);
        }
    }
    Ok(ResultsTable { columns, rows })
}

/// Build the figure(s) of `spec` from raw per-repeat results: one point per distinct x,
/// the mean of the repeats with error bars, one series per `series` value, one panel per
/// `panel` value. With `x = "epoch"` (and no such column), the per-epoch metrics of `y`
/// are drawn against the epoch ([`by_epoch`]).
pub fn figures(table: &ResultsTable, spec: &PlotSpec) -> Result<Vec<Figure>> {
    if spec.x == EPOCH && !table.columns.iter().any(|c| c == EPOCH) {
        return figures(&by_epoch(table, &spec.y)?, spec);
    }
    let x = table.column(&spec.x)?;
    let y = table.column(&spec.y)?;
    let series_col = spec
        .series
        .as_deref()
        .map(|s| table.column(s))
        .transpose()?;
    let panel_col = spec.panel.as_deref().map(|p| table.column(p)).transpose()?;
    if table.rows.is_empty() {
        bail!("the results table is empty: nothing to plot");
    }
    let mut figs = Vec::new();
    for panel in distinct(table, panel_col) {
        let in_panel = |r: usize| panel_col.is_none_or(|c| table.rows[r][c] == panel);
        let mut title = spec
            .title
            .clone()
            .unwrap_or_else(|| format!("{} versus {}", spec.y, spec.x));
        if let Some(p) = &spec.panel {
            title = format!("{title} ({p} = {panel})");
        }
        let mut fig = Figure::new(
            title,
            spec.x_label.clone().unwrap_or_else(|| spec.x.clone()),
            spec.y_label.clone().unwrap_or_else(|| spec.y.clone()),
        );
        fig.log_x = spec.log_x;
        fig.log_y = spec.log_y;
        for (k, series) in distinct(table, series_col).into_iter().enumerate() {
            let rows: Vec<usize> = (0..table.rows.len())
                .filter(|&r| in_panel(r) && series_col.is_none_or(|c| table.rows[r][c] == series))
                .collect();
            if rows.is_empty() {
                continue;
            }
            let s = series_points(table, &rows, x, y, spec.error)?;
            let label = match &spec.series {
                Some(name) => format!(
                    "{} = {series}",
                    spec.series_label.as_deref().unwrap_or(name)
                ),
                None => String::new(),
            };
            let (points, errs): (Vec<_>, Vec<_>) = s.into_iter().unzip();
            fig.series
                .push(Series::new(label, points, Style::LinePoints, k).with_errors(errs));
        }
        figs.push(fig);
    }
    Ok(figs)
}

/// Mean and error of `y` at each distinct x among `rows`, sorted by x.
fn series_points(
    table: &ResultsTable,
    rows: &[usize],
    x: usize,
    y: usize,
    error: ErrorBars,
) -> Result<Vec<((f64, f64), f64)>> {
    let mut groups: Vec<(f64, Vec<f64>)> = Vec::new();
    for &r in rows {
        let xv = table.number(r, x)?;
        let yv = table.number(r, y)?;
        match groups.iter_mut().find(|(gx, _)| *gx == xv) {
            Some((_, ys)) => ys.push(yv),
            None => groups.push((xv, vec![yv])),
        }
    }
    groups.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut points = Vec::with_capacity(groups.len());
    for (xv, ys) in groups {
        let s = Summary::of(&ys);
        if s.mean.is_finite() {
            points.push(((xv, s.mean), s.error(error)));
        } else {
            eprintln!(
                "note: {} = {} at {} = {xv} is not drawn (not a finite number)",
                table.columns[y], s.mean, table.columns[x]
            );
        }
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> ResultsTable {
        let rows = [
            ["0", "0", "1", "a", "0.5"],
            ["0", "1", "1", "a", "0.7"],
            ["1", "0", "10", "a", "0.2"],
            ["2", "0", "1", "b", "0.9"],
        ];
        ResultsTable {
            columns: ["point", "repeat", "t", "dev", "acc"]
                .map(String::from)
                .to_vec(),
            rows: rows.iter().map(|r| r.map(String::from).to_vec()).collect(),
        }
    }

    #[test]
    fn repeats_are_summarised_per_group() {
        let s = summarize(&table(), &["t".into(), "dev".into()], &["acc".into()]).unwrap();
        assert_eq!(
            s.columns,
            vec!["t", "dev", "acc_mean", "acc_std", "acc_ci95", "n"]
        );
        assert_eq!(s.rows.len(), 3);
        let mean: f64 = s.rows[0][2].parse().unwrap();
        assert!((mean - 0.6).abs() < 1e-12);
        assert_eq!(s.rows[0][5], "2");
    }

    #[test]
    fn per_epoch_metrics_are_drawn_against_the_epoch() {
        let table = ResultsTable {
            columns: [
                "point",
                "repeat",
                "dev",
                "acc",
                "acc_epoch_1",
                "acc_epoch_2",
            ]
            .map(String::from)
            .to_vec(),
            rows: vec![
                ["0", "0", "a", "0.8", "0.5", "0.8"]
                    .map(String::from)
                    .to_vec(),
                ["0", "1", "a", "0.6", "0.3", "0.6"]
                    .map(String::from)
                    .to_vec(),
            ],
        };
        let long = by_epoch(&table, "acc").unwrap();
        assert_eq!(long.columns, vec!["point", "repeat", "dev", "epoch", "acc"]);
        assert_eq!(long.rows.len(), 4);
        assert_eq!(long.rows[1], vec!["0", "0", "a", "2", "0.8"]);
        let f = figures(&table, &PlotSpec::new(EPOCH, "acc")).unwrap();
        let points = &f[0].series[0].points;
        assert_eq!(points.len(), 2);
        assert!((points[0].0 - 1.0).abs() < 1e-12 && (points[0].1 - 0.4).abs() < 1e-12);
        assert!((points[1].0 - 2.0).abs() < 1e-12 && (points[1].1 - 0.7).abs() < 1e-12);
        let e = by_epoch(&table, "dev").unwrap_err().to_string();
        assert!(e.contains("dev_epoch_1"), "{e}");
    }

    #[test]
    fn figures_have_one_series_per_value() {
        let mut spec = PlotSpec::new("t", "acc");
        spec.series = Some("dev".into());
        let f = figures(&table(), &spec).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].series.len(), 2);
        assert_eq!(f[0].series[0].points.len(), 2);
        assert!((f[0].series[0].points[0].1 - 0.6).abs() < 1e-12);
        let e = figures(&table(), &PlotSpec::new("t", "accuracy"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no column 'accuracy'") && e.contains("acc"),
            "{e}"
        );
    }
}
