//! Reader and writer for NumPy `.npy` files in C order: one implementation shared by the
//! weight directories of `nn` (`float32`) and the NumPy data sets of `data` (images in
//! `uint8` or `float32`, labels in `uint8`, `int32` or `int64`).
//!
//! Format (NumPy Enhancement Proposal 1, `numpy.lib.format`): the magic string
//! `\x93NUMPY`, a major and a minor version byte, the header length (`u16` little-endian
//! for version 1.0, `u32` for 2.0 and 3.0), then an ASCII Python dict literal such as
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }` padded with spaces and
//! ended by `\n` so that the data starts at a multiple of 64 bytes, then the raw data.
//! xbar reads the element types of [`Dtype`] (little-endian, what `np.save` produces on
//! every common machine) in C order, and writes version 1.0 files exactly as `np.save`
//! lays them out.
//!
//! [`read_npy_data`] reads the header first and checks the data length against the file's
//! length and the machine's memory before allocating anything, so a corrupt header that
//! claims 10^12 elements is refused without an allocation.

use anyhow::{Context, Result, bail, ensure};
use std::io::Read;
use std::path::Path;

/// The six bytes every `.npy` file starts with.
const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// Data alignment NumPy pads the header to (bytes).
const HEADER_ALIGN: usize = 64;
/// Bytes before the header of a version 1.0 file: magic, two version bytes, `u16` length.
const V1_PREFIX: usize = MAGIC.len() + 2 + 2;
/// Bytes before the header of a version 2.0 or 3.0 file: the length is a `u32`.
const V2_PREFIX: usize = MAGIC.len() + 2 + 4;

/// The element types xbar reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    /// Little-endian IEEE 754 single precision, `'<f4'`.
    F32,
    /// Unsigned byte, `'|u1'`.
    U8,
    /// Little-endian 32-bit signed integer, `'<i4'`.
    I32,
    /// Little-endian 64-bit signed integer, `'<i8'`.
    I64,
}

impl Dtype {
    /// The type a header's `descr` names, if xbar reads it (`'<u1'` is accepted for
    /// `'|u1'`: byte order means nothing for single bytes).
    fn from_descr(descr: &str) -> Option<Dtype> {
        match descr {
            "<f4" => Some(Dtype::F32),
            "|u1" | "<u1" => Some(Dtype::U8),
            "<i4" => Some(Dtype::I32),
            "<i8" => Some(Dtype::I64),
            _ => None,
        }
    }

    /// The `descr` NumPy writes for this type.
    pub fn descr(self) -> &'static str {
        match self {
            Dtype::F32 => "<f4",
            Dtype::U8 => "|u1",
            Dtype::I32 => "<i4",
            Dtype::I64 => "<i8",
        }
    }

    /// The NumPy name of this type (`np.float32`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "float32",
            Dtype::U8 => "uint8",
            Dtype::I32 => "int32",
            Dtype::I64 => "int64",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::U8 => 1,
            Dtype::F32 | Dtype::I32 => 4,
            Dtype::I64 => 8,
        }
    }
}

/// The elements of an array, in C (row-major) order, by type.
#[derive(Clone, Debug, PartialEq)]
pub enum Elements {
    /// `float32`.
    F32(Vec<f32>),
    /// `uint8`.
    U8(Vec<u8>),
    /// `int32`.
    I32(Vec<i32>),
    /// `int64`.
    I64(Vec<i64>),
}

impl Elements {
    /// The element type.
    pub fn dtype(&self) -> Dtype {
        match self {
            Elements::F32(_) => Dtype::F32,
            Elements::U8(_) => Dtype::U8,
            Elements::I32(_) => Dtype::I32,
            Elements::I64(_) => Dtype::I64,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Elements::F32(v) => v.len(),
            Elements::U8(v) => v.len(),
            Elements::I32(v) => v.len(),
            Elements::I64(v) => v.len(),
        }
    }

    /// Whether there is no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The little-endian bytes of the elements.
    fn to_le_bytes(&self) -> Vec<u8> {
        match self {
            Elements::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Elements::U8(v) => v.clone(),
            Elements::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Elements::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }

    /// Decode the little-endian `body` of `dtype` elements (its length a multiple of the
    /// element size).
    fn from_le_bytes(dtype: Dtype, body: Vec<u8>) -> Elements {
        fn words<const N: usize, T>(body: &[u8], f: fn([u8; N]) -> T) -> Vec<T> {
            body.chunks_exact(N)
                .map(|c| f(c.try_into().expect("chunks of N bytes")))
                .collect()
        }
        match dtype {
            Dtype::U8 => Elements::U8(body),
            Dtype::F32 => Elements::F32(words(&body, f32::from_le_bytes)),
            Dtype::I32 => Elements::I32(words(&body, i32::from_le_bytes)),
            Dtype::I64 => Elements::I64(words(&body, i64::from_le_bytes)),
        }
    }
}

/// An n-dimensional array of any type xbar reads.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyData {
    /// Sizes of each dimension, outermost first (`[]` for a scalar).
    pub shape: Vec<usize>,
    /// The elements.
    pub elements: Elements,
}

impl NpyData {
    /// The `float32` array, or an error naming the type found and the conversion.
    pub fn into_f32(self) -> Result<NpyArray> {
        match self.elements {
            Elements::F32(data) => Ok(NpyArray {
                shape: self.shape,
                data,
            }),
            other => bail!(
                "element type '{}' ({}) is not accepted here: xbar reads little-endian float32 \
                 ('<f4'); convert with np.save(path, array.astype('<f4'))",
                other.dtype().descr(),
                other.dtype().name()
            ),
        }
    }

    /// The bytes of a version 1.0 `.npy` file holding this array, laid out exactly as
    /// `numpy.save` lays them out.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let count = element_count(&self.shape)?;
        ensure!(
            count == self.elements.len(),
            "shape {:?} holds {count} elements but {} values were given",
            self.shape,
            self.elements.len()
        );
        let mut header = format!(
            "{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}",
            self.elements.dtype().descr(),
            shape_tuple(&self.shape)
        );
        let unpadded = V1_PREFIX + header.len() + 1;
        header.push_str(&" ".repeat(unpadded.next_multiple_of(HEADER_ALIGN) - unpadded));
        header.push('\n');
        let header_len =
            u16::try_from(header.len()).context("the .npy header is too long for version 1.0")?;
        let mut out = Vec::with_capacity(V1_PREFIX + header.len() + count);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&header_len.to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&self.elements.to_le_bytes());
        Ok(out)
    }
}

/// An n-dimensional `f32` array read from or written to a `.npy` file.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    /// Sizes of each dimension, outermost first (`[]` for a scalar).
    pub shape: Vec<usize>,
    /// Elements in C (row-major) order.
    pub data: Vec<f32>,
}

/// Read a `.npy` file of `float32`.
pub fn read_npy(path: &Path) -> Result<NpyArray> {
    read_npy_data(path)?
        .into_f32()
        .with_context(|| format!(".npy file {}", path.display()))
}

/// Read a `.npy` file of any type of [`Dtype`]; the header is checked against the file's
/// length and the available memory before the data is read.
pub fn read_npy_data(path: &Path) -> Result<NpyData> {
    let open = || format!("cannot read .npy file {}", path.display());
    let mut file = std::fs::File::open(path).with_context(open)?;
    let file_len = file.metadata().with_context(open)?.len();
    read_from(&mut file, file_len).with_context(|| format!(".npy file {}", path.display()))
}

/// Write `data` with `shape` as a version 1.0 `.npy` file of `float32` (atomically).
pub fn write_npy(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    let bytes = npy_bytes(shape, data)?;
    crate::atomic::write_atomic(path, &bytes)
        .with_context(|| format!("writing .npy file {}", path.display()))
}

/// The bytes of a version 1.0 `.npy` file holding the `float32` `data` with `shape`.
pub fn npy_bytes(shape: &[usize], data: &[f32]) -> Result<Vec<u8>> {
    NpyData {
        shape: shape.to_vec(),
        elements: Elements::F32(data.to_vec()),
    }
    .to_bytes()
}

/// Parse the bytes of a `.npy` file of `float32`.
pub fn parse_npy(bytes: &[u8]) -> Result<NpyArray> {
    parse_npy_data(bytes)?.into_f32()
}

/// Parse the bytes of a `.npy` file of any type of [`Dtype`].
pub fn parse_npy_data(bytes: &[u8]) -> Result<NpyData> {
    read_from(&mut &bytes[..], bytes.len() as u64)
}

/// What a `.npy` header says.
struct Header {
    dtype: Dtype,
    shape: Vec<usize>,
    /// Bytes of the data (elements times element size).
    data_len: usize,
}

/// Read a `.npy` stream of `total_len` bytes: header, length and memory checks, data.
fn read_from(reader: &mut impl Read, total_len: u64) -> Result<NpyData> {
    let (header, data_start) = read_header(reader)?;
    let body_len = usize::try_from(total_len)
        .context("the file is too large for this machine")?
        .saturating_sub(data_start);
    ensure!(
        body_len == header.data_len,
        "{} data: shape {:?} of {} needs {} bytes after the header, the file has {body_len}",
        if body_len < header.data_len {
            "truncated"
        } else {
            "unexpected trailing"
        },
        header.shape,
        header.dtype.name(),
        header.data_len
    );
    crate::memory::ensure_fits(
        header.data_len as f64,
        &format!("a .npy array of shape {:?}", header.shape),
        "use a smaller array",
    )?;
    let mut body = Vec::with_capacity(header.data_len);
    reader
        .take(header.data_len as u64)
        .read_to_end(&mut body)
        .context("cannot read the data")?;
    ensure!(
        body.len() == header.data_len,
        "truncated data: {} bytes expected, {} read",
        header.data_len,
        body.len()
    );
    Ok(NpyData {
        shape: header.shape,
        elements: Elements::from_le_bytes(header.dtype, body),
    })
}

/// Read exactly `n` bytes, or fail with "truncated .npy file" and `what` was cut off.
fn read_exact_or(reader: &mut impl Read, n: usize, what: &str) -> Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(n);
    reader.take(n as u64).read_to_end(&mut buf)?;
    ensure!(
        buf.len() == n,
        "truncated .npy file: {what} needs {n} bytes but only {} follow",
        buf.len()
    );
    Ok(buf)
}

/// Read and check the magic string, version and header; returns the header and the offset
/// of the data.
fn read_header(reader: &mut impl Read) -> Result<(Header, usize)> {
    let start = read_exact_or(reader, MAGIC.len() + 2, "the magic string").map_err(|_| {
        anyhow::anyhow!("not a .npy file: it does not start with the magic string \\x93NUMPY")
    })?;
    ensure!(
        start.starts_with(MAGIC),
        "not a .npy file: it does not start with the magic string \\x93NUMPY"
    );
    let (major, minor) = (start[6], start[7]);
    let header_start = match major {
        1 => V1_PREFIX,
        2 | 3 => V2_PREFIX,
        _ => bail!("unsupported .npy format version {major}.{minor} (xbar reads 1.0, 2.0 and 3.0)"),
    };
    let len_bytes = read_exact_or(reader, header_start - start.len(), "the header length")?;
    let header_len = len_bytes
        .iter()
        .rev()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    let text = read_exact_or(reader, header_len, "the header")?;
    let text = std::str::from_utf8(&text).context("the .npy header is not text")?;
    Ok((parse_header(text)?, header_start + header_len))
}

/// Number of elements of `shape`, or an error if it overflows.
fn element_count(shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .with_context(|| format!("shape {shape:?} is too large"))
}

/// A shape as NumPy writes it in a header: `(2, 3)`, `(2,)`, `()`.
fn shape_tuple(shape: &[usize]) -> String {
    match shape {
        [d] => format!("({d},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Check the header dict literal: a supported `descr`, C order, a shape whose data size
/// fits in memory addresses.
fn parse_header(header: &str) -> Result<Header> {
    let (descr, fortran_order, shape) = header_fields(header)?;
    let Some(dtype) = Dtype::from_descr(&descr) else {
        bail!(
            "element type '{descr}' is not supported: xbar reads little-endian float32 ('<f4'), \
             uint8 ('|u1'), int32 ('<i4') and int64 ('<i8'); convert with \
             np.save(path, array.astype('<f4')) (or the integer type needed)"
        );
    };
    if fortran_order {
        bail!(
            "the array is stored in Fortran (column-major) order: save it in C order with \
             np.save(path, np.ascontiguousarray(array))"
        );
    }
    let data_len = element_count(&shape)?
        .checked_mul(dtype.size())
        .with_context(|| format!("shape {shape:?} is too large"))?;
    Ok(Header {
        dtype,
        shape,
        data_len,
    })
}

/// Extract `descr`, `fortran_order` and `shape` from the header dict literal.
fn header_fields(header: &str) -> Result<(String, bool, Vec<usize>)> {
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
