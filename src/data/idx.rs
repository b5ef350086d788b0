//! Reader for IDX files of unsigned bytes (MNIST, Fashion-MNIST, EMNIST), raw or gzip, and
//! for a directory holding the four files of a data set.
//!
//! IDX format (LeCun et al., <http://yann.lecun.com/exdb/mnist/>): a big-endian magic
//! number `0x0000 TT DD` (TT = element type, 0x08 = unsigned byte; DD = number of
//! dimensions), DD big-endian u32 sizes, then the elements in row-major order.

use super::{Dataset, Split};
use anyhow::{Context, Result, bail};
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::Path;

/// IDX element type code of unsigned bytes, the only type image/label sets use.
const IDX_TYPE_U8: u8 = 0x08;
/// The two leading bytes of a gzip stream (RFC 1952).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// Largest element count accepted (guards against a corrupt header asking for terabytes).
const MAX_ELEMENTS: usize = 1 << 34;

/// The four files of an IDX data set, as distributed for MNIST and Fashion-MNIST (each raw
/// or with `.gz`): training images and labels, test images and labels.
const FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];
/// The files that mark a directory as an IDX data set (for [`super::Format::detect`]).
pub const MARKERS: &[&str] = &["train-images-idx3-ubyte", "train-images-idx3-ubyte.gz"];
/// The layout, as error messages describe it.
pub const LAYOUT: &str = "train-images-idx3-ubyte, train-labels-idx1-ubyte, \
    t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (each raw or .gz; MNIST, Fashion-MNIST)";

/// An n-dimensional array of bytes read from an IDX file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// Sizes of each dimension, outermost first.
    pub dims: Vec<usize>,
    /// Elements in row-major order.
    pub data: Vec<u8>,
}

/// Read an IDX file (raw, or gzip-compressed: detected from its first bytes).
pub fn read_idx_file(path: &Path) -> Result<IdxArray> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read IDX file {}", path.display()))?;
    parse_idx(&bytes).with_context(|| format!("IDX file {}", path.display()))
}

/// Parse IDX bytes, raw or gzip-compressed.
pub fn parse_idx(bytes: &[u8]) -> Result<IdxArray> {
    if bytes.starts_with(&GZIP_MAGIC) {
        let mut raw = Vec::new();
        GzDecoder::new(bytes)
            .read_to_end(&mut raw)
            .context("the gzip stream is corrupt or truncated")?;
        parse_raw(&raw)
    } else {
        parse_raw(bytes)
    }
}

fn parse_raw(bytes: &[u8]) -> Result<IdxArray> {
    if bytes.len() < 4 {
        bail!(
            "the file is {} bytes long, too short for the 4-byte IDX magic number",
            bytes.len()
        );
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        bail!(
            "bad magic number {:02x}{:02x}{:02x}{:02x}: an IDX file starts with two zero bytes \
             (is this really an IDX file, e.g. train-images-idx3-ubyte?)",
            bytes[0],
            bytes[1],
            bytes[2],
            bytes[3]
        );
    }
    if bytes[2] != IDX_TYPE_U8 {
        bail!(
            "element type 0x{:02x} is not supported: xbar reads IDX files of unsigned bytes (0x08)",
            bytes[2]
        );
    }
    let ndims = usize::from(bytes[3]);
    if ndims == 0 {
        bail!("the IDX header declares 0 dimensions");
    }
    let header_len = 4 + 4 * ndims;
    if bytes.len() < header_len {
        bail!(
            "truncated header: {ndims} dimensions need {header_len} bytes, the file has {}",
            bytes.len()
        );
    }
    let dims: Vec<usize> = bytes[4..header_len]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let count = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&c| c <= MAX_ELEMENTS)
        .with_context(|| format!("the dimensions {dims:?} are too large to be a real data set"))?;
    let body = &bytes[header_len..];
    if body.len() < count {
        bail!(
            "truncated data: dimensions {dims:?} need {count} bytes after the header, the file has {}",
            body.len()
        );
    }
    if body.len() > count {
        bail!(
            "wrong sizes: dimensions {dims:?} need {count} bytes after the header, the file has {} \
             ({} extra)",
            body.len(),
            body.len() - count
        );
    }
    Ok(IdxArray {
        dims,
        data: body.to_vec(),
    })
}

/// Load an IDX data set from a directory holding the four standard files ([`LAYOUT`]).
pub fn load_dir(dir: &Path) -> Result<Split> {
    let find = |stem: &str| -> Result<std::path::PathBuf> {
        for name in [stem.to_string(), format!("{stem}.gz")] {
            let p = dir.join(&name);
            if p.is_file() {
                return Ok(p);
            }
        }
        bail!(
            "data directory {} has no {stem} (or {stem}.gz): an IDX data set is the four files {}",
            dir.display(),
            FILES.join(", ")
        )
    };
    let load = |stem: &str| -> Result<IdxArray> { read_idx_file(&find(stem)?) };
    let [train_images, train_labels, test_images, test_labels] = FILES;
    let split = Split {
        train: Dataset::from_idx(
            &load(train_images)?,
            &load(train_labels)?,
            &format!("{} (train)", dir.display()),
        )?,
        test: Dataset::from_idx(
            &load(test_images)?,
            &load(test_labels)?,
            &format!("{} (test)", dir.display()),
        )?,
    };
    split.check_shapes(&format!("data directory {}", dir.display()))?;
    Ok(split)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compression, write::GzEncoder};
    use std::io::Write;

    fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, IDX_TYPE_U8, dims.len() as u8];
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn raw_and_gzip_files_parse_to_the_same_array() {
        let raw = idx_bytes(&[2, 3], &[1, 2, 3, 4, 5, 6]);
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(&raw).unwrap();
        let gz = enc.finish().unwrap();
        let a = parse_idx(&raw).unwrap();
        assert_eq!(a.dims, vec![2, 3]);
        assert_eq!(a.data, vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(parse_idx(&gz).unwrap(), a);
    }

    fn error_of(bytes: &[u8]) -> String {
        format!("{:#}", parse_idx(bytes).unwrap_err())
    }

    #[test]
    fn corrupt_files_give_clear_errors() {
        assert!(error_of(&[1, 2, 3, 4, 5]).contains("bad magic number"));
        assert!(error_of(&[0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0]).contains("not supported"));
        assert!(error_of(&[0, 0, 8]).contains("too short"));
        assert!(error_of(&[0, 0, 8, 2, 0, 0, 0, 1]).contains("truncated header"));
        assert!(error_of(&idx_bytes(&[2, 3], &[1, 2, 3])).contains("truncated data"));
        assert!(error_of(&idx_bytes(&[2], &[1, 2, 3])).contains("wrong sizes"));
        let gz_cut = {
            let mut enc = GzEncoder::new(Vec::new(), Compression::default());
            enc.write_all(&idx_bytes(&[100], &[7; 100])).unwrap();
            let full = enc.finish().unwrap();
            full[..full.len() / 2].to_vec()
        };
        assert!(error_of(&gz_cut).contains("gzip"));
    }
}
