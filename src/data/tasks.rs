//! Sequential-task builders for continual-learning experiments: permuted MNIST.
//!
//! A permuted-MNIST task shuffles the pixels of every image with one fixed permutation
//! (Goodfellow et al., "An empirical investigation of catastrophic forgetting", 2013;
//! the benchmark of Laborieux et al., Nature Communications 2021). The labels are
//! unchanged, so every task is equally hard for a fully connected network, but the
//! tasks share no input statistics and compete for the same weights.
//!
//! Permutation `t` of seed `s` is a Fisher–Yates shuffle drawn from the stream
//! `xbar::rng::stream(s, [PERMUTATION_STREAM, t])`: it depends only on `(s, t)`, never
//! on how many tasks are built or in which order. Task 0 may be the identity (plain
//! MNIST), as is customary.

use super::Dataset;
use crate::rng;
use anyhow::{Result, ensure};
use rand::RngExt;

use crate::rng::PERMUTATION_STREAM;

/// One permuted-MNIST task: output pixel `i` of a permuted image is input pixel
/// `permutation[i]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PermutedTask {
    /// Task index in the sequence.
    pub index: usize,
    /// The pixel permutation (a rearrangement of `0..pixels`).
    pub permutation: Vec<usize>,
}

impl PermutedTask {
    /// Write the permuted version of `image` into `out` (both `permutation.len()` long).
    pub fn permute_into(&self, image: &[f32], out: &mut [f32]) {
        for (o, &p) in out.iter_mut().zip(&self.permutation) {
            *o = image[p];
        }
    }

    /// A copy of `data` with every image permuted.
    pub fn apply(&self, data: &Dataset) -> Result<Dataset> {
        ensure!(
            data.features() == self.permutation.len(),
            "permuted task {}: images have {} pixels, the permutation {}",
            self.index,
            data.features(),
            self.permutation.len()
        );
        let d = data.features();
        let mut images = vec![0.0; data.images.len()];
        for (out, img) in images.chunks_exact_mut(d).zip(data.images.chunks_exact(d)) {
            self.permute_into(img, out);
        }
        Dataset::new(images, data.labels.clone(), data.shape())
    }
}

/// The pixel permutation of task `task` for images of `pixels` pixels and seed `seed`
/// (a uniform random permutation by Fisher–Yates).
pub fn pixel_permutation(pixels: usize, seed: u64, task: usize) -> Vec<usize> {
    let mut r = rng::stream(seed, &[PERMUTATION_STREAM, task as u64]);
    let mut perm: Vec<usize> = (0..pixels).collect();
    for i in (1..pixels).rev() {
        let j = r.random_range(0..=i);
        perm.swap(i, j);
    }
    perm
}

/// `tasks` permuted-MNIST tasks for images of `pixels` pixels; with `identity_first`,
/// task 0 keeps the pixels in place (plain MNIST).
pub fn permuted_tasks(
    pixels: usize,
    tasks: usize,
    seed: u64,
    identity_first: bool,
) -> Result<Vec<PermutedTask>> {
    ensure!(
        pixels > 0,
        "permuted tasks need images of at least one pixel"
    );
    ensure!(tasks > 0, "permuted tasks: ask for at least one task");
    Ok((0..tasks)
        .map(|t| PermutedTask {
            index: t,
            permutation: if t == 0 && identity_first {
                (0..pixels).collect()
            } else {
                pixel_permutation(pixels, seed, t)
            },
        })
        .collect())
}
