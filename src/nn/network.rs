//! Feed-forward networks over the synapse seam.
//!
//! A layer's matrix product is a [`SynapticLayer`]'s forward read: digital weights
//! ([`crate::nn::Dense`], binary/ternary weight matrices) and the crossbar-backed synapses
//! of `crate::synapses` implement it alike, so the same network runs on simulated devices.
//! Everything after the product — bias, ReLU, the folded batch-norm thresholds of binary
//! networks — is a digital [`Neuron`] stage, so a [`Network`] of any synapse type runs the
//! same inference code, and [`evaluate`] measures its accuracy.

use crate::data::{Dataset, shape_text};
use crate::synapses::SynapticLayer;
use anyhow::{Context, Result, bail, ensure};

/// Images per inference call in [`evaluate`] (bounds the activation memory).
const EVAL_BATCH: usize = 500;

/// A network that maps a batch of inputs to class scores.
pub trait Classifier {
    /// Features per input vector.
    fn inputs(&self) -> usize;
    /// Number of classes (scores per input).
    fn classes(&self) -> usize;
    /// Class scores (`batch x classes`, row-major) of `batch` row-major input vectors.
    fn logits(&mut self, x: &[f32], batch: usize) -> Result<Vec<f32>>;

    /// Check that `x` holds `batch` input vectors (for implementations of `logits`).
    fn check_inputs(&self, x: &[f32], batch: usize) -> Result<()> {
        ensure!(
            x.len() == batch * self.inputs(),
            "input holds {} values, expected {batch} vectors of {}",
            x.len(),
            self.inputs()
        );
        Ok(())
    }
}

/// Index of the largest score in each row of `scores` (`classes` per row; first on ties).
pub fn argmax_rows(scores: &[f32], classes: usize) -> Vec<usize> {
    scores
        .chunks_exact(classes.max(1))
        .map(|row| {
            let mut best = 0;
            for (j, &s) in row.iter().enumerate() {
                if s > row[best] {
                    best = j;
                }
            }
            best
        })
        .collect()
}

/// Check that a data set fits a network: feature count and label range.
pub fn check_data_fits(inputs: usize, classes: usize, data: &Dataset) -> Result<()> {
    if data.features() != inputs {
        bail!(
            "the network takes {inputs} inputs but the data set's images have {} values \
             ({}, channels x rows x cols): use a network whose first layer has {} inputs",
            data.features(),
            shape_text(data.shape()),
            data.features()
        );
    }
    if let Some(&bad) = data.labels.iter().find(|&&l| usize::from(l) >= classes) {
        bail!(
            "the data set has label {bad} but the network has only {classes} outputs: \
             the last layer needs at least {} outputs",
            usize::from(bad) + 1
        );
    }
    Ok(())
}

/// Fraction of `data` that `net` classifies correctly (inference only, in batches).
pub fn evaluate<C: Classifier + ?Sized>(net: &mut C, data: &Dataset) -> Result<f64> {
    check_data_fits(net.inputs(), net.classes(), data)?;
    ensure!(!data.is_empty(), "cannot evaluate on an empty data set");
    let d = data.features();
    let mut correct = 0usize;
    for start in (0..data.len()).step_by(EVAL_BATCH) {
        let end = (start + EVAL_BATCH).min(data.len());
        let scores = net
            .logits(&data.images[start * d..end * d], end - start)
            .with_context(|| format!("inference on images {start}..{end}"))?;
        ensure!(
            scores.len() == (end - start) * net.classes(),
            "inference on images {start}..{end} returned {} scores, expected {} images x {} \
             classes",
            scores.len(),
            end - start,
            net.classes()
        );
        let predicted = argmax_rows(&scores, net.classes());
        correct += predicted
            .iter()
            .zip(&data.labels[start..end])
            .filter(|&(&p, &l)| p == usize::from(l))
            .count();
    }
    Ok(correct as f64 / data.len() as f64)
}

/// What each output neuron of a layer does with its summed input `y` (digital periphery).
#[derive(Clone, Debug, PartialEq)]
pub enum Neuron {
    /// `max(y + bias, 0)`: a hidden layer of a real-valued MLP.
    BiasRelu(Vec<f32>),
    /// `y + bias`: the output layer of a real-valued MLP.
    Bias(Vec<f32>),
    /// `+1` if `y ≥ threshold`, else `-1`: a binary neuron with folded batch norm.
    Sign(Vec<f32>),
    /// `+1` if `y > high`, `-1` if `y < low`, else `0`: a ternary neuron with folded
    /// batch norm (`low ≤ high`).
    Ternary {
        /// Lower threshold per neuron.
        low: Vec<f32>,
        /// Upper threshold per neuron.
        high: Vec<f32>,
    },
    /// `scale · y + offset`: an output layer with folded batch norm.
    Affine {
        /// Multiplier per neuron.
        scale: Vec<f32>,
        /// Offset per neuron.
        offset: Vec<f32>,
    },
}

impl Neuron {
    /// Number of neurons this stage is defined for.
    pub fn len(&self) -> usize {
        match self {
            Neuron::BiasRelu(b) | Neuron::Bias(b) | Neuron::Sign(b) => b.len(),
            Neuron::Ternary { low, .. } => low.len(),
            Neuron::Affine { scale, .. } => scale.len(),
        }
    }

    /// Whether the stage has no neuron.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn check(&self) -> Result<()> {
        match self {
            Neuron::Ternary { low, high } => {
                ensure!(
                    low.len() == high.len(),
                    "ternary neurons: {} low but {} high thresholds",
                    low.len(),
                    high.len()
                );
                ensure!(
                    low.iter().zip(high).all(|(l, h)| l <= h),
                    "ternary neurons: every low threshold must be ≤ its high threshold"
                );
            }
            Neuron::Affine { scale, offset } => {
                ensure!(
                    scale.len() == offset.len(),
                    "affine neurons: {} scales but {} offsets",
                    scale.len(),
                    offset.len()
                );
            }
            _ => {}
        }
        Ok(())
    }

    /// Apply the stage in place to `y` (`batch x len` row-major).
    pub fn apply(&self, y: &mut [f32]) {
        let n = self.len().max(1);
        for row in y.chunks_exact_mut(n) {
            match self {
                Neuron::BiasRelu(b) => row
                    .iter_mut()
                    .zip(b)
                    .for_each(|(v, b)| *v = (*v + b).max(0.0)),
                Neuron::Bias(b) => row.iter_mut().zip(b).for_each(|(v, b)| *v += b),
                Neuron::Sign(t) => row
                    .iter_mut()
                    .zip(t)
                    .for_each(|(v, t)| *v = if *v >= *t { 1.0 } else { -1.0 }),
                Neuron::Ternary { low, high } => {
                    for ((v, l), h) in row.iter_mut().zip(low).zip(high) {
                        *v = if *v > *h {
                            1.0
                        } else if *v < *l {
                            -1.0
                        } else {
                            0.0
                        };
                    }
                }
                Neuron::Affine { scale, offset } => {
                    for ((v, s), o) in row.iter_mut().zip(scale).zip(offset) {
                        *v = *v * s + o;
                    }
                }
            }
        }
    }
}

/// One layer of a [`Network`]: a matrix product followed by a neuron stage.
#[derive(Clone, Debug)]
pub struct Layer<Op> {
    /// The matrix product (digital weights or synapses on a crossbar).
    pub op: Op,
    /// What the neurons do with the product.
    pub neuron: Neuron,
}

/// A feed-forward network whose matrix products are the forward reads of [`SynapticLayer`]s.
#[derive(Clone, Debug)]
pub struct Network<Op> {
    layers: Vec<Layer<Op>>,
    input_threshold: Option<f32>,
}

impl<Op: SynapticLayer> Network<Op> {
    /// Build a network, checking that consecutive layer sizes match.
    pub fn new(layers: Vec<Layer<Op>>) -> Result<Self> {
        ensure!(!layers.is_empty(), "a network needs at least one layer");
        for (i, layer) in layers.iter().enumerate() {
            layer.neuron.check().with_context(|| format!("layer {i}"))?;
            ensure!(
                layer.neuron.len() == layer.op.outputs(),
                "layer {i}: the matrix has {} outputs but the neuron stage has {} neurons",
                layer.op.outputs(),
                layer.neuron.len()
            );
            if i > 0 {
                let prev = layers[i - 1].op.outputs();
                ensure!(
                    layer.op.inputs() == prev,
                    "layer {i} takes {} inputs but layer {} has {prev} outputs",
                    layer.op.inputs(),
                    i - 1
                );
            }
        }
        Ok(Network {
            layers,
            input_threshold: None,
        })
    }

    /// Binarise every input before the first layer: `+1` if `x ≥ threshold`, else `-1`
    /// (binary networks whose first layer also takes ±1 inputs).
    pub fn with_binary_input(mut self, threshold: f32) -> Self {
        self.input_threshold = Some(threshold);
        self
    }

    /// The input binarisation threshold, if inputs are binarised.
    pub fn input_threshold(&self) -> Option<f32> {
        self.input_threshold
    }

    /// The layers, input first.
    pub fn layers(&self) -> &[Layer<Op>] {
        &self.layers
    }

    /// The layers, mutable (to reprogram or perturb operators between inferences).
    pub fn layers_mut(&mut self) -> &mut [Layer<Op>] {
        &mut self.layers
    }
}

impl<Op: SynapticLayer> Classifier for Network<Op> {
    fn inputs(&self) -> usize {
        self.layers[0].op.inputs()
    }

    fn classes(&self) -> usize {
        self.layers[self.layers.len() - 1].op.outputs()
    }

    fn logits(&mut self, x: &[f32], batch: usize) -> Result<Vec<f32>> {
        self.check_inputs(x, batch)?;
        let mut act = match self.input_threshold {
            Some(t) => x.iter().map(|&v| if v >= t { 1.0 } else { -1.0 }).collect(),
            None => x.to_vec(),
        };
        for (i, layer) in self.layers.iter_mut().enumerate() {
            let mut y = vec![0.0; batch * layer.op.outputs()];
            layer
                .op
                .forward(&act, batch, &mut y)
                .with_context(|| format!("layer {i}"))?;
            layer.neuron.apply(&mut y);
            act = y;
        }
        Ok(act)
    }
}
