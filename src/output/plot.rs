//! Figures shared by every command: line, point, error-bar and histogram charts
//! rendered to PNG and SVG with plotters.
//!
//! Text is drawn with the DejaVu Sans font compiled into the binary (plotters' `ab_glyph`
//! backend), so no system font package is needed. A [`Figure`] is a plain description
//! (series, labels, log axes); [`save`] renders one figure and [`save_panels`] a grid of
//! them. Files are written atomically: to a temporary name in the same directory, then
//! renamed.

use anyhow::{Context, Result, bail};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::full_palette;
use std::path::{Path, PathBuf};
use std::sync::Once;

/// The embedded font (DejaVu Sans, Bitstream Vera derived licence: free to redistribute).
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
/// Font family name used by every chart.
const FAMILY: &str = "sans-serif";
/// Pixel size of one panel.
const PANEL_PX: (u32, u32) = (900, 600);

/// How a series is drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Style {
    /// Straight segments between points.
    Line,
    /// Markers only.
    Points,
    /// Segments and markers.
    LinePoints,
    /// Thin segments, no legend entry colour emphasis: many overlapping traces (e.g. one per device).
    Trace,
    /// Vertical bars of a histogram: `points` hold (bin centre, count); `bin_width` is the bar width in x units (linear x only).
    Bars {
        /// Width of one bar, x units.
        bin_width: f64,
    },
}

/// One data series.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend label (empty: no legend entry).
    pub label: String,
    /// (x, y) points in data units.
    pub points: Vec<(f64, f64)>,
    /// Optional symmetric error bar half-heights, one per point.
    pub y_err: Option<Vec<f64>>,
    /// Drawing style.
    pub style: Style,
    /// Palette index (series with equal index share a colour).
    pub color: usize,
}

impl Series {
    /// A series with the given label, points and style, coloured by `color`.
    pub fn new(
        label: impl Into<String>,
        points: Vec<(f64, f64)>,
        style: Style,
        color: usize,
    ) -> Self {
        Self {
            label: label.into(),
            points,
            y_err: None,
            style,
            color,
        }
    }

    /// Attach error bars (half-heights, same length as the points).
    pub fn with_errors(mut self, y_err: Vec<f64>) -> Self {
        self.y_err = Some(y_err);
        self
    }
}

/// A chart: axes, labels and series.
#[derive(Clone, Debug, Default)]
pub struct Figure {
    /// Title drawn above the chart.
    pub title: String,
    /// x-axis label, with unit.
    pub x_label: String,
    /// y-axis label, with unit.
    pub y_label: String,
    /// Logarithmic x axis (all x must be > 0).
    pub log_x: bool,
    /// Logarithmic y axis (all y must be > 0).
    pub log_y: bool,
    /// Fixed y range in data units; `None` fits the data.
    pub y_range: Option<(f64, f64)>,
    /// The data.
    pub series: Vec<Series>,
}

impl Figure {
    /// An empty figure with title and axis labels.
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
    ) -> Self {
        Self {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            ..Self::default()
        }
    }
}

/// A colour from a palette chosen to stay distinguishable in print.
pub fn palette(index: usize) -> RGBColor {
    const COLORS: [RGBColor; 10] = [
        full_palette::BLUE_700,
        full_palette::RED_700,
        full_palette::GREEN_700,
        full_palette::ORANGE_700,
        full_palette::PURPLE_700,
        full_palette::CYAN_700,
        full_palette::BROWN_700,
        full_palette::PINK_700,
        full_palette::GREY_700,
        full_palette::LIME_900,
    ];
    COLORS[index % COLORS.len()]
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is a compile-time constant that is known to parse; failure here is a build defect.
        plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
            .unwrap_or_else(|_| panic!("embedded font assets/DejaVuSans.ttf does not parse"));
    });
}

/// Render `fig` to `<stem>.png` and `<stem>.svg`.
pub fn save(fig: &Figure, stem: &Path) -> Result<()> {
    save_panels(std::slice::from_ref(fig), 1, stem)
}

/// Render several figures as a grid of panels with `columns` columns, to `<stem>.png` and `<stem>.svg`.
pub fn save_panels(figs: &[Figure], columns: usize, stem: &Path) -> Result<()> {
    if figs.is_empty() {
        bail!("no figure to draw for {}", stem.display());
    }
    for fig in figs {
        validate(fig)?;
    }
    register_font();
    let columns = columns.clamp(1, figs.len());
    let rows = figs.len().div_ceil(columns);
    let size = (PANEL_PX.0 * columns as u32, PANEL_PX.1 * rows as u32);
    for ext in ["png", "svg"] {
        let final_path = figure_path(stem, ext);
        let tmp = temp_sibling(&final_path)?;
        let drawn = if ext == "png" {
            let root = BitMapBackend::new(&tmp, size).into_drawing_area();
            draw_grid(&root, figs, rows, columns).and_then(|_| root.present().map_err(plot_err))
        } else {
            let root = SVGBackend::new(&tmp, size).into_drawing_area();
            draw_grid(&root, figs, rows, columns).and_then(|_| root.present().map_err(plot_err))
        };
        if let Err(e) = drawn {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.context(format!("drawing {}", final_path.display())));
        }
        std::fs::rename(&tmp, &final_path)
            .with_context(|| format!("moving the figure into place at {}", final_path.display()))?;
    }
    Ok(())
}

/// The file `<stem>.<ext>`. The stem is kept whole (dots in it are part of the name, as in
/// `accuracy-vs-hardware.t_inference_s`), except that a `.png` or `.svg` ending is
/// replaced rather than doubled.
pub fn figure_path(stem: &Path, ext: &str) -> PathBuf {
    let stem = match stem.extension().and_then(|e| e.to_str()) {
        Some("png" | "svg") => stem.with_extension(""),
        _ => stem.to_path_buf(),
    };
    let mut name = stem.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{ext}"));
    stem.with_file_name(name)
}

/// A temporary path next to `path` that keeps its extension (plotters picks the format from it).
fn temp_sibling(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("figure path {} has no file name", path.display()))?;
    Ok(path.with_file_name(format!(".tmp-{}-{name}", std::process::id())))
}

fn plot_err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow::anyhow!("plot rendering failed: {e}")
}

fn validate(fig: &Figure) -> Result<()> {
    for s in &fig.series {
        for &(x, y) in &s.points {
            if !x.is_finite() || !y.is_finite() {
                bail!(
                    "series '{}' of figure '{}' has a non-finite point ({x}, {y})",
                    s.label,
                    fig.title
                );
            }
            if fig.log_x && x <= 0.0 {
                bail!(
                    "series '{}' of figure '{}' has x = {x} <= 0 on a log axis",
                    s.label,
                    fig.title
                );
            }
            if fig.log_y && y <= 0.0 {
                bail!(
                    "series '{}' of figure '{}' has y = {y} <= 0 on a log axis",
                    s.label,
                    fig.title
                );
            }
        }
        if let Some(err) = &s.y_err
            && err.len() != s.points.len()
        {
            bail!(
                "series '{}' has {} error bars for {} points",
                s.label,
                err.len(),
                s.points.len()
            );
        }
    }
    Ok(())
}

fn draw_grid<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    figs: &[Figure],
    rows: usize,
    columns: usize,
) -> Result<()> {
    root.fill(&WHITE).map_err(plot_err)?;
    let panels = root.split_evenly((rows, columns));
    for (fig, area) in figs.iter().zip(panels.iter()) {
        draw_figure(area, fig)?;
    }
    Ok(())
}

/// Axis transform: log axes are drawn as log10 of the data on a linear axis,
/// with tick labels printed back in data units.
fn to_axis(v: f64, log: bool) -> f64 {
    if log { v.log10() } else { v }
}

/// How many tick labels to ask for: on a log axis spanning a decade or more, one per
/// decade (so the ticks fall on powers of ten); otherwise plotters' default density.
fn label_count(lo: f64, hi: f64, log: bool) -> usize {
    const DEFAULT_LABELS: usize = 10;
    let decades = hi - lo;
    if log && decades >= 1.0 {
        (decades.floor() as usize + 1).clamp(2, DEFAULT_LABELS)
    } else {
        DEFAULT_LABELS
    }
}

fn tick_label(v: f64, log: bool) -> String {
    if log {
        format_number(10f64.powf(v))
    } else {
        format_number(v)
    }
}

/// Compact human-readable number: plain for moderate magnitudes, scientific otherwise.
pub fn format_number(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".to_string()
    } else if (1e-2..1e4).contains(&a) {
        let s = format!("{v:.3}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    } else {
        let s = format!("{v:.1e}");
        s.replace(".0e", "e")
    }
}

fn data_range(fig: &Figure) -> ((f64, f64), (f64, f64)) {
    let mut x = (f64::INFINITY, f64::NEG_INFINITY);
    let mut y = (f64::INFINITY, f64::NEG_INFINITY);
    for s in &fig.series {
        for (i, &(px, py)) in s.points.iter().enumerate() {
            let e = s.y_err.as_ref().map_or(0.0, |e| e[i].abs());
            let (lo, hi) = if fig.log_y {
                (py, py + e)
            } else {
                (py - e, py + e)
            };
            let half_bin = match s.style {
                Style::Bars { bin_width } => bin_width / 2.0,
                _ => 0.0,
            };
            x = (x.0.min(px - half_bin), x.1.max(px + half_bin));
            y = (y.0.min(lo), y.1.max(hi));
            if matches!(s.style, Style::Bars { .. }) {
                y.0 = y.0.min(0.0);
            }
        }
    }
    let x = (to_axis(x.0, fig.log_x), to_axis(x.1, fig.log_x));
    let y = match fig.y_range {
        Some(r) => (to_axis(r.0, fig.log_y), to_axis(r.1, fig.log_y)),
        None => (to_axis(y.0, fig.log_y), to_axis(y.1, fig.log_y)),
    };
    (pad(x, false), pad(y, fig.y_range.is_some()))
}

/// Widen a range by 5 % on each side (not when it was fixed by the user); never empty.
fn pad(r: (f64, f64), fixed: bool) -> (f64, f64) {
    if !r.0.is_finite() || !r.1.is_finite() {
        return (0.0, 1.0);
    }
    let span = r.1 - r.0;
    if span <= 0.0 {
        let d = if r.0 == 0.0 { 1.0 } else { r.0.abs() * 0.1 };
        return (r.0 - d, r.1 + d);
    }
    if fixed {
        r
    } else {
        (r.0 - 0.05 * span, r.1 + 0.05 * span)
    }
}

fn draw_figure<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, fig: &Figure) -> Result<()> {
    let ((x0, x1), (y0, y1)) = data_range(fig);
    let mut chart = ChartBuilder::on(area)
        .caption(&fig.title, (FAMILY, 24))
        .margin(15)
        .x_label_area_size(55)
        .y_label_area_size(85)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(plot_err)?;
    let (log_x, log_y) = (fig.log_x, fig.log_y);
    chart
        .configure_mesh()
        .x_desc(&fig.x_label)
        .y_desc(&fig.y_label)
        .label_style((FAMILY, 16))
        .axis_desc_style((FAMILY, 18))
        .x_labels(label_count(x0, x1, log_x))
        .y_labels(label_count(y0, y1, log_y))
        .x_label_formatter(&|v| tick_label(*v, log_x))
        .y_label_formatter(&|v| tick_label(*v, log_y))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(plot_err)?;
    for s in &fig.series {
        draw_series(&mut chart, s, log_x, log_y)?;
    }
    if fig.series.iter().any(|s| !s.label.is_empty()) {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FAMILY, 15))
            .position(legend_corner(fig, (x0, x1), (y0, y1)))
            .draw()
            .map_err(plot_err)?;
    }
    Ok(())
}

/// The chart corner whose legend-sized box (a third of the width, a quarter of the height
/// per five series) covers the fewest data points, so the legend hides as little as possible.
fn legend_corner(fig: &Figure, x: (f64, f64), y: (f64, f64)) -> SeriesLabelPosition {
    let labelled = fig.series.iter().filter(|s| !s.label.is_empty()).count();
    let (w, h) = (1.0 / 3.0, (0.06 * labelled as f64 + 0.04).min(0.6));
    // Every point and both ends of its error bar, in axis fractions.
    let mut points: Vec<(f64, f64)> = Vec::new();
    for s in &fig.series {
        for (i, &(px, py)) in s.points.iter().enumerate() {
            let e = s.y_err.as_ref().map_or(0.0, |e| e[i].abs());
            for yy in [py - e, py, py + e] {
                if fig.log_y && yy <= 0.0 {
                    continue;
                }
                let u = (to_axis(px, fig.log_x) - x.0) / (x.1 - x.0);
                points.push((u, (to_axis(yy, fig.log_y) - y.0) / (y.1 - y.0)));
            }
        }
    }
    let covered = |u0: f64, v0: f64| {
        points
            .iter()
            .filter(|&&(u, v)| u >= u0 && u <= u0 + w && v >= v0 && v <= v0 + h)
            .count()
    };
    let corners = [
        (SeriesLabelPosition::UpperRight, covered(1.0 - w, 1.0 - h)),
        (SeriesLabelPosition::LowerLeft, covered(0.0, 0.0)),
        (SeriesLabelPosition::UpperLeft, covered(0.0, 1.0 - h)),
        (SeriesLabelPosition::LowerRight, covered(1.0 - w, 0.0)),
    ];
    corners
        .into_iter()
        .min_by_key(|c| c.1)
        .map_or(SeriesLabelPosition::UpperRight, |c| c.0)
}

type Chart<'a, DB> = ChartContext<
    'a,
    DB,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

fn draw_series<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    s: &Series,
    log_x: bool,
    log_y: bool,
) -> Result<()> {
    let color = palette(s.color);
    let pts: Vec<(f64, f64)> = s
        .points
        .iter()
        .map(|&(x, y)| (to_axis(x, log_x), to_axis(y, log_y)))
        .collect();
    let legend = |anno: &mut plotters::chart::SeriesAnno<'_, DB>, label: &str| {
        if !label.is_empty() {
            anno.label(label.to_string()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
        }
    };
    match s.style {
        Style::Line | Style::LinePoints | Style::Trace => {
            let width = if s.style == Style::Trace { 1 } else { 2 };
            let style = if s.style == Style::Trace {
                color.mix(0.5).stroke_width(width)
            } else {
                color.stroke_width(width)
            };
            let anno = chart
                .draw_series(LineSeries::new(pts.clone(), style))
                .map_err(plot_err)?;
            legend(anno, &s.label);
            if s.style == Style::LinePoints {
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))
                    .map_err(plot_err)?;
            }
        }
        Style::Points => {
            let anno = chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(plot_err)?;
            legend(anno, &s.label);
        }
        Style::Bars { bin_width } => {
            let half = bin_width / 2.0;
            let base = if log_y {
                pts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min)
            } else {
                0.0
            };
            let anno = chart
                .draw_series(pts.iter().map(|&(x, y)| {
                    Rectangle::new([(x - half, base), (x + half, y)], color.mix(0.45).filled())
                }))
                .map_err(plot_err)?;
            legend(anno, &s.label);
        }
    }
    if let Some(err) = &s.y_err {
        chart
            .draw_series(s.points.iter().zip(err).map(|(&(x, y), &e)| {
                let lo = if log_y { (y - e).max(y * 1e-3) } else { y - e };
                ErrorBar::new_vertical(
                    to_axis(x, log_x),
                    to_axis(lo, log_y),
                    to_axis(y, log_y),
                    to_axis(y + e, log_y),
                    color.stroke_width(2),
                    8,
                )
            }))
            .map_err(plot_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_compactly() {
        assert_eq!(format_number(0.5), "0.5");
        assert_eq!(format_number(100.0), "100");
        assert_eq!(format_number(1e-6), "1e-6");
        assert_eq!(format_number(2.5e7), "2.5e7");
    }

    #[test]
    fn figure_paths_keep_dots_in_the_stem() {
        let p = |stem: &str, ext| figure_path(Path::new(stem), ext);
        assert_eq!(
            p("d/plot-accuracy-vs-hardware.t_inference_s", "png"),
            Path::new("d/plot-accuracy-vs-hardware.t_inference_s.png")
        );
        assert_eq!(p("fig.v2", "svg"), Path::new("fig.v2.svg"));
        assert_eq!(p("fig.png", "svg"), Path::new("fig.svg"));
    }

    #[test]
    fn a_figure_renders_to_png_and_svg() {
        let dir = tempfile::tempdir().unwrap();
        let mut fig = Figure::new("test", "x (V)", "y (A)");
        fig.log_x = true;
        fig.series.push(
            Series::new(
                "a",
                vec![(1.0, 1.0), (10.0, 2.0), (100.0, 1.5)],
                Style::LinePoints,
                0,
            )
            .with_errors(vec![0.1, 0.2, 0.1]),
        );
        save(&fig, &dir.path().join("fig")).unwrap();
        let png = std::fs::metadata(dir.path().join("fig.png")).unwrap();
        let svg = std::fs::read_to_string(dir.path().join("fig.svg")).unwrap();
        assert!(png.len() > 1000);
        assert!(svg.contains("x (V)"));
    }

    #[test]
    fn non_positive_values_on_a_log_axis_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut fig = Figure::new("t", "x", "y");
        fig.log_y = true;
        fig.series
            .push(Series::new("a", vec![(1.0, 0.0)], Style::Line, 0));
        let err = save(&fig, &dir.path().join("f")).unwrap_err().to_string();
        assert!(err.contains("log axis"), "{err}");
        assert!(!dir.path().join("f.png").exists());
    }
}
