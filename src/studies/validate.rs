//! Checks of study configurations: each failure names the configuration field (the key
//! under the study's section, e.g. `bayesian_nn.samples`'s `samples`) and what it must be.

use anyhow::{Result, bail};

/// Fail with a message naming the configuration field unless `ok`.
pub(crate) fn require(ok: bool, field: &str, what: &str) -> Result<()> {
    if !ok {
        bail!("{field}: {what}");
    }
    Ok(())
}

/// Fail unless `v` is finite and strictly positive.
pub(crate) fn require_positive(field: &str, v: f64) -> Result<()> {
    require(
        v.is_finite() && v > 0.0,
        field,
        &format!("must be > 0 (got {v})"),
    )
}
