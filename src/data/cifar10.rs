//! Reader for the binary version of CIFAR-10 (Krizhevsky 2009,
//! <https://www.cs.toronto.edu/~kriz/cifar.html>, "CIFAR-10 binary version (suitable for C
//! programs)"): the directory `cifar-10-batches-bin` holds `data_batch_1.bin` ...
//! `data_batch_5.bin` (the 50,000 training images) and `test_batch.bin` (10,000 test
//! images). Each file is a sequence of records of one label byte (0..=9) followed by
//! 3,072 pixel bytes: the 1,024 red, then the 1,024 green, then the 1,024 blue values of a
//! 32 x 32 image, each plane row-major — so a record's pixels are already one image in
//! `channels x rows x cols` order, and red, green and blue become channels 0, 1 and 2.

use super::{Dataset, Split, scaled};
use anyhow::{Context, Result, ensure};
use std::path::Path;

/// Colour channels of an image (red, green, blue).
const CHANNELS: usize = 3;
/// Image side, pixels.
const SIDE: usize = 32;
/// Bytes of one record: the label byte, then the pixel bytes.
const RECORD_BYTES: usize = 1 + CHANNELS * SIDE * SIDE;
/// Records in each file of the distributed data set.
const RECORDS_PER_FILE: usize = 10_000;
/// Number of classes (airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck).
const CLASSES: u8 = 10;
/// The training files, in order.
const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
/// The test file.
const TEST_FILE: &str = "test_batch.bin";
/// The file that marks a directory as CIFAR-10 (for [`super::Format::detect`]).
pub const MARKERS: &[&str] = &[TRAIN_FILES[0]];
/// The layout, as error messages describe it.
pub const LAYOUT: &str = "data_batch_1.bin ... data_batch_5.bin and test_batch.bin \
    (the directory cifar-10-batches-bin of the CIFAR-10 binary version)";

/// Load CIFAR-10 from `dir` ([`LAYOUT`]): the five training batches, in order, and the test
/// batch; pixels scaled to [0, 1].
pub fn load_dir(dir: &Path) -> Result<Split> {
    let train_paths: Vec<_> = TRAIN_FILES.iter().map(|f| dir.join(f)).collect();
    let split = Split {
        train: load_files(&train_paths)?,
        test: load_files(&[dir.join(TEST_FILE)])?,
    };
    split.check_shapes(&format!("data directory {}", dir.display()))?;
    Ok(split)
}

/// The records of `paths`, one after the other, as one data set.
fn load_files(paths: &[std::path::PathBuf]) -> Result<Dataset> {
    let mut records = 0;
    for path in paths {
        records += record_count(path)?;
    }
    let pixels = records * (RECORD_BYTES - 1);
    crate::memory::ensure_fits(
        (pixels * std::mem::size_of::<f32>()) as f64,
        &format!("{records} CIFAR-10 images"),
        "use a machine with more memory",
    )?;
    let mut images = Vec::with_capacity(pixels);
    let mut labels = Vec::with_capacity(records);
    for path in paths {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        for (i, record) in bytes.chunks_exact(RECORD_BYTES).enumerate() {
            let label = record[0];
            ensure!(
                label < CLASSES,
                "{}: record {i} has label {label}, but CIFAR-10 labels are 0..={} (is this a \
                 CIFAR-100 file? xbar reads CIFAR-10)",
                path.display(),
                CLASSES - 1
            );
            labels.push(label);
            images.extend(scaled(&record[1..]));
        }
    }
    Dataset::new(images, labels, [CHANNELS, SIDE, SIDE])
}

/// Number of records in the file at `path`, checked from its length before it is read.
fn record_count(path: &Path) -> Result<usize> {
    let len = std::fs::metadata(path)
        .with_context(|| {
            format!(
                "cannot read CIFAR-10 file {}: a CIFAR-10 directory holds {}",
                path.display(),
                LAYOUT
            )
        })?
        .len();
    let len = usize::try_from(len).context("the file is too large for this machine")?;
    ensure!(
        len > 0 && len.is_multiple_of(RECORD_BYTES),
        "CIFAR-10 file {} is {len} bytes long, not a whole number of {RECORD_BYTES}-byte records \
         (1 label byte + {} pixel bytes; a distributed batch file holds {RECORDS_PER_FILE} \
         records = {} bytes): the file is truncated or not from the CIFAR-10 binary version",
        path.display(),
        RECORD_BYTES - 1,
        RECORDS_PER_FILE * RECORD_BYTES
    );
    Ok(len / RECORD_BYTES)
}
