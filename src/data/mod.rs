//! Data sets: a reader for IDX files (the MNIST / Fashion-MNIST format, raw or gzip), the
//! embedded MNIST-10k set (the first 10,000 MNIST training digits, split 8,000 train /
//! 2,000 test) and the embedded tabular WDBC set ([`wdbc`]), both compiled into the binary
//! so that no download is ever needed.
//!
//! IDX format (LeCun et al., <http://yann.lecun.com/exdb/mnist/>): a big-endian magic
//! number `0x0000 TT DD` (TT = element type, 0x08 = unsigned byte; DD = number of
//! dimensions), DD big-endian u32 sizes, then the elements in row-major order.

pub mod idx;
pub mod tasks;
pub mod wdbc;

use anyhow::{Context, Result, bail};
use std::path::Path;

pub use idx::{IdxArray, parse_idx, read_idx_file};

/// A labelled image classification set: `n` images of `rows x cols` pixels scaled to [0, 1].
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Pixel intensities in [0, 1], image after image, row-major (`n * rows * cols` values).
    pub images: Vec<f32>,
    /// Class label of each image.
    pub labels: Vec<u8>,
    /// Image height, pixels.
    pub rows: usize,
    /// Image width, pixels.
    pub cols: usize,
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels per image.
    pub fn features(&self) -> usize {
        self.rows * self.cols
    }

    /// Number of classes (largest label + 1).
    pub fn classes(&self) -> usize {
        self.labels
            .iter()
            .copied()
            .max()
            .map_or(0, |m| usize::from(m) + 1)
    }

    /// The pixels of image `i`.
    pub fn image(&self, i: usize) -> &[f32] {
        let d = self.features();
        &self.images[i * d..(i + 1) * d]
    }

    /// The first `n` images (or all of them if there are fewer).
    pub fn take(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        Dataset {
            images: self.images[..n * self.features()].to_vec(),
            labels: self.labels[..n].to_vec(),
            rows: self.rows,
            cols: self.cols,
        }
    }

    /// Build a data set from an IDX image array (n x rows x cols, u8) and an IDX label array (n, u8).
    pub fn from_idx(images: &IdxArray, labels: &IdxArray, what: &str) -> Result<Dataset> {
        if images.dims.len() != 3 {
            bail!(
                "{what}: the image file must have 3 dimensions (n, rows, cols), it has {:?}",
                images.dims
            );
        }
        if labels.dims.len() != 1 {
            bail!(
                "{what}: the label file must have 1 dimension (n), it has {:?}",
                labels.dims
            );
        }
        if images.dims[0] != labels.dims[0] {
            bail!(
                "{what}: {} images but {} labels: the image and label files do not belong together",
                images.dims[0],
                labels.dims[0]
            );
        }
        Ok(Dataset {
            images: images.data.iter().map(|&p| f32::from(p) / 255.0).collect(),
            labels: labels.data.clone(),
            rows: images.dims[1],
            cols: images.dims[2],
        })
    }
}

/// A train/test pair.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    /// Training images.
    pub train: Dataset,
    /// Held-out test images.
    pub test: Dataset,
}

static MNIST10K_TRAIN_IMAGES: &[u8] =
    include_bytes!("../../data/mnist10k/train-images-idx3-ubyte.gz");
static MNIST10K_TRAIN_LABELS: &[u8] =
    include_bytes!("../../data/mnist10k/train-labels-idx1-ubyte.gz");
static MNIST10K_TEST_IMAGES: &[u8] =
    include_bytes!("../../data/mnist10k/t10k-images-idx3-ubyte.gz");
static MNIST10K_TEST_LABELS: &[u8] =
    include_bytes!("../../data/mnist10k/t10k-labels-idx1-ubyte.gz");

/// Names of the embedded data sets (`data.source` values that are not paths).
pub const EMBEDDED: &[&str] = &["mnist10k", "wdbc"];

impl Split {
    /// Check that the training and test images have the same shape (a model trained on
    /// one cannot read the other); `origin` names the data in the error.
    pub fn check_shapes(&self, origin: &str) -> Result<()> {
        let (tr, te) = (&self.train, &self.test);
        if (tr.rows, tr.cols) != (te.rows, te.cols) {
            bail!(
                "{origin}: the training images are {}x{} pixels but the test images are {}x{}: \
                 both splits of a data set must have one image size",
                tr.rows,
                tr.cols,
                te.rows,
                te.cols
            );
        }
        Ok(())
    }
}

/// The embedded MNIST-10k set: 8,000 training and 2,000 test digits, 28 x 28 pixels.
pub fn mnist10k() -> Result<Split> {
    let parse = |bytes: &[u8], name: &str| {
        parse_idx(bytes).with_context(|| format!("embedded MNIST-10k file {name}"))
    };
    Ok(Split {
        train: Dataset::from_idx(
            &parse(MNIST10K_TRAIN_IMAGES, "train-images-idx3-ubyte.gz")?,
            &parse(MNIST10K_TRAIN_LABELS, "train-labels-idx1-ubyte.gz")?,
            "embedded MNIST-10k train",
        )?,
        test: Dataset::from_idx(
            &parse(MNIST10K_TEST_IMAGES, "t10k-images-idx3-ubyte.gz")?,
            &parse(MNIST10K_TEST_LABELS, "t10k-labels-idx1-ubyte.gz")?,
            "embedded MNIST-10k test",
        )?,
    })
}

/// Load an IDX data set from a directory holding the four standard files
/// (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`,
/// `t10k-labels-idx1-ubyte`, each raw or with `.gz`), as distributed for MNIST and
/// Fashion-MNIST.
pub fn load_idx_dir(dir: &Path) -> Result<Split> {
    let find = |stem: &str| -> Result<std::path::PathBuf> {
        for name in [stem.to_string(), format!("{stem}.gz")] {
            let p = dir.join(&name);
            if p.is_file() {
                return Ok(p);
            }
        }
        bail!(
            "data directory {} has no {stem} (or {stem}.gz): it must hold the four standard IDX files \
             train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte",
            dir.display()
        )
    };
    let load = |stem: &str| -> Result<IdxArray> { read_idx_file(&find(stem)?) };
    let split = Split {
        train: Dataset::from_idx(
            &load("train-images-idx3-ubyte")?,
            &load("train-labels-idx1-ubyte")?,
            &format!("{} (train)", dir.display()),
        )?,
        test: Dataset::from_idx(
            &load("t10k-images-idx3-ubyte")?,
            &load("t10k-labels-idx1-ubyte")?,
            &format!("{} (test)", dir.display()),
        )?,
    };
    split.check_shapes(&format!("data directory {}", dir.display()))?;
    Ok(split)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_set_is_mnist_10k() {
        let s = mnist10k().unwrap();
        assert_eq!((s.train.len(), s.test.len()), (8000, 2000));
        assert_eq!((s.train.rows, s.train.cols), (28, 28));
        assert_eq!(s.train.classes(), 10);
        // The first labels of the files shipped in data/mnist10k (checked with a gzip reader).
        assert_eq!(&s.train.labels[..4], &[1, 9, 4, 1]);
        assert_eq!(&s.test.labels[..4], &[4, 2, 0, 8]);
        assert!(s.train.images.iter().all(|&p| (0.0..=1.0).contains(&p)));
        // Every class is present in the test split.
        let mut seen = [0usize; 10];
        for &l in &s.test.labels {
            seen[usize::from(l)] += 1;
        }
        assert!(seen.iter().all(|&c| c > 100), "{seen:?}");
    }
}
