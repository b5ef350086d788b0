//! Network descriptions that mirror a PyTorch `nn.Sequential` index for index: a list of
//! layers, each a name (`"relu"`, `"flatten"`, `"global_avgpool"`) or a one-key table
//! (`{ conv2d = { out = 6, kernel = 5, padding = 2 } }`, `{ maxpool2d = 2 }`,
//! `{ linear = 120 }`), and the shapes they produce from the input shape `[C, H, W]`.
//! Errors name the layer's index in the list, as PyTorch numbers the modules of a
//! `Sequential` (and its `state_dict` keys: `0.weight`, `3.weight`, ...).
//!
//! Binary and ternary networks (BNN/TNN) are the same lists with
//! `quantization = "binary"` (or `"ternary"`) on their convolutions and linear layers and
//! the step activations `"sign"` / `"ternary"` in place of ReLU (see `docs/NETWORKS.md`).

use super::pool::{PoolGeometry, PoolKind};
use crate::linalg::conv::ConvGeometry;
use crate::nn::binary::Quantization;
use anyhow::{Context, Result, bail, ensure};
use toml::Value;

/// One layer of a sequential network.
#[derive(Clone, Debug, PartialEq)]
pub enum LayerSpec {
    /// `nn.Conv2d(C_in, out, kernel, stride, padding, groups=groups)` (C_in from the
    /// previous layer).
    Conv2d {
        /// Output channels.
        out: usize,
        /// Kernel height and width.
        kernel: usize,
        /// Stride (default 1).
        stride: usize,
        /// Zero padding (default 0).
        padding: usize,
        /// Channel groups (default 1; `groups = C_in = out`: a depthwise convolution).
        /// Each group's kernel matrix `out/groups x C_in/groups·k·k` is its own block of
        /// synapses (its own tiles when deployed).
        groups: usize,
        /// Whether the layer adds a learned bias per output channel (default true;
        /// PyTorch's `bias=False` for false).
        bias: bool,
        /// Binary or ternary weights (trained as hidden real weights with the
        /// straight-through estimator, deployed on 2T2R pairs read by sense amplifiers);
        /// `None`: real weights.
        quantization: Option<Quantization>,
    },
    /// `nn.Linear(in, out)` (in from the previous layer, which must be flat).
    Linear {
        /// Output features.
        out: usize,
        /// Whether the layer adds a learned bias per output (default true).
        bias: bool,
        /// Binary or ternary weights, as for [`LayerSpec::Conv2d`]; `None`: real weights.
        quantization: Option<Quantization>,
    },
    /// `nn.BatchNorm2d(C, eps, momentum)` (C from the previous layer): per-channel
    /// normalisation by the batch statistics in training and by the running statistics in
    /// inference, then a learned scale γ and shift β.
    BatchNorm2d {
        /// ε added to the variance (default 1e-5, PyTorch's).
        eps: f32,
        /// Weight of a new batch in the running statistics (default 0.1, PyTorch's).
        momentum: f32,
    },
    /// `nn.BatchNorm1d(N, eps, momentum)` (N from the previous layer, which must be flat):
    /// batch norm of each feature, e.g. of a binarized network's hidden and output layers.
    BatchNorm1d {
        /// ε added to the variance (default 1e-5, PyTorch's).
        eps: f32,
        /// Weight of a new batch in the running statistics (default 0.1, PyTorch's).
        momentum: f32,
    },
    /// A ResNet basic block (He et al. 2016): `relu(bn2(conv2(relu(bn1(conv1(x))))) +
    /// shortcut(x))` with 3 x 3 convolutions without bias (the first with `stride`, both
    /// padding 1), and an identity shortcut, or a 1 x 1 convolution with `stride` and
    /// batch norm (`downsample`) when the stride or the channel count changes — PyTorch's
    /// `torchvision.models.resnet.BasicBlock` and its `state_dict` keys.
    Residual {
        /// Output channels of both convolutions.
        out: usize,
        /// Stride of the first convolution and of the shortcut (default 1).
        stride: usize,
    },
    /// `nn.ReLU()`.
    Relu,
    /// The step activation of binarized (`"sign"`: −1 below 0, else +1) and ternary
    /// (`"ternary"`: 0 within `±nn::binary::TERNARY_ACTIVATION_THRESHOLD`) networks,
    /// trained with the hardtanh straight-through estimator.
    Step(Quantization),
    /// `nn.MaxPool2d(kernel, stride)` (stride defaults to the kernel).
    MaxPool2d {
        /// Window size.
        kernel: usize,
        /// Stride.
        stride: usize,
    },
    /// `nn.AvgPool2d(kernel, stride)` (stride defaults to the kernel).
    AvgPool2d {
        /// Window size.
        kernel: usize,
        /// Stride.
        stride: usize,
    },
    /// `nn.AdaptiveAvgPool2d(1)`: the mean of each channel.
    GlobalAvgPool,
    /// `nn.Flatten()`.
    Flatten,
}

/// The layer names a description may use.
const LAYER_NAMES: &str = "conv2d, linear, batchnorm2d, batchnorm1d, residual, relu, sign, \
     ternary, maxpool2d, avgpool2d, global_avgpool, flatten";

/// The shape of the activations between two layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Channels, height, width.
    Image([usize; 3]),
    /// A flat vector.
    Flat(usize),
}

impl Shape {
    /// Values per example.
    pub fn len(&self) -> usize {
        match *self {
            Shape::Image([c, h, w]) => c * h * w,
            Shape::Flat(n) => n,
        }
    }

    /// Whether the shape holds no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A layer with the shapes it maps between.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedLayer {
    /// The layer.
    pub spec: LayerSpec,
    /// Shape of its input.
    pub input: Shape,
    /// Shape of its output.
    pub output: Shape,
}

/// Parse a layer list (the `layers` array of a `[network]` section).
pub fn parse_layers(value: &Value) -> Result<Vec<LayerSpec>> {
    let list = value
        .as_array()
        .context("network.layers must be a list of layers")?;
    list.iter()
        .enumerate()
        .map(|(i, v)| parse_layer(v).with_context(|| format!("network.layers[{i}]")))
        .collect()
}

fn parse_layer(value: &Value) -> Result<LayerSpec> {
    match value {
        Value::String(name) => match name.as_str() {
            "relu" => Ok(LayerSpec::Relu),
            "flatten" => Ok(LayerSpec::Flatten),
            "global_avgpool" => Ok(LayerSpec::GlobalAvgPool),
            "batchnorm2d" => Ok(batch_norm_defaults()),
            "batchnorm1d" => Ok(LayerSpec::BatchNorm1d {
                eps: BATCH_NORM_EPS,
                momentum: BATCH_NORM_MOMENTUM,
            }),
            "sign" => Ok(LayerSpec::Step(Quantization::Binary)),
            "ternary" => Ok(LayerSpec::Step(Quantization::Ternary)),
            other => bail!(
                "unknown layer \"{other}\" (layers without settings: relu, sign, ternary, \
                 flatten, global_avgpool, batchnorm2d, batchnorm1d; the others take a table, \
                 e.g. {{ linear = 10 }})"
            ),
        },
        Value::Table(t) if t.len() == 1 => {
            let (name, settings) = t.iter().next().expect("one entry");
            parse_table_layer(name, settings).with_context(|| format!("layer {name}"))
        }
        _ => bail!("a layer is a name or a table with one key (one of {LAYER_NAMES}), got {value}"),
    }
}

fn parse_table_layer(name: &str, settings: &Value) -> Result<LayerSpec> {
    match name {
        "conv2d" => {
            let s = Settings::new(
                settings,
                &[
                    "out",
                    "kernel",
                    "stride",
                    "padding",
                    "groups",
                    "bias",
                    "quantization",
                ],
            )?;
            Ok(LayerSpec::Conv2d {
                out: s.required("out")?,
                kernel: s.required("kernel")?,
                stride: s.optional("stride", 1)?,
                padding: s.optional("padding", 0)?,
                groups: s.optional("groups", 1)?,
                bias: s.flag("bias", true)?,
                quantization: s.quantization()?,
            })
        }
        "linear" => Ok(match settings {
            Value::Integer(_) => LayerSpec::Linear {
                out: Settings::shorthand(settings, "out")?,
                bias: true,
                quantization: None,
            },
            _ => {
                let s = Settings::new(settings, &["out", "bias", "quantization"])?;
                LayerSpec::Linear {
                    out: s.required("out")?,
                    bias: s.flag("bias", true)?,
                    quantization: s.quantization()?,
                }
            }
        }),
        "batchnorm2d" | "batchnorm1d" => {
            let s = Settings::new(settings, &["eps", "momentum"])?;
            let eps = s.number("eps", BATCH_NORM_EPS)?;
            let momentum = s.number("momentum", BATCH_NORM_MOMENTUM)?;
            ensure!(
                eps > 0.0,
                "eps = {eps} must be > 0 (PyTorch's default is 1e-5)"
            );
            ensure!(
                momentum > 0.0 && momentum <= 1.0,
                "momentum = {momentum} must lie in (0, 1] (PyTorch's default is 0.1)"
            );
            Ok(if name == "batchnorm2d" {
                LayerSpec::BatchNorm2d { eps, momentum }
            } else {
                LayerSpec::BatchNorm1d { eps, momentum }
            })
        }
        "residual" => {
            let s = Settings::new(settings, &["out", "stride"])?;
            Ok(LayerSpec::Residual {
                out: s.required("out")?,
                stride: s.optional("stride", 1)?,
            })
        }
        "maxpool2d" | "avgpool2d" => {
            let (kernel, stride) = match settings {
                Value::Integer(_) => {
                    let k = Settings::shorthand(settings, "kernel")?;
                    (k, k)
                }
                _ => {
                    let s = Settings::new(settings, &["kernel", "stride"])?;
                    let k = s.required("kernel")?;
                    (k, s.optional("stride", k)?)
                }
            };
            Ok(if name == "maxpool2d" {
                LayerSpec::MaxPool2d { kernel, stride }
            } else {
                LayerSpec::AvgPool2d { kernel, stride }
            })
        }
        other => bail!("unknown layer \"{other}\" (known: {LAYER_NAMES})"),
    }
}

/// The settings table of one layer.
struct Settings<'a> {
    table: &'a toml::Table,
}

impl<'a> Settings<'a> {
    fn new(value: &'a Value, allowed: &[&str]) -> Result<Self> {
        let table = value.as_table().with_context(|| {
            format!(
                "expected a table of settings ({}), got {value}",
                allowed.join(", ")
            )
        })?;
        if let Some(key) = table.keys().find(|k| !allowed.contains(&k.as_str())) {
            bail!(
                "unknown setting \"{key}\" (allowed: {})",
                allowed.join(", ")
            );
        }
        Ok(Settings { table })
    }

    /// A layer given by one number (`{ linear = 10 }`) or a table with `key`.
    fn shorthand(value: &Value, key: &str) -> Result<usize> {
        match value {
            Value::Integer(_) => positive(key, value),
            _ => Settings::new(value, &[key])?.required(key),
        }
    }

    fn required(&self, key: &str) -> Result<usize> {
        let value = self
            .table
            .get(key)
            .with_context(|| format!("missing setting \"{key}\""))?;
        positive(key, value)
    }

    fn optional(&self, key: &str, default: usize) -> Result<usize> {
        match self.table.get(key) {
            None => Ok(default),
            Some(v) if key == "padding" => non_negative(key, v),
            Some(v) => positive(key, v),
        }
    }

    fn flag(&self, key: &str, default: bool) -> Result<bool> {
        match self.table.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .with_context(|| format!("{key} must be true or false, got {v}")),
        }
    }

    /// The optional `quantization` setting: `"binary"` or `"ternary"`.
    fn quantization(&self) -> Result<Option<Quantization>> {
        match self.table.get("quantization") {
            None => Ok(None),
            Some(v) => match v.as_str() {
                Some("binary") => Ok(Some(Quantization::Binary)),
                Some("ternary") => Ok(Some(Quantization::Ternary)),
                _ => bail!(
                    "quantization must be \"binary\" or \"ternary\" (or left out for real \
                     weights), got {v}"
                ),
            },
        }
    }

    fn number(&self, key: &str, default: f32) -> Result<f32> {
        match self.table.get(key) {
            None => Ok(default),
            Some(v) => match (v.as_float(), v.as_integer()) {
                (Some(f), _) if f.is_finite() => Ok(f as f32),
                (_, Some(i)) => Ok(i as f32),
                _ => bail!("{key} must be a finite number, got {v}"),
            },
        }
    }
}

/// PyTorch's default ε of `nn.BatchNorm2d`.
pub const BATCH_NORM_EPS: f32 = 1e-5;
/// PyTorch's default momentum of `nn.BatchNorm2d`.
pub const BATCH_NORM_MOMENTUM: f32 = 0.1;

/// A batch norm with PyTorch's defaults.
fn batch_norm_defaults() -> LayerSpec {
    LayerSpec::BatchNorm2d {
        eps: BATCH_NORM_EPS,
        momentum: BATCH_NORM_MOMENTUM,
    }
}

fn non_negative(key: &str, value: &Value) -> Result<usize> {
    match value.as_integer() {
        Some(n) if n >= 0 => Ok(n as usize),
        _ => bail!("{key} must be an integer >= 0, got {value}"),
    }
}

fn positive(key: &str, value: &Value) -> Result<usize> {
    match value.as_integer() {
        Some(n) if n >= 1 => Ok(n as usize),
        _ => bail!("{key} must be an integer >= 1, got {value}"),
    }
}

/// The shapes every layer maps between, from the input shape `[C, H, W]`; errors name the
/// layer index and what it expected.
pub fn resolve(input: [usize; 3], layers: &[LayerSpec]) -> Result<Vec<ResolvedLayer>> {
    ensure!(
        input.iter().all(|&d| d > 0),
        "network.input = {input:?}: channels, height and width must all be >= 1"
    );
    ensure!(!layers.is_empty(), "network.layers is empty");
    let mut shape = Shape::Image(input);
    let mut resolved = Vec::with_capacity(layers.len());
    for (i, spec) in layers.iter().enumerate() {
        let output = output_shape(spec, shape)
            .with_context(|| format!("network.layers[{i}] ({}) on input {shape:?}", name(spec)))?;
        resolved.push(ResolvedLayer {
            spec: spec.clone(),
            input: shape,
            output,
        });
        shape = output;
    }
    ensure!(
        matches!(shape, Shape::Flat(_)),
        "the network ends with images of shape {shape:?}: end with flatten and a linear layer \
         giving one score per class"
    );
    Ok(resolved)
}

impl ResolvedLayer {
    /// The layer's parameters (weights, biases, batch-norm γ, β and running statistics)
    /// and the activation values per example a training pass keeps (outputs, and a
    /// convolution's im2col patches), for memory estimates.
    pub fn footprint(&self) -> (f64, f64) {
        let out = self.output.len() as f64;
        let conv = |c_in: usize,
                    c_out: usize,
                    (kernel, groups): (usize, usize),
                    bias: bool,
                    pixels: f64| {
            let patch = (c_in * kernel * kernel) as f64;
            let block = patch / groups as f64;
            let weights = (block + f64::from(u8::from(bias))) * c_out as f64;
            (weights, patch * pixels + c_out as f64 * pixels)
        };
        match (&self.spec, self.input) {
            (
                &LayerSpec::Conv2d {
                    kernel,
                    groups,
                    bias,
                    ..
                },
                Shape::Image([c_in, ..]),
            ) => {
                let Shape::Image([c_out, h, w]) = self.output else {
                    return (0.0, out);
                };
                conv(c_in, c_out, (kernel, groups), bias, (h * w) as f64)
            }
            (
                &LayerSpec::Linear {
                    out: n_out, bias, ..
                },
                _,
            ) => {
                let weights = (self.input.len() + usize::from(bias)) * n_out;
                (weights as f64, out)
            }
            (LayerSpec::BatchNorm2d { .. }, Shape::Image([c, ..])) => ((4 * c) as f64, 2.0 * out),
            (LayerSpec::BatchNorm1d { .. }, _) => (4.0 * out, 2.0 * out),
            (&LayerSpec::Residual { out: c_out, .. }, Shape::Image([c_in, ..])) => {
                let pixels = out / c_out as f64;
                let parts = [
                    conv(c_in, c_out, (RESIDUAL_KERNEL, 1), false, pixels),
                    conv(c_out, c_out, (RESIDUAL_KERNEL, 1), false, pixels),
                    conv(c_in, c_out, (1, 1), false, pixels),
                ];
                let norms = (3 * 4 * c_out) as f64;
                let (w, v) = parts
                    .iter()
                    .fold((norms, 6.0 * out), |(w, v), p| (w + p.0, v + p.1));
                (w, v)
            }
            _ => (0.0, out),
        }
    }
}

/// The layer's name as written in a description.
pub fn name(spec: &LayerSpec) -> &'static str {
    match spec {
        LayerSpec::Conv2d { .. } => "conv2d",
        LayerSpec::Linear { .. } => "linear",
        LayerSpec::BatchNorm2d { .. } => "batchnorm2d",
        LayerSpec::BatchNorm1d { .. } => "batchnorm1d",
        LayerSpec::Residual { .. } => "residual",
        LayerSpec::Relu => "relu",
        LayerSpec::Step(Quantization::Binary) => "sign",
        LayerSpec::Step(Quantization::Ternary) => "ternary",
        LayerSpec::MaxPool2d { .. } => "maxpool2d",
        LayerSpec::AvgPool2d { .. } => "avgpool2d",
        LayerSpec::GlobalAvgPool => "global_avgpool",
        LayerSpec::Flatten => "flatten",
    }
}

fn image(shape: Shape) -> Result<[usize; 3]> {
    match shape {
        Shape::Image(s) => Ok(s),
        Shape::Flat(n) => bail!("expects images but gets a flat vector of {n} values"),
    }
}

fn output_shape(spec: &LayerSpec, input: Shape) -> Result<Shape> {
    Ok(match *spec {
        LayerSpec::Conv2d {
            out,
            kernel,
            stride,
            padding,
            groups,
            ..
        } => {
            let g =
                ConvGeometry::new(image(input)?, out, kernel, stride, padding)?.grouped(groups)?;
            Shape::Image([out, g.out_h(), g.out_w()])
        }
        LayerSpec::Residual { out, stride } => {
            let g = ConvGeometry::new(image(input)?, out, RESIDUAL_KERNEL, stride, 1)?;
            Shape::Image([out, g.out_h(), g.out_w()])
        }
        LayerSpec::BatchNorm2d { .. } => Shape::Image(image(input)?),
        LayerSpec::BatchNorm1d { .. } => match input {
            Shape::Flat(n) => Shape::Flat(n),
            Shape::Image(_) => bail!(
                "expects a flat vector but gets images: use batchnorm2d on images, or put \
                 \"flatten\" and a linear layer before it"
            ),
        },
        LayerSpec::Linear { .. } if matches!(input, Shape::Image(_)) => bail!(
            "expects a flat vector but gets images: put \"flatten\" before it (it will then \
             take {} inputs)",
            input.len()
        ),
        LayerSpec::Linear { out, .. } => Shape::Flat(out),
        LayerSpec::Relu | LayerSpec::Step(_) => input,
        LayerSpec::MaxPool2d { kernel, stride } | LayerSpec::AvgPool2d { kernel, stride } => {
            let kind = match spec {
                LayerSpec::MaxPool2d { .. } => PoolKind::Max,
                _ => PoolKind::Average,
            };
            let g = PoolGeometry::new(kind, image(input)?, kernel, stride)?;
            Shape::Image([g.channels, g.out_h(), g.out_w()])
        }
        LayerSpec::GlobalAvgPool => Shape::Image([image(input)?[0], 1, 1]),
        LayerSpec::Flatten => Shape::Flat(input.len()),
    })
}

/// Kernel size of the convolutions of a [`LayerSpec::Residual`] block.
pub const RESIDUAL_KERNEL: usize = 3;

/// The names [`named`] knows.
pub const ARCHITECTURES: &[&str] = &["lenet5", "resnet20", "vgg8"];

/// A named architecture: its input shape and layers (`docs/NETWORKS.md` gives the
/// equivalent PyTorch modules).
/// - `lenet5`: LeCun et al. 1998 as in the usual PyTorch port for 1 x 28 x 28 MNIST.
/// - `resnet20`: He et al. 2016, section 4.2 (CIFAR-10, 3 x 32 x 32): a 3 x 3 convolution
///   of 16 channels with batch norm, three stages of three basic blocks of 16, 32 and 64
///   channels (the first block of stages 2 and 3 with stride 2 and a 1 x 1 projection
///   shortcut, option B of the paper), global average pooling and a linear layer.
/// - `vgg8`: the VGG-8 of NeuroSim's CIFAR-10 benchmark (DNN_NeuroSim V1.3,
///   `Inference_pytorch/models/VGG.py`): 3 x 3 convolutions of 128, 128, 256, 256, 512 and
///   512 channels (padding 1, ReLU, 2 x 2 max pooling after every second), then linear
///   layers of 1024 and 10; NeuroSim's layers have no bias.
pub fn named(name: &str) -> Option<([usize; 3], Vec<LayerSpec>)> {
    match name {
        "lenet5" => Some(([1, 28, 28], lenet5())),
        "resnet20" => Some(([3, 32, 32], resnet20())),
        "vgg8" => Some(([3, 32, 32], vgg8())),
        _ => None,
    }
}

fn conv(out: usize, kernel: usize, padding: usize, bias: bool) -> LayerSpec {
    LayerSpec::Conv2d {
        out,
        kernel,
        stride: 1,
        padding,
        groups: 1,
        bias,
        quantization: None,
    }
}

fn max_pool_2() -> LayerSpec {
    LayerSpec::MaxPool2d {
        kernel: 2,
        stride: 2,
    }
}

fn linear(out: usize, bias: bool) -> LayerSpec {
    LayerSpec::Linear {
        out,
        bias,
        quantization: None,
    }
}

fn lenet5() -> Vec<LayerSpec> {
    use LayerSpec::*;
    vec![
        conv(6, 5, 2, true),
        Relu,
        max_pool_2(),
        conv(16, 5, 0, true),
        Relu,
        max_pool_2(),
        Flatten,
        linear(120, true),
        Relu,
        linear(84, true),
        Relu,
        linear(10, true),
    ]
}

/// Blocks per stage of ResNet-20 (`n = 3`, `6n + 2 = 20` weighted layers).
const RESNET20_BLOCKS_PER_STAGE: usize = 3;

fn resnet20() -> Vec<LayerSpec> {
    use LayerSpec::*;
    let mut layers = vec![conv(16, 3, 1, false), batch_norm_defaults(), Relu];
    for (stage, out) in [16, 32, 64].into_iter().enumerate() {
        for block in 0..RESNET20_BLOCKS_PER_STAGE {
            let stride = if stage > 0 && block == 0 { 2 } else { 1 };
            layers.push(Residual { out, stride });
        }
    }
    layers.extend([GlobalAvgPool, Flatten, linear(10, true)]);
    layers
}

fn vgg8() -> Vec<LayerSpec> {
    use LayerSpec::*;
    let mut layers = Vec::new();
    for out in [128, 256, 512] {
        layers.extend([conv(out, 3, 1, false), Relu, conv(out, 3, 1, false), Relu]);
        layers.push(max_pool_2());
    }
    layers.extend([Flatten, linear(1024, false), Relu, linear(10, false)]);
    layers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers(text: &str) -> Result<Vec<LayerSpec>> {
        let table: toml::Table = toml::from_str(text).unwrap();
        parse_layers(&table["layers"])
    }

    /// The LeNet-5 list of the issue parses to the named architecture, and its shapes are
    /// PyTorch's: 6 x 28 x 28, 6 x 14 x 14, 16 x 10 x 10, 16 x 5 x 5, 400, 120, 84, 10.
    #[test]
    fn the_lenet5_list_parses_and_resolves_to_pytorch_shapes() {
        let parsed = layers(
            r#"layers = [ { conv2d = { out = 6, kernel = 5, padding = 2 } }, "relu",
                { maxpool2d = 2 }, { conv2d = { out = 16, kernel = 5 } }, "relu",
                { maxpool2d = 2 }, "flatten", { linear = 120 }, "relu", { linear = 84 },
                "relu", { linear = 10 } ]"#,
        )
        .unwrap();
        let (input, lenet) = named("lenet5").unwrap();
        assert_eq!(parsed, lenet);
        let shapes: Vec<Shape> = resolve(input, &lenet)
            .unwrap()
            .iter()
            .map(|l| l.output)
            .collect();
        use Shape::*;
        assert_eq!(
            shapes,
            vec![
                Image([6, 28, 28]),
                Image([6, 28, 28]),
                Image([6, 14, 14]),
                Image([16, 10, 10]),
                Image([16, 10, 10]),
                Image([16, 5, 5]),
                Flat(400),
                Flat(120),
                Flat(120),
                Flat(84),
                Flat(84),
                Flat(10),
            ]
        );
    }

    /// Bad descriptions are refused naming the layer index and the fix.
    #[test]
    fn bad_layers_are_named_by_index() {
        let err = |text: &str| format!("{:#}", layers(text).unwrap_err());
        let e = err(r#"layers = ["relu", "softmax"]"#);
        assert!(e.contains("layers[1]") && e.contains("softmax"), "{e}");
        let e = err(r#"layers = [{ conv2d = { out = 6 } }]"#);
        assert!(e.contains("missing setting \"kernel\""), "{e}");
        let e = err(r#"layers = [{ conv2d = { out = 6, kernel = 3, dilation = 2 } }]"#);
        assert!(e.contains("dilation"), "{e}");
        let e = err(r#"layers = [{ linear = 0 }]"#);
        assert!(e.contains(">= 1"), "{e}");
        let e = err(r#"layers = [{ dropout = 0.5 }]"#);
        assert!(e.contains("dropout") && e.contains("conv2d"), "{e}");

        let resolved = |l: Vec<LayerSpec>| format!("{:#}", resolve([1, 8, 8], &l).unwrap_err());
        let e = resolved(vec![linear(10, true)]);
        assert!(
            e.contains("layers[0]") && e.contains("flatten") && e.contains("64"),
            "{e}"
        );
        let e = resolved(vec![conv(2, 9, 0, true)]);
        assert!(e.contains("layers[0]") && e.contains("larger"), "{e}");
        let e = resolved(vec![LayerSpec::Relu]);
        assert!(e.contains("ends with images"), "{e}");
        let e = resolved(vec![
            LayerSpec::Flatten,
            LayerSpec::MaxPool2d {
                kernel: 2,
                stride: 2,
            },
        ]);
        assert!(
            e.contains("layers[1]") && e.contains("expects images"),
            "{e}"
        );
    }
}
