//! Reader for a data set exported from Python with `np.save`: a directory holding
//! `train_images.npy`, `train_labels.npy`, `test_images.npy` and `test_labels.npy`.
//!
//! Images are `uint8` (pixels, scaled by 1/255 to [0, 1]) or `float32` (used as they are),
//! of shape `N x C x H x W` (channels first, PyTorch's layout) or `N x H x W` (one
//! channel); labels are `uint8`, `int32` or `int64` of shape `N`, class indices in
//! 0..=255. Arrays must be in C order (what `np.save` writes unless the array is a
//! transposed view: `np.ascontiguousarray` fixes that). The files are read by
//! [`crate::npy`].

use super::{Dataset, Shape, Split, scaled};
use crate::npy::{Elements, NpyData, read_npy_data};
use anyhow::{Context, Result, bail, ensure};
use std::path::Path;

/// The file that marks a directory as a NumPy data set (for [`super::Format::detect`]).
pub const MARKERS: &[&str] = &["train_images.npy"];
/// The layout, as error messages describe it.
pub const LAYOUT: &str = "train_images.npy, train_labels.npy, test_images.npy, \
    test_labels.npy (np.save; images uint8 or float32 of shape N x C x H x W or N x H x W, \
    labels uint8, int32 or int64 of shape N)";

/// Load the NumPy data set in `dir` ([`LAYOUT`]).
pub fn load_dir(dir: &Path) -> Result<Split> {
    let split = Split {
        train: load_pair(dir, "train")?,
        test: load_pair(dir, "test")?,
    };
    split.check_shapes(&format!("data directory {}", dir.display()))?;
    Ok(split)
}

/// One split: `{split}_images.npy` and `{split}_labels.npy`.
fn load_pair(dir: &Path, split: &str) -> Result<Dataset> {
    let images_path = dir.join(format!("{split}_images.npy"));
    let labels_path = dir.join(format!("{split}_labels.npy"));
    let (images, count, shape) = read_images(&images_path)?;
    let labels = read_labels(&labels_path)?;
    ensure!(
        count == labels.len(),
        "{} holds {count} images but {} holds {} labels: the two files of a split must hold \
         one label per image",
        images_path.display(),
        labels_path.display(),
        labels.len()
    );
    Dataset::new(images, labels, shape)
        .with_context(|| format!("data directory {} ({split})", dir.display()))
}

/// Read one of the four files, naming the layout if it is missing.
fn read_array(path: &Path) -> Result<NpyData> {
    ensure!(
        path.is_file(),
        "{} does not exist: a NumPy data set is {LAYOUT}",
        path.display()
    );
    read_npy_data(path)
}

/// The image values of `path` in [0, 1] (`uint8`) or as stored (`float32`), the image
/// count and the image shape.
fn read_images(path: &Path) -> Result<(Vec<f32>, usize, Shape)> {
    let array = read_array(path)?;
    let (count, shape) = match array.shape[..] {
        [n, c, h, w] => (n, [c, h, w]),
        [n, h, w] => (n, [1, h, w]),
        _ => bail!(
            "{}: images of shape {:?}: expected N x C x H x W (channels first, PyTorch's \
             layout) or N x H x W (one channel); channels-last arrays (N x H x W x C) need \
             images.transpose(0, 3, 1, 2) before np.save",
            path.display(),
            array.shape
        ),
    };
    let values = match array.elements {
        Elements::U8(bytes) => {
            crate::memory::ensure_fits(
                (bytes.len() * std::mem::size_of::<f32>()) as f64,
                &format!("the images of {}", path.display()),
                "use a smaller data set",
            )?;
            scaled(&bytes).collect()
        }
        Elements::F32(values) => {
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                bail!(
                    "{}: value {i} (image {}) is {}: images must hold finite numbers",
                    path.display(),
                    i / shape.iter().product::<usize>().max(1),
                    values[i]
                );
            }
            values
        }
        other => bail!(
            "{}: images of dtype {} are not accepted: save uint8 pixels (scaled by 1/255) or \
             float32 values (used as they are), e.g. np.save(path, images.astype(np.float32))",
            path.display(),
            other.dtype().name()
        ),
    };
    Ok((values, count, shape))
}

/// The labels of `path`: one class index in 0..=255 per image.
fn read_labels(path: &Path) -> Result<Vec<u8>> {
    let array = read_array(path)?;
    ensure!(
        array.shape.len() == 1,
        "{}: labels of shape {:?}: expected one dimension (N, one class index per image); \
         save labels.reshape(-1)",
        path.display(),
        array.shape
    );
    let wide: Vec<i64> = match array.elements {
        Elements::U8(labels) => return Ok(labels),
        Elements::I32(labels) => labels.into_iter().map(i64::from).collect(),
        Elements::I64(labels) => labels,
        other => bail!(
            "{}: labels of dtype {} are not accepted: save class indices as uint8, int32 or \
             int64, e.g. np.save(path, labels.astype(np.int64))",
            path.display(),
            other.dtype().name()
        ),
    };
    wide.iter()
        .enumerate()
        .map(|(i, &label)| {
            u8::try_from(label).map_err(|_| {
                anyhow::anyhow!(
                    "{}: label {i} is {label}: labels must be class indices in 0..={}",
                    path.display(),
                    u8::MAX
                )
            })
        })
        .collect()
}
