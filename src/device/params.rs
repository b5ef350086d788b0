//! Validation of device parameters.
//!
//! Every `...Params` struct has a `validate` method that returns the first offending field as
//! a [`ParamError`]; the preset loader prefixes it with the file name, so a user reads e.g.
//! `pcm_gst.toml: params.g_max_s: must be > 0 (got -1)`.

use std::fmt;

/// An invalid parameter value: which field, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamError {
    /// Parameter name as written in the preset file.
    pub field: String,
    /// What is wrong and what is expected.
    pub message: String,
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "params.{}: {}", self.field, self.message)
    }
}

impl std::error::Error for ParamError {}

fn error(field: &str, message: String) -> ParamError {
    ParamError {
        field: field.to_string(),
        message,
    }
}

/// The value must be a finite number (not NaN, not infinite).
pub fn finite(field: &str, v: f64) -> Result<(), ParamError> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(error(field, format!("must be a finite number (got {v})")))
    }
}

/// The value must be finite and strictly positive.
pub fn positive(field: &str, v: f64) -> Result<(), ParamError> {
    finite(field, v)?;
    if v > 0.0 {
        Ok(())
    } else {
        Err(error(field, format!("must be > 0 (got {v})")))
    }
}

/// The value must be finite and not negative.
pub fn non_negative(field: &str, v: f64) -> Result<(), ParamError> {
    finite(field, v)?;
    if v >= 0.0 {
        Ok(())
    } else {
        Err(error(field, format!("must be >= 0 (got {v})")))
    }
}

/// The value is a probability: finite and within [0, 1].
pub fn probability(field: &str, v: f64) -> Result<(), ParamError> {
    finite(field, v)?;
    if (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(error(
            field,
            format!("is a probability and must be within [0, 1] (got {v})"),
        ))
    }
}

/// Every `(field, value)` must be finite and strictly positive.
pub fn all_positive(fields: &[(&str, f64)]) -> Result<(), ParamError> {
    fields.iter().try_for_each(|&(field, v)| positive(field, v))
}

/// Every `(field, value)` must be finite and not negative.
pub fn all_non_negative(fields: &[(&str, f64)]) -> Result<(), ParamError> {
    fields
        .iter()
        .try_for_each(|&(field, v)| non_negative(field, v))
}

/// The stuck-at-LRS and stuck-at-HRS fractions of a preset: each a probability, and
/// together at most 1.
pub fn stuck_fractions(p_stuck_lrs: f64, p_stuck_hrs: f64) -> Result<(), ParamError> {
    probability("p_stuck_lrs", p_stuck_lrs)?;
    probability("p_stuck_hrs", p_stuck_hrs)?;
    probability("p_stuck_lrs + p_stuck_hrs", p_stuck_lrs + p_stuck_hrs)
}

/// `upper` must be strictly greater than `lower` (e.g. a conductance window).
pub fn ordered(
    field_lower: &str,
    lower: f64,
    field_upper: &str,
    upper: f64,
) -> Result<(), ParamError> {
    if upper > lower {
        Ok(())
    } else {
        Err(error(
            field_upper,
            format!(
                "must be > {field_lower} ({lower}) (got {upper}): the window is inverted or empty"
            ),
        ))
    }
}

/// An integer count that must be at least 1.
pub fn at_least_one(field: &str, v: u32) -> Result<(), ParamError> {
    if v >= 1 {
        Ok(())
    } else {
        Err(error(field, format!("must be >= 1 (got {v})")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_field_and_value() {
        let e = positive("g_max_s", -1.0).unwrap_err();
        assert_eq!(e.to_string(), "params.g_max_s: must be > 0 (got -1)");
        assert!(
            finite("x", f64::NAN)
                .unwrap_err()
                .to_string()
                .contains("NaN")
        );
        assert!(probability("p", 1.5).is_err());
        assert!(
            ordered("g_min_s", 2.0, "g_max_s", 1.0)
                .unwrap_err()
                .to_string()
                .contains("inverted")
        );
    }
}
