//! Sequential networks with convolutions: a list of layers mirroring a PyTorch
//! `nn.Sequential` (see [`spec`]), whose weighted layers — `Conv2d` and `Linear` — hold
//! their weights through the synapse seam ([`SynapticLayer`]), so the same network runs on
//! digital weights ([`DigitalSynapses`]) or on crossbar tiles ([`Sequential::map_synapses`]).
//!
//! A convolution is one batched forward read of its kernel matrix `C_out x (C_in·k·k)`
//! with the im2col patches of every output pixel ([`conv`]): on tiles, every output pixel
//! is one analog read of its input patch (DAC, read noise, ADC and ledger per read).
//! Biases, ReLU and pooling ([`pool`]) are digital. Activations are NCHW, row-major.
//!
//! Digital training by backpropagation is in [`train`]; PyTorch `state_dict` import and
//! export (safetensors, `.npy`) in [`state_dict`].

pub mod conv;
pub mod pool;
pub mod spec;
pub mod state_dict;
pub mod train;

use super::network::Classifier;
use crate::rng;
use crate::synapses::{DigitalSynapses, SynapticLayer};
use anyhow::{Context, Result, bail, ensure};
use conv::ConvGeometry;
use pool::{PoolGeometry, PoolKind};
use rand::RngExt;
use spec::{LayerSpec, Shape};

/// One stage of a [`Sequential`] network.
#[derive(Clone, Debug)]
pub enum Stage<S> {
    /// A convolution: kernel matrix on synapses, one bias per output channel.
    Conv {
        /// The convolution's shape.
        geometry: ConvGeometry,
        /// The kernel matrix `C_out x (C_in·k·k)`.
        synapses: S,
        /// Bias per output channel.
        bias: Vec<f32>,
    },
    /// A fully connected layer: weights `out x in` on synapses, one bias per output.
    Linear {
        /// The weight matrix.
        synapses: S,
        /// Bias per output.
        bias: Vec<f32>,
    },
    /// `max(x, 0)`.
    Relu,
    /// Max or average pooling (global average pooling is a window the size of the image).
    Pool(PoolGeometry),
    /// Images to flat vectors (a no-op on NCHW memory).
    Flatten,
}

impl<S> Stage<S> {
    /// The stage's synapses, if it has weights (convolution, linear).
    pub fn synapses(&self) -> Option<&S> {
        match self {
            Stage::Conv { synapses, .. } | Stage::Linear { synapses, .. } => Some(synapses),
            _ => None,
        }
    }
}

/// A sequential network of [`Stage`]s whose weights live on synapses of type `S`.
#[derive(Clone, Debug)]
pub struct Sequential<S> {
    input: [usize; 3],
    stages: Vec<Stage<S>>,
    classes: usize,
}

impl Sequential<DigitalSynapses> {
    /// A network of `layers` on inputs of shape `input` with PyTorch's default
    /// initialisation of `nn.Conv2d` and `nn.Linear`: weights and biases uniform in
    /// `±1/√fan_in` (`fan_in = C_in·k·k` or the input features); weighted layer `i` of the
    /// list draws from stream `(seed, [SEQUENTIAL_INIT_STREAM, i])`.
    pub fn random(input: [usize; 3], layers: &[LayerSpec], seed: u64) -> Result<Self> {
        let resolved = spec::resolve(input, layers)?;
        let mut stages = Vec::with_capacity(layers.len());
        for (i, layer) in resolved.iter().enumerate() {
            let draw = |inputs: usize, outputs: usize| -> Result<(DigitalSynapses, Vec<f32>)> {
                let bound = 1.0 / (inputs as f32).sqrt();
                let mut r = rng::stream(seed, &[rng::SEQUENTIAL_INIT_STREAM, i as u64]);
                let weight = (0..inputs * outputs)
                    .map(|_| r.random_range(-bound..bound))
                    .collect();
                let bias = (0..outputs)
                    .map(|_| r.random_range(-bound..bound))
                    .collect();
                Ok((DigitalSynapses::new(inputs, outputs, weight)?, bias))
            };
            stages.push(match (&layer.spec, layer.input) {
                (
                    &LayerSpec::Conv2d {
                        out,
                        kernel,
                        stride,
                        padding,
                    },
                    Shape::Image(shape),
                ) => {
                    let geometry = ConvGeometry::new(shape, out, kernel, stride, padding)?;
                    let (synapses, bias) = draw(geometry.patch_len(), out)?;
                    Stage::Conv {
                        geometry,
                        synapses,
                        bias,
                    }
                }
                (&LayerSpec::Linear { out }, Shape::Flat(n)) => {
                    let (synapses, bias) = draw(n, out)?;
                    Stage::Linear { synapses, bias }
                }
                (LayerSpec::Relu, _) => Stage::Relu,
                (LayerSpec::Flatten, _) => Stage::Flatten,
                (spec, Shape::Image(shape)) => Stage::Pool(pool_geometry(spec, shape)?),
                (spec, shape) => bail!(
                    "network.layers[{i}] ({}) cannot take {shape:?}",
                    spec::name(spec)
                ),
            });
        }
        Sequential::new(input, stages)
    }
}

/// The pooling geometry of a pooling layer on images of shape `shape`.
fn pool_geometry(spec: &LayerSpec, shape: [usize; 3]) -> Result<PoolGeometry> {
    match *spec {
        LayerSpec::MaxPool2d { kernel, stride } => {
            PoolGeometry::new(PoolKind::Max, shape, kernel, stride)
        }
        LayerSpec::AvgPool2d { kernel, stride } => {
            PoolGeometry::new(PoolKind::Average, shape, kernel, stride)
        }
        LayerSpec::GlobalAvgPool => {
            let [c, h, w] = shape;
            ensure!(
                h == w,
                "global average pooling needs square images, got {h} x {w}"
            );
            PoolGeometry::new(PoolKind::Average, [c, h, w], h, h)
        }
        _ => bail!("{} is not a pooling layer", spec::name(spec)),
    }
}

impl<S: SynapticLayer> Sequential<S> {
    /// A network from its stages, checking that consecutive shapes fit and that it ends
    /// with class scores (a linear layer).
    pub fn new(input: [usize; 3], stages: Vec<Stage<S>>) -> Result<Self> {
        let mut len = input.iter().product::<usize>();
        let mut classes = None;
        for (i, stage) in stages.iter().enumerate() {
            let (inputs, outputs) = match stage {
                Stage::Conv {
                    geometry,
                    synapses,
                    bias,
                } => {
                    check_weights(
                        i,
                        synapses,
                        geometry.patch_len(),
                        geometry.out_channels,
                        bias,
                    )?;
                    (
                        geometry.input_len(),
                        geometry.out_channels * geometry.pixels(),
                    )
                }
                Stage::Linear { synapses, bias } => {
                    check_weights(i, synapses, synapses.inputs(), synapses.outputs(), bias)?;
                    (synapses.inputs(), synapses.outputs())
                }
                Stage::Pool(g) => (
                    g.channels * g.in_h * g.in_w,
                    g.channels * g.out_h() * g.out_w(),
                ),
                Stage::Relu | Stage::Flatten => (len, len),
            };
            ensure!(
                inputs == len,
                "stage {i} takes {inputs} values per example but receives {len}"
            );
            len = outputs;
            classes = matches!(stage, Stage::Linear { .. }).then_some(outputs);
        }
        let classes = classes.context("a network must end with a linear layer (class scores)")?;
        Ok(Sequential {
            input,
            stages,
            classes,
        })
    }

    /// The stages, input first.
    pub fn stages(&self) -> &[Stage<S>] {
        &self.stages
    }

    /// The stages, mutable (to read a stage's synapses on their own).
    pub fn stages_mut(&mut self) -> &mut [Stage<S>] {
        &mut self.stages
    }

    /// The same network with every weighted stage's synapses replaced by
    /// `make(index, synapses)` (e.g. programmed onto crossbar tiles); biases, activations
    /// and pooling are kept.
    pub fn map_synapses<T: SynapticLayer>(
        &self,
        mut make: impl FnMut(usize, &S) -> Result<T>,
    ) -> Result<Sequential<T>> {
        let stages = self
            .stages
            .iter()
            .enumerate()
            .map(|(i, stage)| {
                let mut build = |s: &S| make(i, s).with_context(|| format!("stage {i}"));
                Ok(match stage {
                    Stage::Conv {
                        geometry,
                        synapses,
                        bias,
                    } => Stage::Conv {
                        geometry: *geometry,
                        synapses: build(synapses)?,
                        bias: bias.clone(),
                    },
                    Stage::Linear { synapses, bias } => Stage::Linear {
                        synapses: build(synapses)?,
                        bias: bias.clone(),
                    },
                    Stage::Relu => Stage::Relu,
                    Stage::Pool(g) => Stage::Pool(*g),
                    Stage::Flatten => Stage::Flatten,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Sequential::new(self.input, stages)
    }
}

/// Check that a weighted stage's synapses are `outputs x inputs` with one bias per output.
fn check_weights<S: SynapticLayer>(
    stage: usize,
    synapses: &S,
    inputs: usize,
    outputs: usize,
    bias: &[f32],
) -> Result<()> {
    ensure!(
        synapses.inputs() == inputs && synapses.outputs() == outputs && bias.len() == outputs,
        "stage {stage}: weights of {} x {} and {} biases, expected {outputs} x {inputs} and \
         {outputs}",
        synapses.outputs(),
        synapses.inputs(),
        bias.len()
    );
    Ok(())
}

impl<S: SynapticLayer> Classifier for Sequential<S> {
    fn inputs(&self) -> usize {
        self.input.iter().product()
    }

    fn classes(&self) -> usize {
        self.classes
    }

    fn logits(&mut self, x: &[f32], batch: usize) -> Result<Vec<f32>> {
        self.check_inputs(x, batch)?;
        Ok(self.forward(x, batch, false)?.0)
    }
}

/// What a stage's backward pass needs from its forward pass.
pub(crate) enum Saved {
    /// A convolution's im2col patches.
    Patches(Vec<f32>),
    /// The stage's input (linear, ReLU, pooling).
    Input(Vec<f32>),
    /// Nothing (flatten, or not saved).
    Nothing,
}

impl<S: SynapticLayer> Sequential<S> {
    /// The forward pass of a batch; with `save`, what every stage's backward pass needs.
    pub(crate) fn forward(
        &mut self,
        x: &[f32],
        batch: usize,
        save: bool,
    ) -> Result<(Vec<f32>, Vec<Saved>)> {
        let mut act = x.to_vec();
        let mut saved = Vec::with_capacity(if save { self.stages.len() } else { 0 });
        for (i, stage) in self.stages.iter_mut().enumerate() {
            let (out, keep) =
                forward_stage(stage, &act, batch, save).with_context(|| format!("stage {i}"))?;
            if save {
                saved.push(keep);
            }
            act = out;
        }
        Ok((act, saved))
    }
}

/// One stage's forward pass on a batch (and, with `save`, what its backward pass needs).
fn forward_stage<S: SynapticLayer>(
    stage: &mut Stage<S>,
    x: &[f32],
    batch: usize,
    save: bool,
) -> Result<(Vec<f32>, Saved)> {
    let input = |x: &[f32]| {
        if save {
            Saved::Input(x.to_vec())
        } else {
            Saved::Nothing
        }
    };
    Ok(match stage {
        Stage::Conv {
            geometry,
            synapses,
            bias,
        } => {
            let cols = geometry.im2col(x, batch);
            let reads = batch * geometry.pixels();
            let mut y = vec![0f32; reads * geometry.out_channels];
            synapses.forward(&cols, reads, &mut y)?;
            let out = geometry.pixels_to_channels(&y, batch, bias);
            (
                out,
                if save {
                    Saved::Patches(cols)
                } else {
                    Saved::Nothing
                },
            )
        }
        Stage::Linear { synapses, bias } => {
            let mut y = vec![0f32; batch * synapses.outputs()];
            synapses.forward(x, batch, &mut y)?;
            for row in y.chunks_mut(bias.len()) {
                row.iter_mut().zip(bias.iter()).for_each(|(v, b)| *v += b);
            }
            (y, input(x))
        }
        Stage::Relu => (x.iter().map(|v| v.max(0.0)).collect(), input(x)),
        Stage::Pool(g) => (g.forward(x), input(x)),
        Stage::Flatten => (x.to_vec(), Saved::Nothing),
    })
}
