//! Atomic file writes: a temporary sibling file, flushed to disk, then renamed over the
//! target, so that a process stopped at any moment leaves either the old file or the new
//! one, never a partial one. Shared by the file formats of the library (NumPy weights) and
//! the result files of the output layer.

use anyhow::{Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Write `bytes` to `path` atomically: a temporary sibling file, flushed, then renamed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("output path {} has no file name", path.display()))?;
    let tmp: PathBuf = path.with_file_name(format!(".tmp-{}-{name}", std::process::id()));
    let written = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot move the result into place at {}", path.display()))
}
