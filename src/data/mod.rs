//! Data sets: labelled images of `channels x rows x cols` values ([`Dataset`], NCHW),
//! split into training and test sets ([`Split`]), from
//!
//! - the embedded MNIST-10k set ([`mnist10k`]: the first 10,000 MNIST training digits,
//!   split 8,000 train / 2,000 test), compiled into the binary so that no download is ever
//!   needed (as is the tabular WDBC set, [`wdbc`], for the MCMC study);
//! - a directory in one of three layouts ([`load_dir`], [`Format`], detected from the files
//!   present): the four IDX files of MNIST / Fashion-MNIST ([`idx`], raw or gzip), the
//!   binary version of CIFAR-10 ([`cifar10`]), or four NumPy `.npy` files as `np.save`
//!   writes them ([`numpy`]: images `uint8` or `float32`, `N x C x H x W` or `N x H x W`).
//!
//! Pixel bytes are scaled to [0, 1]; [`Dataset::normalize`] then applies a per-channel
//! `(x - mean[c]) / std[c]`. [`tasks`] builds the permuted-MNIST task sequences.

pub mod cifar10;
pub mod idx;
pub mod numpy;
pub mod tasks;
pub mod wdbc;

use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub use idx::{IdxArray, parse_idx, read_idx_file};

/// Image shape `[channels, rows, cols]` (NCHW without the N).
pub type Shape = [usize; 3];

/// A labelled image classification set: `n` images of `channels x rows x cols` values
/// (pixels scaled to [0, 1], or normalised per channel).
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// The images one after the other, each channel after channel, each channel row-major
    /// (NCHW: `n * channels * rows * cols` values).
    pub images: Vec<f32>,
    /// Class label of each image.
    pub labels: Vec<u8>,
    /// Channels per image (1 for grey-scale sets such as MNIST, 3 for RGB).
    pub channels: usize,
    /// Image height, pixels.
    pub rows: usize,
    /// Image width, pixels.
    pub cols: usize,
}

impl Dataset {
    /// A data set of `labels.len()` images of `shape` (`[channels, rows, cols]`), checking
    /// that `images` holds exactly their values.
    pub fn new(images: Vec<f32>, labels: Vec<u8>, shape: Shape) -> Result<Dataset> {
        let [channels, rows, cols] = shape;
        let per_image = channels * rows * cols;
        ensure!(
            per_image > 0,
            "images of shape {shape:?} (channels x rows x cols) hold no value"
        );
        ensure!(
            images.len() == labels.len() * per_image,
            "{} labels of images of shape {shape:?} need {} values, {} were given",
            labels.len(),
            labels.len() * per_image,
            images.len()
        );
        Ok(Dataset {
            images,
            labels,
            channels,
            rows,
            cols,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The shape of one image, `[channels, rows, cols]`.
    pub fn shape(&self) -> Shape {
        [self.channels, self.rows, self.cols]
    }

    /// Values per image (`channels * rows * cols`).
    pub fn features(&self) -> usize {
        self.channels * self.rows * self.cols
    }

    /// Number of classes (largest label + 1).
    pub fn classes(&self) -> usize {
        self.labels
            .iter()
            .copied()
            .max()
            .map_or(0, |m| usize::from(m) + 1)
    }

    /// The values of image `i`.
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
            ..*self
        }
    }

    /// Normalise every channel `c` of every image: `x -> (x - mean[c]) / std[c]` (the
    /// `transforms.Normalize(mean, std)` of torchvision), with one mean and one standard
    /// deviation per channel (see [`check_normalization`]).
    pub fn normalize(&mut self, mean: &[f32], std: &[f32]) -> Result<()> {
        check_normalization(mean, std)?;
        ensure!(
            mean.len() == self.channels,
            "{} value(s) were given for images of {} channel(s): give one per channel",
            mean.len(),
            self.channels
        );
        let (plane, features) = (self.rows * self.cols, self.features());
        for image in self.images.chunks_exact_mut(features) {
            for ((values, &m), &s) in image.chunks_exact_mut(plane).zip(mean).zip(std) {
                values.iter_mut().for_each(|x| *x = (*x - m) / s);
            }
        }
        Ok(())
    }

    /// Keep the central `rows x cols` pixels of every channel (torchvision's `CenterCrop`:
    /// the top-left corner at `(H - rows) / 2, (W - cols) / 2`, rounded down), e.g. the
    /// 20 x 20 MNIST of NeuroSim's MLP benchmark.
    pub fn center_crop(&mut self, rows: usize, cols: usize) -> Result<()> {
        ensure!(
            (1..=self.rows).contains(&rows) && (1..=self.cols).contains(&cols),
            "a {rows} x {cols} crop does not fit images of {} x {} pixels: give at least 1 and \
             at most the image size",
            self.rows,
            self.cols
        );
        let (top, left) = ((self.rows - rows) / 2, (self.cols - cols) / 2);
        let plane = self.rows * self.cols;
        let mut cropped = Vec::with_capacity(self.len() * self.channels * rows * cols);
        for channel in self.images.chunks_exact(plane) {
            for r in top..top + rows {
                let start = r * self.cols + left;
                cropped.extend_from_slice(&channel[start..start + cols]);
            }
        }
        self.images = cropped;
        self.rows = rows;
        self.cols = cols;
        Ok(())
    }

    /// Black-and-white images: every value at or above `threshold` becomes 1, every other
    /// one 0 (NeuroSim's 1-bit inputs, `BWthreshold`).
    pub fn binarize(&mut self, threshold: f32) {
        self.images
            .iter_mut()
            .for_each(|x| *x = f32::from(u8::from(*x >= threshold)));
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
        Dataset::new(
            scaled(&images.data).collect(),
            labels.data.clone(),
            [1, images.dims[1], images.dims[2]],
        )
        .with_context(|| what.to_string())
    }
}

/// An image shape as text: `3x32x32`.
pub fn shape_text([channels, rows, cols]: Shape) -> String {
    format!("{channels}x{rows}x{cols}")
}

/// Check per-channel normalisation parameters: as many means as standard deviations,
/// finite means, positive and finite standard deviations.
pub fn check_normalization(mean: &[f32], std: &[f32]) -> Result<()> {
    ensure!(
        mean.len() == std.len(),
        "{} means but {} standard deviations: give one of each per channel (or neither)",
        mean.len(),
        std.len()
    );
    if let Some(bad) = std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        bail!("standard deviation {bad}: every standard deviation must be positive and finite");
    }
    if let Some(bad) = mean.iter().find(|m| !m.is_finite()) {
        bail!("mean {bad}: every mean must be finite");
    }
    Ok(())
}

/// Largest value of a pixel byte: bytes are scaled by `1 / PIXEL_MAX` to [0, 1].
const PIXEL_MAX: f32 = 255.0;

/// Pixel bytes scaled to [0, 1].
pub(crate) fn scaled(bytes: &[u8]) -> impl Iterator<Item = f32> + '_ {
    bytes.iter().map(|&p| f32::from(p) / PIXEL_MAX)
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

/// Name of the embedded MNIST-10k set ([`mnist10k`]).
pub const MNIST10K: &str = "mnist10k";
/// Names of the embedded data sets (`data.source` values that are not paths).
pub const EMBEDDED: &[&str] = &[MNIST10K, wdbc::NAME];

impl Split {
    /// Check that the training and test images have the same shape (a model trained on
    /// one cannot read the other); `origin` names the data in the error.
    pub fn check_shapes(&self, origin: &str) -> Result<()> {
        let (tr, te) = (self.train.shape(), self.test.shape());
        if tr != te {
            bail!(
                "{origin}: the training images are {} (channels x rows x cols) but the test \
                 images {}: both splits of a data set must have one image shape",
                shape_text(tr),
                shape_text(te)
            );
        }
        Ok(())
    }

    /// Crop both splits to their central `rows x cols` pixels (see [`Dataset::center_crop`]).
    pub fn center_crop(&mut self, rows: usize, cols: usize) -> Result<()> {
        self.train.center_crop(rows, cols)?;
        self.test.center_crop(rows, cols)
    }

    /// Binarise both splits (see [`Dataset::binarize`]).
    pub fn binarize(&mut self, threshold: f32) {
        self.train.binarize(threshold);
        self.test.binarize(threshold);
    }

    /// Normalise both splits per channel (see [`Dataset::normalize`]).
    pub fn normalize(&mut self, mean: &[f32], std: &[f32]) -> Result<()> {
        self.train.normalize(mean, std)?;
        self.test.normalize(mean, std)
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

/// The file layout of a data directory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Decide from the files present ([`Format::detect`]).
    #[default]
    Auto,
    /// The four IDX files of MNIST / Fashion-MNIST ([`idx::load_dir`]).
    Idx,
    /// The binary version of CIFAR-10 ([`cifar10::load_dir`]).
    Cifar10,
    /// Four NumPy `.npy` files ([`numpy::load_dir`]).
    Npy,
}

impl Format {
    /// The name `data.format` gives this format.
    pub fn name(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Idx => "idx",
            Format::Cifar10 => "cifar10",
            Format::Npy => "npy",
        }
    }

    /// The formats a directory can hold, with the files whose presence marks each (any
    /// one of them) and a description of its layout.
    const LAYOUTS: [(Format, &'static [&'static str], &'static str); 3] = [
        (Format::Idx, idx::MARKERS, idx::LAYOUT),
        (Format::Cifar10, cifar10::MARKERS, cifar10::LAYOUT),
        (Format::Npy, numpy::MARKERS, numpy::LAYOUT),
    ];

    /// The format of the files in `dir`: the one layout whose first training file is
    /// present; an error lists the layouts when none matches, or asks for `data.format`
    /// when several do.
    pub fn detect(dir: &Path) -> Result<Format> {
        let present: Vec<Format> = Self::LAYOUTS
            .iter()
            .filter(|(_, markers, _)| markers.iter().any(|m| dir.join(m).is_file()))
            .map(|(format, _, _)| *format)
            .collect();
        match present[..] {
            [format] => Ok(format),
            [] => bail!(
                "data directory {} holds none of the three data-set layouts xbar reads:\n{}",
                dir.display(),
                Self::layouts_text()
            ),
            _ => bail!(
                "data directory {} holds the files of several layouts ({}): name the one to \
                 read with data.format",
                dir.display(),
                present
                    .iter()
                    .map(|f| f.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// The three layouts, one per line.
    fn layouts_text() -> String {
        Self::LAYOUTS
            .iter()
            .map(|(format, _, layout)| format!("  - {}: {layout}", format.name()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Load the data set in directory `dir`, stored in `format` (detected when `Auto`).
pub fn load_dir(dir: &Path, format: Format) -> Result<Split> {
    ensure!(
        dir.is_dir(),
        "data directory {} does not exist (or is not a directory): name a directory holding \
         one of these layouts:\n{}",
        dir.display(),
        Format::layouts_text()
    );
    match format {
        Format::Auto => load_dir(dir, Format::detect(dir)?),
        Format::Idx => idx::load_dir(dir),
        Format::Cifar10 => cifar10::load_dir(dir),
        Format::Npy => numpy::load_dir(dir),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two images of 2 channels x 5 x 4 pixels holding value = 1000 image + 100 channel +
    /// 10 row + col: a 3 x 2 centre crop keeps rows 1..4 and columns 1..3 of every channel.
    #[test]
    fn center_crop_keeps_the_central_pixels_of_every_channel() {
        let images: Vec<f32> = (0..2)
            .flat_map(|i| {
                (0..2).flat_map(move |c| {
                    (0..5).flat_map(move |r| {
                        (0..4).map(move |k| (1000 * i + 100 * c + 10 * r + k) as f32)
                    })
                })
            })
            .collect();
        let mut d = Dataset::new(images, vec![3, 7], [2, 5, 4]).unwrap();
        d.center_crop(3, 2).unwrap();
        assert_eq!(d.shape(), [2, 3, 2]);
        assert_eq!(
            d.image(1),
            &[
                1011., 1012., 1021., 1022., 1031., 1032., 1111., 1112., 1121., 1122., 1131., 1132.
            ]
        );
        let err = d.center_crop(4, 2).unwrap_err().to_string();
        assert!(err.contains("4 x 2") && err.contains("3 x 2"), "{err}");
    }

    #[test]
    fn binarize_thresholds_at_the_given_value() {
        let mut d = Dataset::new(vec![0.0, 0.49, 0.5, 1.0], vec![0], [1, 2, 2]).unwrap();
        d.binarize(0.5);
        assert_eq!(d.images, vec![0.0, 0.0, 1.0, 1.0]);
    }

    #[test]
    fn the_embedded_set_is_mnist_10k() {
        let s = mnist10k().unwrap();
        assert_eq!((s.train.len(), s.test.len()), (8000, 2000));
        assert_eq!(
            (s.train.shape(), s.test.shape()),
            ([1, 28, 28], [1, 28, 28])
        );
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
