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
        let mut reader =
            csv::Reader::from_reader(crate::output::results::strip_bom(&text).as_bytes());
        let columns = reader
            .headers()
            .with_context(|| format!("{}: cannot read the header line", path.display()))?
            .iter()
            .map(str::to_string)
            .collect();
        let mut rows = Vec::new();
        for (i, record) in reader.records().enumerate() {
            let record = record
                .with_context(|| format!("{}: line {} is malformed", path.display(), i + 2))?;
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

/// Build the figure(s) of `spec` from raw per-repeat results: one point per distinct x,
/// the mean of the repeats with error bars, one series per `series` value, one panel per
/// `panel` value.
pub fn figures(table: &ResultsTable, spec: &PlotSpec) -> Result<Vec<Figure>> {
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
