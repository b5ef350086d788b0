//! Memory estimates, checked before large allocations so that an experiment too big for
//! the machine is refused with the estimate instead of being killed by the allocator.
//!
//! The available memory is Linux's `MemAvailable` (`/proc/meminfo`): what can be
//! allocated without swapping. Where it cannot be read, no limit is applied.

use anyhow::{Result, bail};

/// Bytes of memory available for new allocations, if the system says.
pub fn available_bytes() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024.0)
}

/// Refuse `what` when its estimated memory `bytes` exceeds the available memory; `fix`
/// says what to reduce.
pub fn ensure_fits(bytes: f64, what: &str, fix: &str) -> Result<()> {
    let Some(available) = available_bytes() else {
        return Ok(());
    };
    if bytes.is_nan() || bytes > available {
        bail!(
            "{what} needs an estimated {} of memory but this machine has {} available: {fix}",
            format_bytes(bytes),
            format_bytes(available)
        );
    }
    Ok(())
}

/// A byte count in binary units (`1.5 GiB`).
pub fn format_bytes(bytes: f64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} {}", UNITS[0])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_print_in_binary_units() {
        assert_eq!(format_bytes(512.0), "512 B");
        assert_eq!(format_bytes(1.5 * 1024.0 * 1024.0 * 1024.0), "1.5 GiB");
    }

    #[test]
    fn an_impossible_estimate_is_refused_with_the_numbers() {
        if available_bytes().is_none() {
            return;
        }
        let err = ensure_fits(1e30, "a test", "use less")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("a test") && err.contains("use less") && err.contains("EiB"),
            "{err}"
        );
        ensure_fits(1024.0, "a kilobyte", "").unwrap();
        assert!(ensure_fits(f64::NAN, "NaN bytes", "").is_err());
    }
}
