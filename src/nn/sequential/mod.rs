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
//! Binary and ternary layers (`quantization` on a convolution or linear layer) hold their
//! hidden real weights while training ([`train`]); [`Sequential::quantized`] gives the
//! network with the ±1 (−1/0/+1) weights its forward pass uses, which is what is deployed
//! (on 2T2R pairs read by sense amplifiers, `nn::deploy`) and exported.
//!
//! Digital training by backpropagation is in [`train`]; PyTorch `state_dict` import and
//! export (safetensors, `.npy`) in [`state_dict`].

pub mod batch_norm;
pub use crate::linalg::conv;
pub mod pool;
pub mod spec;
pub mod state_dict;
pub mod train;

use super::binary::{self, Quantization};
use super::network::Classifier;
use crate::rng;
use crate::synapses::{DigitalSynapses, SynapticLayer};
use anyhow::{Context, Result, bail, ensure};
use batch_norm::{BatchNorm, Normalized};
use conv::ConvGeometry;
use pool::{PoolGeometry, PoolKind};
use rand::RngExt;
use spec::{LayerSpec, ResolvedLayer, Shape};

/// One stage of a [`Sequential`] network.
#[derive(Clone, Debug)]
pub enum Stage<S> {
    /// A convolution: kernel matrix on synapses, optionally one bias per output channel.
    Conv {
        /// The convolution's shape.
        geometry: ConvGeometry,
        /// The kernel matrix `C_out x (C_in·k·k)`.
        synapses: S,
        /// Bias per output channel (`None`: PyTorch's `bias=False`).
        bias: Option<Vec<f32>>,
        /// Binary or ternary weights (`None`: real weights).
        quantization: Option<Quantization>,
    },
    /// A fully connected layer: weights `out x in` on synapses, optionally one bias per
    /// output.
    Linear {
        /// The weight matrix.
        synapses: S,
        /// Bias per output (`None`: PyTorch's `bias=False`).
        bias: Option<Vec<f32>>,
        /// Binary or ternary weights (`None`: real weights).
        quantization: Option<Quantization>,
    },
    /// Batch normalisation of images of `pixels` pixels per channel (digital).
    BatchNorm {
        /// Parameters and running statistics.
        norm: BatchNorm,
        /// Pixels per channel of the images it normalises.
        pixels: usize,
    },
    /// `max(x, 0)`.
    Relu,
    /// The sign (binary) or ternary step of binarized and ternary networks.
    Step(Quantization),
    /// Max or average pooling (global average pooling is a window the size of the image).
    Pool(PoolGeometry),
    /// Images to flat vectors (a no-op on NCHW memory).
    Flatten,
    /// A residual block: `relu(body(x) + shortcut(x))`.
    Residual(Box<Residual<S>>),
}

/// A ResNet basic block: `body` is `conv1, bn1, relu, conv2, bn2` and `shortcut` is empty
/// (identity) or `downsample.0` (1 x 1 convolution), `downsample.1` (batch norm), the
/// module names of PyTorch's `BasicBlock`, which key its `state_dict`.
#[derive(Clone, Debug)]
pub struct Residual<S> {
    /// The residual branch.
    pub body: Vec<Stage<S>>,
    /// The shortcut branch (empty: identity).
    pub shortcut: Vec<Stage<S>>,
}

/// Module names of a [`Residual`] block's body, in order.
const BODY_NAMES: [&str; 5] = ["conv1", "bn1", "relu", "conv2", "bn2"];
/// Module names of a [`Residual`] block's projection shortcut, in order.
const SHORTCUT_NAMES: [&str; 2] = ["downsample.0", "downsample.1"];

/// Where a stage sits in a network: its PyTorch `state_dict` key prefix (`"3"`,
/// `"5.conv1"`, `"7.downsample.0"`) and the path of its random streams (`[3]`, `[5, 0]`:
/// the list index, then the index within a residual block, body first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Site {
    /// Key prefix of the stage's tensors.
    pub key: String,
    /// Stream path of the stage.
    pub path: Vec<u64>,
}

impl Site {
    fn top(index: usize) -> Site {
        Site {
            key: index.to_string(),
            path: vec![index as u64],
        }
    }

    /// The site of child `index` of the residual block at this site.
    fn child(&self, index: usize, body_len: usize) -> Site {
        let name = if index < body_len {
            BODY_NAMES.get(index).copied().unwrap_or("body")
        } else {
            SHORTCUT_NAMES
                .get(index - body_len)
                .copied()
                .unwrap_or("shortcut")
        };
        let mut path = self.path.clone();
        path.push(index as u64);
        Site {
            key: format!("{}.{name}", self.key),
            path,
        }
    }
}

impl<S> Stage<S> {
    /// The stage's synapses, if it has weights (convolution, linear).
    pub fn synapses(&self) -> Option<&S> {
        match self {
            Stage::Conv { synapses, .. } | Stage::Linear { synapses, .. } => Some(synapses),
            _ => None,
        }
    }

    /// The weight alphabet of a binary or ternary weighted stage (`None`: real weights, or
    /// no weights).
    pub fn quantization(&self) -> Option<Quantization> {
        match self {
            Stage::Conv { quantization, .. } | Stage::Linear { quantization, .. } => *quantization,
            _ => None,
        }
    }
}

impl<S> Residual<S> {
    /// The block's stages, body then shortcut.
    fn children(&self) -> impl Iterator<Item = &Stage<S>> {
        self.body.iter().chain(&self.shortcut)
    }

    fn children_mut(&mut self) -> impl Iterator<Item = &mut Stage<S>> {
        self.body.iter_mut().chain(&mut self.shortcut)
    }
}

/// Call `f` on every stage of `stages` (a network's list) with its [`Site`], depth first:
/// a residual block, then its body, then its shortcut.
fn visit_stages<'a, S>(stages: &'a [Stage<S>], f: &mut dyn FnMut(&Site, &'a Stage<S>)) {
    for (i, stage) in stages.iter().enumerate() {
        visit_stage(stage, &Site::top(i), f);
    }
}

fn visit_stage<'a, S>(stage: &'a Stage<S>, site: &Site, f: &mut dyn FnMut(&Site, &'a Stage<S>)) {
    f(site, stage);
    if let Stage::Residual(block) = stage {
        let n = block.body.len();
        for (j, child) in block.children().enumerate() {
            visit_stage(child, &site.child(j, n), f);
        }
    }
}

/// [`visit_stages`] with mutable stages.
fn visit_stages_mut<S>(stages: &mut [Stage<S>], f: &mut dyn FnMut(&Site, &mut Stage<S>)) {
    for (i, stage) in stages.iter_mut().enumerate() {
        visit_stage_mut(stage, &Site::top(i), f);
    }
}

fn visit_stage_mut<S>(stage: &mut Stage<S>, site: &Site, f: &mut dyn FnMut(&Site, &mut Stage<S>)) {
    f(site, stage);
    if let Stage::Residual(block) = stage {
        let n = block.body.len();
        for (j, child) in block.children_mut().enumerate() {
            visit_stage_mut(child, &site.child(j, n), f);
        }
    }
}

/// A sequential network of [`Stage`]s whose weights live on synapses of type `S`.
#[derive(Clone, Debug)]
pub struct Sequential<S> {
    input: [usize; 3],
    stages: Vec<Stage<S>>,
    classes: usize,
    /// The im2col buffer that inference passes reuse from one convolution to the next
    /// (a fresh buffer of tens of megabytes per convolution costs page faults).
    patches: Vec<f32>,
}

impl Sequential<DigitalSynapses> {
    /// A network of `layers` on inputs of shape `input` with PyTorch's default
    /// initialisation: `nn.Conv2d` and `nn.Linear` weights and biases uniform in
    /// `±1/√fan_in` (`fan_in = C_in·k·k` or the input features), batch norms with γ = 1,
    /// β = 0. The weighted layer at site path `p` draws from stream
    /// `(seed, [SEQUENTIAL_INIT_STREAM, p...])`.
    pub fn random(input: [usize; 3], layers: &[LayerSpec], seed: u64) -> Result<Self> {
        let resolved = spec::resolve(input, layers)?;
        let stages = resolved
            .iter()
            .enumerate()
            .map(|(i, layer)| {
                build_stage(layer, &Site::top(i), seed)
                    .with_context(|| format!("network.layers[{i}] ({})", spec::name(&layer.spec)))
            })
            .collect::<Result<Vec<_>>>()?;
        Sequential::new(input, stages)
    }
}

impl Sequential<DigitalSynapses> {
    /// The network as its forward pass sees it: every binary or ternary stage's hidden
    /// weights replaced by their quantised values (±1, or −1/0/+1 with the ternary
    /// threshold of `nn::binary`); real stages unchanged. Quantising twice changes nothing.
    pub fn quantized(&self) -> Self {
        let mut net = self.clone();
        quantize_weights(&mut net);
        net
    }
}

/// Replace the hidden weights of every binary or ternary stage of `net` by their quantised
/// values; the hidden weights, in visiting order of those stages.
pub(crate) fn quantize_weights(net: &mut Sequential<DigitalSynapses>) -> Vec<Vec<f32>> {
    let mut hidden = Vec::new();
    visit_stages_mut(&mut net.stages, &mut |_, stage| {
        let q = stage.quantization();
        if let (Some(q), Stage::Conv { synapses, .. } | Stage::Linear { synapses, .. }) = (q, stage)
        {
            let quantized = binary::quantize(synapses.weight(), q);
            hidden.push(synapses.weight().to_vec());
            synapses.weight_mut().copy_from_slice(&quantized);
        }
    });
    hidden
}

/// A digital stage for a resolved layer, its weights drawn from the site's stream.
fn build_stage(layer: &ResolvedLayer, site: &Site, seed: u64) -> Result<Stage<DigitalSynapses>> {
    let image = match layer.input {
        Shape::Image(shape) => Some(shape),
        Shape::Flat(_) => None,
    };
    Ok(match (&layer.spec, image) {
        (
            &LayerSpec::Conv2d {
                out,
                kernel,
                stride,
                padding,
                groups,
                bias,
                quantization,
            },
            Some(shape),
        ) => conv_stage(
            ConvGeometry::new(shape, out, kernel, stride, padding)?.grouped(groups)?,
            (bias, quantization),
            site,
            seed,
        )?,
        (
            &LayerSpec::Linear {
                out,
                bias,
                quantization,
            },
            None,
        ) => {
            let n_in = layer.input.len();
            let (weight, bias) = draw_weights(n_in, out, bias, site, seed);
            Stage::Linear {
                synapses: DigitalSynapses::new(n_in, out, weight)?,
                bias,
                quantization,
            }
        }
        (&LayerSpec::BatchNorm2d { eps, momentum }, Some([c, h, w])) => Stage::BatchNorm {
            norm: BatchNorm::new(c, eps, momentum),
            pixels: h * w,
        },
        (&LayerSpec::BatchNorm1d { eps, momentum }, None) => Stage::BatchNorm {
            norm: BatchNorm::new(layer.input.len(), eps, momentum),
            pixels: 1,
        },
        (&LayerSpec::Residual { out, stride }, Some(shape)) => {
            Stage::Residual(Box::new(basic_block(shape, out, stride, site, seed)?))
        }
        (LayerSpec::Relu, _) => Stage::Relu,
        (&LayerSpec::Step(q), _) => Stage::Step(q),
        (LayerSpec::Flatten, _) => Stage::Flatten,
        (spec, Some(shape)) => Stage::Pool(pool_geometry(spec, shape)?),
        (spec, None) => bail!("{} cannot take a flat vector", spec::name(spec)),
    })
}

/// A convolution stage with weights (and bias, if `bias`) drawn from the site's stream,
/// real or `quantization`; a grouped convolution's kernel matrix is block-diagonal.
fn conv_stage(
    geometry: ConvGeometry,
    (bias, quantization): (bool, Option<Quantization>),
    site: &Site,
    seed: u64,
) -> Result<Stage<DigitalSynapses>> {
    let (weight, bias) = draw_weights(
        geometry.block_inputs(),
        geometry.out_channels,
        bias,
        site,
        seed,
    );
    let synapses = DigitalSynapses::block_diagonal(
        geometry.groups,
        geometry.patch_len(),
        geometry.out_channels,
        weight,
    )?;
    Ok(Stage::Conv {
        geometry,
        synapses,
        bias,
        quantization,
    })
}

/// PyTorch's default initialisation of a layer of `outputs` outputs with `fan_in` inputs
/// each: `outputs x fan_in` weights (then biases) uniform in `±1/√fan_in`.
fn draw_weights(
    fan_in: usize,
    outputs: usize,
    bias: bool,
    site: &Site,
    seed: u64,
) -> (Vec<f32>, Option<Vec<f32>>) {
    let bound = 1.0 / (fan_in as f32).sqrt();
    let mut path = vec![rng::SEQUENTIAL_INIT_STREAM];
    path.extend(&site.path);
    let mut r = rng::stream(seed, &path);
    let weight = (0..fan_in * outputs)
        .map(|_| r.random_range(-bound..bound))
        .collect();
    let bias = bias.then(|| {
        (0..outputs)
            .map(|_| r.random_range(-bound..bound))
            .collect()
    });
    (weight, bias)
}

/// A basic block on inputs of `shape` (see [`Residual`]), its convolutions without bias.
fn basic_block(
    shape: [usize; 3],
    out: usize,
    stride: usize,
    site: &Site,
    seed: u64,
) -> Result<Residual<DigitalSynapses>> {
    let kernel = spec::RESIDUAL_KERNEL;
    let conv1 = ConvGeometry::new(shape, out, kernel, stride, 1)?;
    let mid = [out, conv1.out_h(), conv1.out_w()];
    let conv2 = ConvGeometry::new(mid, out, kernel, 1, 1)?;
    let pixels = conv2.pixels();
    let norm = || Stage::BatchNorm {
        norm: BatchNorm::new(out, spec::BATCH_NORM_EPS, spec::BATCH_NORM_MOMENTUM),
        pixels,
    };
    let body_len = BODY_NAMES.len();
    let body = vec![
        conv_stage(conv1, (false, None), &site.child(0, body_len), seed)?,
        norm(),
        Stage::Relu,
        conv_stage(conv2, (false, None), &site.child(3, body_len), seed)?,
        norm(),
    ];
    let shortcut = if stride != 1 || shape[0] != out {
        let projection = ConvGeometry::new(shape, out, 1, stride, 0)?;
        vec![
            conv_stage(
                projection,
                (false, None),
                &site.child(body_len, body_len),
                seed,
            )?,
            norm(),
        ]
    } else {
        Vec::new()
    };
    Ok(Residual { body, shortcut })
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
    /// with class scores: a linear layer, optionally followed by a batch norm of its
    /// outputs (the batch-normed logits of binarized networks).
    pub fn new(input: [usize; 3], stages: Vec<Stage<S>>) -> Result<Self> {
        let len = check_stages(&stages, input.iter().product())?;
        let classes = match stages.as_slice() {
            [.., Stage::Linear { .. }] | [.., Stage::Linear { .. }, Stage::BatchNorm { .. }] => len,
            _ => bail!(
                "a network must end with a linear layer (class scores), optionally followed by \
                 a batch norm of its outputs"
            ),
        };
        Ok(Sequential {
            input,
            stages,
            classes,
            patches: Vec::new(),
        })
    }

    /// The stages of the list, input first (residual blocks hold their own).
    pub fn stages(&self) -> &[Stage<S>] {
        &self.stages
    }

    /// The stages, mutable (to read a stage's synapses on their own).
    pub fn stages_mut(&mut self) -> &mut [Stage<S>] {
        &mut self.stages
    }

    /// Every weighted stage's synapses with its site, in visiting order (list order; inside
    /// a residual block, body then shortcut).
    pub fn synapses(&self) -> Vec<(Site, &S)> {
        let mut found = Vec::new();
        visit_stages(&self.stages, &mut |site, stage| {
            if let Some(s) = stage.synapses() {
                found.push((site.clone(), s));
            }
        });
        found
    }

    /// The same network with every weighted stage's synapses replaced by
    /// `make(site, synapses, quantization)` (e.g. programmed onto crossbar tiles, binary and
    /// ternary stages onto 2T2R pairs); biases, batch norms, activations and pooling are
    /// kept.
    pub fn map_synapses<T: SynapticLayer>(
        &self,
        mut make: impl FnMut(&Site, &S, Option<Quantization>) -> Result<T>,
    ) -> Result<Sequential<T>> {
        let stages = self
            .stages
            .iter()
            .enumerate()
            .map(|(i, stage)| map_stage(stage, &Site::top(i), &mut make))
            .collect::<Result<Vec<_>>>()?;
        Sequential::new(self.input, stages)
    }
}

/// A stage with its synapses (and those of a residual block's stages) made by `make`.
fn map_stage<S, T>(
    stage: &Stage<S>,
    site: &Site,
    make: &mut impl FnMut(&Site, &S, Option<Quantization>) -> Result<T>,
) -> Result<Stage<T>> {
    let q = stage.quantization();
    let mut build = |s: &S| make(site, s, q).with_context(|| format!("stage {}", site.key));
    Ok(match stage {
        Stage::Conv {
            geometry,
            synapses,
            bias,
            quantization,
        } => Stage::Conv {
            geometry: *geometry,
            synapses: build(synapses)?,
            bias: bias.clone(),
            quantization: *quantization,
        },
        Stage::Linear {
            synapses,
            bias,
            quantization,
        } => Stage::Linear {
            synapses: build(synapses)?,
            bias: bias.clone(),
            quantization: *quantization,
        },
        Stage::BatchNorm { norm, pixels } => Stage::BatchNorm {
            norm: norm.clone(),
            pixels: *pixels,
        },
        Stage::Relu => Stage::Relu,
        Stage::Step(q) => Stage::Step(*q),
        Stage::Pool(g) => Stage::Pool(*g),
        Stage::Flatten => Stage::Flatten,
        Stage::Residual(block) => {
            let n = block.body.len();
            let mut children = block
                .children()
                .enumerate()
                .map(|(j, child)| map_stage(child, &site.child(j, n), make))
                .collect::<Result<Vec<_>>>()?;
            let shortcut = children.split_off(n);
            Stage::Residual(Box::new(Residual {
                body: children,
                shortcut,
            }))
        }
    })
}

/// Check that consecutive stages fit, from `len` values per example; the values per
/// example after the last stage.
fn check_stages<S: SynapticLayer>(stages: &[Stage<S>], mut len: usize) -> Result<usize> {
    for (i, stage) in stages.iter().enumerate() {
        len = check_stage(stage, len).with_context(|| format!("stage {i}"))?;
    }
    Ok(len)
}

fn check_stage<S: SynapticLayer>(stage: &Stage<S>, len: usize) -> Result<usize> {
    let (inputs, outputs) = match stage {
        Stage::Conv {
            geometry,
            synapses,
            bias,
            ..
        } => {
            check_weights(
                synapses,
                geometry.patch_len(),
                geometry.out_channels,
                bias.as_deref(),
            )?;
            ensure!(
                synapses.blocks() == geometry.groups,
                "a convolution of {} groups needs a kernel matrix of as many diagonal blocks, \
                 got {}",
                geometry.groups,
                synapses.blocks()
            );
            (
                geometry.input_len(),
                geometry.out_channels * geometry.pixels(),
            )
        }
        Stage::Linear { synapses, bias, .. } => {
            check_weights(
                synapses,
                synapses.inputs(),
                synapses.outputs(),
                bias.as_deref(),
            )?;
            (synapses.inputs(), synapses.outputs())
        }
        Stage::BatchNorm { norm, pixels } => {
            let n = norm.channels() * pixels;
            ensure!(
                norm.beta.len() == norm.channels()
                    && norm.running_mean.len() == norm.channels()
                    && norm.running_var.len() == norm.channels(),
                "batch norm parameters of different lengths"
            );
            (n, n)
        }
        Stage::Pool(g) => (
            g.channels * g.in_h * g.in_w,
            g.channels * g.out_h() * g.out_w(),
        ),
        Stage::Relu | Stage::Step(_) | Stage::Flatten => (len, len),
        Stage::Residual(block) => {
            let body = check_stages(&block.body, len).context("residual body")?;
            let shortcut = check_stages(&block.shortcut, len).context("residual shortcut")?;
            ensure!(
                body == shortcut,
                "residual body gives {body} values per example but the shortcut {shortcut}"
            );
            (len, body)
        }
    };
    ensure!(
        inputs == len,
        "takes {inputs} values per example but receives {len}"
    );
    Ok(outputs)
}

/// Check that a weighted stage's synapses are `outputs x inputs` with one bias per output
/// (if it has biases).
fn check_weights<S: SynapticLayer>(
    synapses: &S,
    inputs: usize,
    outputs: usize,
    bias: Option<&[f32]>,
) -> Result<()> {
    let biases = bias.map_or(outputs, <[f32]>::len);
    ensure!(
        synapses.inputs() == inputs && synapses.outputs() == outputs && biases == outputs,
        "weights of {} x {} and {biases} biases, expected {outputs} x {inputs} and {outputs}",
        synapses.outputs(),
        synapses.inputs(),
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
        Ok(self.forward(x, batch, Pass::Infer)?.0)
    }
}

/// What a forward pass computes and keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pass {
    /// Inference: batch norms use their running statistics; nothing is kept.
    Infer,
    /// Inference that keeps what every stage read (for ADC calibration).
    Record,
    /// Training: batch norms use (and update) the batch statistics; everything the
    /// backward pass needs is kept.
    Train,
}

impl Pass {
    fn saves(self) -> bool {
        self != Pass::Infer
    }
}

/// What a stage's backward pass needs from its forward pass.
pub(crate) enum Saved {
    /// A convolution's im2col patches.
    Patches(Vec<f32>),
    /// The stage's input (linear, ReLU, pooling).
    Input(Vec<f32>),
    /// A training-mode batch norm's normalised input.
    Normalized(Normalized),
    /// A residual block's: its body's and shortcut's, and the sum before the final ReLU.
    Block {
        /// The body's stages'.
        body: Vec<Saved>,
        /// The shortcut's stages'.
        shortcut: Vec<Saved>,
        /// `body(x) + shortcut(x)`.
        sum: Vec<f32>,
    },
    /// Nothing (flatten, or not saved).
    Nothing,
}

impl Saved {
    /// What the stage at stream path `path` (a [`Site::path`]) of a network kept, given
    /// what every stage of the list kept.
    pub(crate) fn at<'a>(saved: &'a [Saved], path: &[u64]) -> Option<&'a Saved> {
        let (&first, rest) = path.split_first()?;
        let here = saved.get(first as usize)?;
        match (rest.first(), here) {
            (None, _) => Some(here),
            (Some(&j), Saved::Block { body, shortcut, .. }) => {
                let j = j as usize;
                let (list, k) = if j < body.len() {
                    (body, j)
                } else {
                    (shortcut, j - body.len())
                };
                let mut inner = vec![k as u64];
                inner.extend(&rest[1..]);
                Saved::at(list, &inner)
            }
            _ => None,
        }
    }

    /// The values a weighted stage read (im2col patches or input vectors), if kept.
    pub(crate) fn reads(&self) -> &[f32] {
        match self {
            Saved::Patches(v) | Saved::Input(v) => v,
            _ => &[],
        }
    }
}

impl<S: SynapticLayer> Sequential<S> {
    /// The forward pass of a batch, with what every stage keeps for `pass`.
    pub(crate) fn forward(
        &mut self,
        x: &[f32],
        batch: usize,
        pass: Pass,
    ) -> Result<(Vec<f32>, Vec<Saved>)> {
        forward_stages(&mut self.stages, x, (batch, pass), &mut self.patches)
    }
}

/// Run `stages` on a batch in order (`patches`: the im2col buffer of passes that keep
/// nothing).
fn forward_stages<S: SynapticLayer>(
    stages: &mut [Stage<S>],
    x: &[f32],
    (batch, pass): (usize, Pass),
    patches: &mut Vec<f32>,
) -> Result<(Vec<f32>, Vec<Saved>)> {
    let mut act = x.to_vec();
    let mut saved = Vec::with_capacity(if pass.saves() { stages.len() } else { 0 });
    for (i, stage) in stages.iter_mut().enumerate() {
        let (out, keep) = forward_stage(stage, &act, (batch, pass), patches)
            .with_context(|| format!("stage {i}"))?;
        if pass.saves() {
            saved.push(keep);
        }
        act = out;
    }
    Ok((act, saved))
}

/// One stage's forward pass on a batch (and what it keeps for `pass`); a convolution of a
/// pass that keeps nothing builds its im2col patches in `patches`.
fn forward_stage<S: SynapticLayer>(
    stage: &mut Stage<S>,
    x: &[f32],
    (batch, pass): (usize, Pass),
    patches: &mut Vec<f32>,
) -> Result<(Vec<f32>, Saved)> {
    let input = |x: &[f32]| {
        if pass.saves() {
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
            ..
        } => {
            let reads = batch * geometry.pixels();
            let mut y = vec![0f32; reads * geometry.out_channels];
            let keep = if pass.saves() {
                let cols = geometry.im2col(x, batch);
                synapses.forward(&cols, reads, &mut y)?;
                Saved::Patches(cols)
            } else {
                let source = |g, rows, out: &mut [f32]| geometry.im2col_rows(x, g, rows, out);
                synapses.forward_generated(reads, &source, patches, &mut y)?;
                Saved::Nothing
            };
            (
                geometry.pixels_to_channels(&y, batch, bias.as_deref()),
                keep,
            )
        }
        Stage::Linear { synapses, bias, .. } => {
            let mut y = vec![0f32; batch * synapses.outputs()];
            synapses.forward(x, batch, &mut y)?;
            if let Some(bias) = bias {
                for row in y.chunks_mut(bias.len()) {
                    row.iter_mut().zip(bias.iter()).for_each(|(v, b)| *v += b);
                }
            }
            (y, input(x))
        }
        Stage::BatchNorm { norm, pixels } => match pass {
            Pass::Train => {
                let (y, normalized) = norm.train(x, *pixels)?;
                (y, Saved::Normalized(normalized))
            }
            Pass::Infer | Pass::Record => (norm.infer(x, *pixels), Saved::Nothing),
        },
        Stage::Relu => (x.iter().map(|v| v.max(0.0)).collect(), input(x)),
        Stage::Step(q) => (
            x.iter().map(|&v| binary::activate(v, *q)).collect(),
            input(x),
        ),
        Stage::Pool(g) => (g.forward(x), input(x)),
        Stage::Flatten => (x.to_vec(), Saved::Nothing),
        Stage::Residual(block) => {
            let (mut sum, body) = forward_stages(&mut block.body, x, (batch, pass), patches)
                .context("residual body")?;
            let (short, shortcut) = forward_stages(&mut block.shortcut, x, (batch, pass), patches)
                .context("residual shortcut")?;
            sum.iter_mut().zip(&short).for_each(|(s, v)| *s += v);
            let out = sum.iter().map(|v| v.max(0.0)).collect();
            let keep = if pass.saves() {
                Saved::Block {
                    body,
                    shortcut,
                    sum,
                }
            } else {
                Saved::Nothing
            };
            (out, keep)
        }
    })
}
