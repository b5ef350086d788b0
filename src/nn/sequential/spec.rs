//! Network descriptions that mirror a PyTorch `nn.Sequential` index for index: a list of
//! layers, each a name (`"relu"`, `"flatten"`, `"global_avgpool"`) or a one-key table
//! (`{ conv2d = { out = 6, kernel = 5, padding = 2 } }`, `{ maxpool2d = 2 }`,
//! `{ linear = 120 }`), and the shapes they produce from the input shape `[C, H, W]`.
//! Errors name the layer's index in the list, as PyTorch numbers the modules of a
//! `Sequential` (and its `state_dict` keys: `0.weight`, `3.weight`, ...).

use super::conv::ConvGeometry;
use super::pool::{PoolGeometry, PoolKind};
use anyhow::{Context, Result, bail, ensure};
use toml::Value;

/// One layer of a sequential network.
#[derive(Clone, Debug, PartialEq)]
pub enum LayerSpec {
    /// `nn.Conv2d(C_in, out, kernel, stride, padding)` (C_in from the previous layer).
    Conv2d {
        /// Output channels.
        out: usize,
        /// Kernel height and width.
        kernel: usize,
        /// Stride (default 1).
        stride: usize,
        /// Zero padding (default 0).
        padding: usize,
    },
    /// `nn.Linear(in, out)` (in from the previous layer, which must be flat).
    Linear {
        /// Output features.
        out: usize,
    },
    /// `nn.ReLU()`.
    Relu,
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
const LAYER_NAMES: &str = "conv2d, linear, relu, maxpool2d, avgpool2d, global_avgpool, flatten";

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
            other => bail!(
                "unknown layer \"{other}\" (layers without settings: relu, flatten, \
                 global_avgpool; the others take a table, e.g. {{ linear = 10 }})"
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
            let mut s = Settings::new(settings, &["out", "kernel", "stride", "padding"])?;
            Ok(LayerSpec::Conv2d {
                out: s.required("out")?,
                kernel: s.required("kernel")?,
                stride: s.optional("stride", 1)?,
                padding: s.optional("padding", 0)?,
            })
        }
        "linear" => Ok(LayerSpec::Linear {
            out: Settings::shorthand(settings, "out")?,
        }),
        "maxpool2d" | "avgpool2d" => {
            let (kernel, stride) = match settings {
                Value::Integer(_) => {
                    let k = Settings::shorthand(settings, "kernel")?;
                    (k, k)
                }
                _ => {
                    let mut s = Settings::new(settings, &["kernel", "stride"])?;
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

    fn required(&mut self, key: &str) -> Result<usize> {
        let value = self
            .table
            .get(key)
            .with_context(|| format!("missing setting \"{key}\""))?;
        positive(key, value)
    }

    fn optional(&mut self, key: &str, default: usize) -> Result<usize> {
        match self.table.get(key) {
            None => Ok(default),
            Some(v) if key == "padding" => non_negative(key, v),
            Some(v) => positive(key, v),
        }
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

/// The layer's name as written in a description.
pub fn name(spec: &LayerSpec) -> &'static str {
    match spec {
        LayerSpec::Conv2d { .. } => "conv2d",
        LayerSpec::Linear { .. } => "linear",
        LayerSpec::Relu => "relu",
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
        } => {
            let g = ConvGeometry::new(image(input)?, out, kernel, stride, padding)?;
            Shape::Image([out, g.out_h(), g.out_w()])
        }
        LayerSpec::Linear { .. } if matches!(input, Shape::Image(_)) => bail!(
            "expects a flat vector but gets images: put \"flatten\" before it (it will then \
             take {} inputs)",
            input.len()
        ),
        LayerSpec::Linear { out } => Shape::Flat(out),
        LayerSpec::Relu => input,
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

/// The names [`named`] knows.
pub const ARCHITECTURES: &[&str] = &["lenet5"];

/// A named architecture: its input shape and layers. `lenet5`: LeCun et al. 1998 as in the
/// usual PyTorch port for 1 x 28 x 28 MNIST (`docs/NETWORKS.md`).
pub fn named(name: &str) -> Option<([usize; 3], Vec<LayerSpec>)> {
    use LayerSpec::*;
    let conv = |out, kernel, padding| Conv2d {
        out,
        kernel,
        stride: 1,
        padding,
    };
    let pool = MaxPool2d {
        kernel: 2,
        stride: 2,
    };
    match name {
        "lenet5" => Some((
            [1, 28, 28],
            vec![
                conv(6, 5, 2),
                Relu,
                pool.clone(),
                conv(16, 5, 0),
                Relu,
                pool,
                Flatten,
                Linear { out: 120 },
                Relu,
                Linear { out: 84 },
                Relu,
                Linear { out: 10 },
            ],
        )),
        _ => None,
    }
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
        let e = resolved(vec![LayerSpec::Linear { out: 10 }]);
        assert!(
            e.contains("layers[0]") && e.contains("flatten") && e.contains("64"),
            "{e}"
        );
        let e = resolved(vec![LayerSpec::Conv2d {
            out: 2,
            kernel: 9,
            stride: 1,
            padding: 0,
        }]);
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
