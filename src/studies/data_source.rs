//! The `[data]` section shared by the experiment kinds: which data set (the embedded
//! MNIST-10k or a directory of IDX files) and how much of it, turned into a [`Split`].

use crate::data::{self, Split};
use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// `[data]`: which data set, and how much of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// `mnist10k` (embedded) or a directory holding the four standard IDX files.
    pub source: String,
    /// Use only the first this many training images (0: all).
    pub train_limit: usize,
    /// Use only the first this many test images (0: all).
    pub test_limit: usize,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            source: "mnist10k".to_string(),
            train_limit: 0,
            test_limit: 0,
        }
    }
}

impl DataConfig {
    /// Load the data set.
    pub fn load(&self) -> Result<Split> {
        let mut split = if self.source == "mnist10k" {
            data::mnist10k()?
        } else if self.source == "wdbc" {
            bail!(
                "data.source = \"wdbc\" is a tabular data set (30 features, not images): \
                 it is read by the mcmc_wdbc study; image kinds take \"mnist10k\" or a \
                 directory of IDX files"
            );
        } else {
            data::load_idx_dir(std::path::Path::new(&self.source)).context("data.source")?
        };
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
        Ok(split)
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
