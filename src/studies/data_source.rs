//! The `[data]` section shared by the experiment kinds: which data set (the embedded
//! MNIST-10k or a directory in one of the layouts of [`crate::data::Format`]), how much of
//! it, and its per-channel normalisation, turned into a [`Split`].

use crate::data::{self, Format, Split};
use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// `[data]`: which data set, how much of it, how it is normalised.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// `mnist10k` (embedded) or a directory holding a data set.
    pub source: String,
    /// The directory's layout: `auto` (decided from the files present), `idx`, `cifar10`
    /// or `npy`.
    pub format: Format,
    /// Use only the first this many training images (0: all).
    pub train_limit: usize,
    /// Use only the first this many test images (0: all).
    pub test_limit: usize,
    /// Keep only the central `[rows, cols]` pixels of every image (empty: whole images),
    /// e.g. `[20, 20]` for the cropped MNIST of NeuroSim's MLP benchmark.
    pub crop: Vec<usize>,
    /// Turn pixels (scaled to [0, 1]) into black and white: 1 at or above this threshold,
    /// 0 below (NeuroSim's 1-bit inputs use 0.5); absent: grey levels kept.
    pub binarize: Option<f32>,
    /// Per-channel mean subtracted from the values (after pixels are scaled to [0, 1],
    /// cropped and binarised); empty: no normalisation.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation the values are divided by (after the mean is
    /// subtracted); empty: no normalisation.
    pub std: Vec<f32>,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            source: data::MNIST10K.to_string(),
            format: Format::Auto,
            train_limit: 0,
            test_limit: 0,
            crop: Vec::new(),
            binarize: None,
            mean: Vec::new(),
            std: Vec::new(),
        }
    }
}

impl DataConfig {
    /// Load the data set: read, cut to the limits, crop, binarise, normalise.
    pub fn load(&self) -> Result<Split> {
        data::check_normalization(&self.mean, &self.std).context("data.mean / data.std")?;
        self.check_transforms()?;
        let mut split = self.read()?;
        ensure!(
            !split.train.is_empty() && !split.test.is_empty(),
            "data.source = {}: the training or the test split is empty",
            self.source
        );
        if self.train_limit > 0 {
            split.train = split.train.take(self.train_limit);
        }
        if self.test_limit > 0 {
            split.test = split.test.take(self.test_limit);
        }
        if let [rows, cols] = self.crop[..] {
            split.center_crop(rows, cols).with_context(|| {
                format!(
                    "data.crop = {:?} (data.source = {})",
                    self.crop, self.source
                )
            })?;
        }
        if let Some(threshold) = self.binarize {
            split.binarize(threshold);
        }
        if !self.mean.is_empty() {
            split
                .normalize(&self.mean, &self.std)
                .with_context(|| format!("data.mean / data.std (data.source = {})", self.source))?;
        }
        Ok(split)
    }

    /// The crop and binarisation settings, checked before any data is read.
    pub fn check_transforms(&self) -> Result<()> {
        ensure!(
            self.crop.is_empty() || self.crop.len() == 2,
            "data.crop = {:?}: give [rows, cols] (two pixel counts) or leave it out",
            self.crop
        );
        if let Some(t) = self.binarize {
            ensure!(
                t.is_finite() && t > 0.0 && t <= 1.0,
                "data.binarize = {t}: the threshold is a pixel value in (0, 1] (0.5 is \
                 NeuroSim's), or leave it out to keep grey levels"
            );
        }
        Ok(())
    }

    /// The data set `source` and `format` name.
    fn read(&self) -> Result<Split> {
        if self.source == data::wdbc::NAME {
            bail!(
                "data.source = \"{}\" is a tabular data set (30 features, not images): it is \
                 read by the mcmc_wdbc study; image kinds take \"{}\" or a directory",
                data::wdbc::NAME,
                data::MNIST10K
            );
        }
        if self.source != data::MNIST10K {
            return data::load_dir(std::path::Path::new(&self.source), self.format)
                .with_context(|| format!("data.source = {}", self.source));
        }
        ensure!(
            matches!(self.format, Format::Auto | Format::Idx),
            "data.format = {} does not apply to the embedded {} (an IDX set): remove \
             data.format or set data.source to a directory",
            self.format.name(),
            data::MNIST10K
        );
        data::mnist10k()
    }
}

/// The data sets of an experiment's jobs, loaded once per distinct `[data]` section and
/// shared between the worker threads.
#[derive(Default)]
pub struct DataCache(Mutex<HashMap<String, Arc<Split>>>);

impl DataCache {
    /// The split `config` names, loaded on first use; a split with an empty training or
    /// test set is an error.
    pub fn load(&self, config: &DataConfig) -> Result<Arc<Split>> {
        let key = serde_json::to_string(config)?;
        let mut cache = self.0.lock().map_err(|_| poisoned())?;
        if let Some(d) = cache.get(&key) {
            return Ok(d.clone());
        }
        let d = Arc::new(config.load()?);
        ensure!(
            !d.train.is_empty() && !d.test.is_empty(),
            "data: the training or the test set is empty"
        );
        cache.insert(key, d.clone());
        Ok(d)
    }
}

/// The error of a cache whose lock a panicking worker thread left poisoned.
pub(crate) fn poisoned() -> anyhow::Error {
    anyhow::anyhow!("a worker thread panicked while holding a cache")
}
