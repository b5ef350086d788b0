//! Summary statistics of repeated measurements: mean, sample standard deviation and the
//! 95 % confidence interval of the mean (Student's t).

use serde::{Deserialize, Serialize};

/// Two-sided 97.5 % quantiles of Student's t distribution for 1..=30 degrees of freedom
/// (standard statistical tables, e.g. NIST/SEMATECH e-Handbook of Statistical Methods, 1.3.6.7.2).
const T_975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];
/// The normal 97.5 % quantile, used beyond 30 degrees of freedom.
const Z_975: f64 = 1.959_964;

/// Which spread the error bars of a plot show.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorBars {
    /// One sample standard deviation.
    #[default]
    Std,
    /// Half-width of the 95 % confidence interval of the mean.
    Ci95,
}

/// Summary of repeated measurements of one quantity.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// Number of measurements.
    pub n: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (n − 1 in the denominator); `None` for a single value or
    /// when a value is infinite (no spread can be stated).
    pub std: Option<f64>,
    /// Half-width of the 95 % confidence interval of the mean; `None` as for `std`.
    pub ci95: Option<f64>,
}

impl Summary {
    /// Summarise `values` (must not be empty).
    pub fn of(values: &[f64]) -> Summary {
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n as f64;
        if n < 2 || !mean.is_finite() {
            return Summary {
                n,
                mean,
                std: None,
                ci95: None,
            };
        }
        let std = sample_std(values, mean);
        let t = T_975.get(n - 2).copied().unwrap_or(Z_975);
        Summary {
            n,
            mean,
            std: Some(std),
            ci95: Some(t * std / (n as f64).sqrt()),
        }
    }

    /// The error-bar half-height of the requested kind (0, no bar, when it cannot be stated).
    pub fn error(&self, kind: ErrorBars) -> f64 {
        match kind {
            ErrorBars::Std => self.std,
            ErrorBars::Ci95 => self.ci95,
        }
        .unwrap_or(0.0)
    }
}

/// Sample standard deviation around `mean`; for values so large that their squared
/// deviations overflow, the deviations are scaled by the largest one first.
fn sample_std(values: &[f64], mean: f64) -> f64 {
    let dof = (values.len() - 1) as f64;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / dof;
    if var.is_finite() {
        return var.sqrt();
    }
    let scale = values.iter().fold(0f64, |m, v| m.max((v - mean).abs()));
    let scaled = values
        .iter()
        .map(|v| ((v - mean) / scale).powi(2))
        .sum::<f64>()
        / dof;
    scale * scaled.sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_matches_hand_computation() {
        // Values 1, 2, 3, 4: mean 2.5, sample variance 5/3, t(3 dof) = 3.182.
        let s = Summary::of(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(s.n, 4);
        assert!((s.mean - 2.5).abs() < 1e-12);
        let std = s.std.unwrap();
        assert!((std - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((s.ci95.unwrap() - 3.182 * std / 2.0).abs() < 1e-12);
        assert_eq!(Summary::of(&[7.0]).std, None, "one value has no spread");
        assert_eq!(Summary::of(&[1.0, f64::INFINITY]).ci95, None);
        // Deviations whose squares overflow: std of {1e200, 3e200} is sqrt(2) * 1e200.
        let big = Summary::of(&[1e200, 3e200]).std.unwrap();
        assert!((big / (2f64.sqrt() * 1e200) - 1.0).abs() < 1e-12, "{big:e}");
    }
}
