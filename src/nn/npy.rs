//! Reader and writer for NumPy `.npy` files of little-endian `float32` in C order.
//!
//! Format (NumPy Enhancement Proposal 1, `numpy.lib.format`): the magic string
//! `\x93NUMPY`, a major and a minor version byte, the header length (`u16` little-endian
//! for version 1.0, `u32` for 2.0 and 3.0), then an ASCII Python dict literal such as
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }` padded with spaces and
//! ended by `\n` so that the data starts at a multiple of 64 bytes, then the raw data.
//! xbar reads and writes only `'<f4'` in C order (what `np.save(f, a.astype(np.float32))`
//! produces on every common machine).

use anyhow::{Context, Result, bail, ensure};
use std::path::Path;

/// The six bytes every `.npy` file starts with.
const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// Data alignment NumPy pads the header to (bytes).
const HEADER_ALIGN: usize = 64;
/// The only element type accepted: little-endian IEEE 754 single precision.
const DESCR_F32_LE: &str = "<f4";

/// An n-dimensional `f32` array read from or written to a `.npy` file.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    /// Sizes of each dimension, outermost first (`[]` for a scalar).
    pub shape: Vec<usize>,
    /// Elements in C (row-major) order.
    pub data: Vec<f32>,
}

/// Read a `.npy` file.
pub fn read_npy(path: &Path) -> Result<NpyArray> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read .npy file {}", path.display()))?;
    parse_npy(&bytes).with_context(|| format!(".npy file {}", path.display()))
}

/// Write `data` with `shape` as a version 1.0 `.npy` file (atomically).
pub fn write_npy(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    let bytes = npy_bytes(shape, data)?;
    crate::atomic::write_atomic(path, &bytes)
        .with_context(|| format!("writing .npy file {}", path.display()))
}

/// The bytes of a version 1.0 `.npy` file holding `data` with `shape`, laid out exactly as
/// `numpy.save` lays them out.
pub fn npy_bytes(shape: &[usize], data: &[f32]) -> Result<Vec<u8>> {
    let count: usize = shape.iter().product();
    ensure!(
        count == data.len(),
        "shape {shape:?} holds {count} elements but {} values were given",
        data.len()
    );
    let dims = match shape {
        [d] => format!("({d},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header =
        format!("{{'descr': '{DESCR_F32_LE}', 'fortran_order': False, 'shape': {dims}, }}");
    let unpadded = MAGIC.len() + 2 + 2 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(HEADER_ALIGN) - unpadded));
    header.push('\n');
    let header_len =
        u16::try_from(header.len()).context("the .npy header is too long for version 1.0")?;
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + header.len() + 4 * data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    Ok(out)
}

/// Parse the bytes of a `.npy` file of `'<f4'` in C order.
pub fn parse_npy(bytes: &[u8]) -> Result<NpyArray> {
    ensure!(
        bytes.len() >= MAGIC.len() + 2 && bytes.starts_with(MAGIC),
        "not a .npy file: it does not start with the magic string \\x93NUMPY"
    );
    let (major, minor) = (bytes[6], bytes[7]);
    let (len_bytes, header_start) = match major {
        1 => (2, 10),
        2 | 3 => (4, 12),
        _ => bail!("unsupported .npy format version {major}.{minor} (xbar reads 1.0, 2.0 and 3.0)"),
    };
    ensure!(
        bytes.len() >= header_start,
        "truncated .npy file: the header length field is cut off"
    );
    let header_len = bytes[8..8 + len_bytes]
        .iter()
        .rev()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    let data_start = header_start + header_len;
    ensure!(
        bytes.len() >= data_start,
        "truncated .npy file: the header claims {header_len} bytes but only {} follow",
        bytes.len() - header_start
    );
    let header = std::str::from_utf8(&bytes[header_start..data_start])
        .context("the .npy header is not text")?;
    let (descr, fortran_order, shape) = parse_header(header)?;
    if descr != DESCR_F32_LE {
        bail!(
            "element type '{descr}' is not supported: xbar reads little-endian float32 ('<f4'); \
             convert with np.save(path, array.astype('<f4'))"
        );
    }
    if fortran_order {
        bail!(
            "the array is stored in Fortran (column-major) order: save it in C order with \
             np.ascontiguousarray"
        );
    }
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .with_context(|| format!("shape {shape:?} is too large"))?;
    let body = &bytes[data_start..];
    let need = count
        .checked_mul(4)
        .with_context(|| format!("shape {shape:?} is too large"))?;
    ensure!(
        body.len() == need,
        "{} data: shape {shape:?} of float32 needs {need} bytes after the header, the file has {}",
        if body.len() < need {
            "truncated"
        } else {
            "unexpected trailing"
        },
        body.len()
    );
    let data = body
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok(NpyArray { shape, data })
}

/// Extract `descr`, `fortran_order` and `shape` from the header dict literal.
fn parse_header(header: &str) -> Result<(String, bool, Vec<usize>)> {
    let body = header
        .trim()
        .strip_prefix('{')
        .and_then(|h| h.strip_suffix('}'))
        .with_context(|| format!("the .npy header {header:?} is not a Python dict literal"))?;
    let value_of = |key: &str| -> Result<&str> {
        let quoted = [format!("'{key}'"), format!("\"{key}\"")];
        let at = quoted
            .iter()
            .find_map(|q| body.find(q.as_str()).map(|i| i + q.len()))
            .with_context(|| format!("the .npy header {header:?} has no '{key}' entry"))?;
        let rest = body[at..].trim_start();
        rest.strip_prefix(':')
            .map(str::trim_start)
            .with_context(|| format!("the .npy header entry '{key}' has no ':'"))
    };
    let descr_rest = value_of("descr")?;
    let quote = descr_rest
        .chars()
        .next()
        .filter(|c| *c == '\'' || *c == '"');
    let descr = quote
        .and_then(|q| descr_rest[1..].split(q).next())
        .with_context(|| format!("the .npy header's 'descr' is not a string: {header:?}"))?
        .to_string();
    let fortran_rest = value_of("fortran_order")?;
    let fortran_order = if fortran_rest.starts_with("True") {
        true
    } else if fortran_rest.starts_with("False") {
        false
    } else {
        bail!("the .npy header's 'fortran_order' is neither True nor False: {header:?}");
    };
    let shape_rest = value_of("shape")?;
    let inner = shape_rest
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .with_context(|| format!("the .npy header's 'shape' is not a tuple: {header:?}"))?;
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse::<usize>())
        .collect::<std::result::Result<Vec<_>, _>>()
        .with_context(|| format!("the .npy header's 'shape' ({inner}) is not a tuple of sizes"))?;
    Ok((descr, fortran_order, shape))
}
