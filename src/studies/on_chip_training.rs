//! The `on_chip_training` experiment kind: train a network on the chip itself, every
//! weight update a train of programming pulses on simulated devices, and measure its test
//! accuracy and what the updates cost.
//!
//! Sections:
//! - `[data]`: data set and how much of it (`source`, `train_limit`, `test_limit`);
//! - `[network]`: `hidden` layer sizes (inputs and classes come from the data), and for EP
//!   optional convolutional layers `convs` below them (`[{ out, kernel, padding, pool }]`:
//!   convolution with max pooling, the ConvNet of Laborieux et al. 2021), each programmed
//!   on its own tile as a `C_out x C·k·k` kernel matrix;
//! - `[rule]`: `kind = "ep"` (equilibrium propagation, [`crate::learning::ep`]), `"sgd"`
//!   (analog SGD, [`crate::learning::sgd`]) or `"backprop"` (the digital reference: the same
//!   layers as a feed-forward ReLU network trained by backpropagation, `f32` weights only),
//!   `epochs`, and each rule's settings in `[rule.ep]` (phases, nudging, per-layer learning
//!   rates, optimiser and schedule, batch size, activation), `[rule.sgd]` (learning rate,
//!   batch size, activation) and `[rule.backprop]` (a [`TrainConfig`]: optimiser, batch
//!   size, schedule, ...), so that one sweep can switch rules;
//! - `[hardware]`: `device` (a preset name or file, or `"digital"` for `f32` weights),
//!   `device_params` overrides, `variability_scale`, `w_max` (weight mapped to a full
//!   conductance window: one number, or one per synaptic layer), `pulses` (pulse-train
//!   length and which device of a pair is pulsed), `refresh_interval` (re-program every
//!   pair after this many updates of its layer; 0 = never) and `tile` (periphery; keys not
//!   given keep the ideal periphery of `TileConfig::ideal()`: training reads are exact
//!   unless a non-ideality is asked for);
//! - `[labels]`: free-form values recorded with each job and ignored by the simulation.
//!   A zipped sweep axis can set them next to the parameters it changes, so that one file
//!   holds several one-dimensional sweeps: e.g. `labels.sweep` as the plot's panel and
//!   `labels.x` as its common x column.
//!
//! Metrics per job: `accuracy` (test accuracy of the network trained on the hardware),
//! `digital_accuracy` (the same network — same initial weights, same mini-batches —
//! trained with `f32` weights), `train_accuracy` (during the last epoch),
//! `pulses_per_update`, `write_energy_per_update_j` and `write_time_per_update_s`
//! (programming pulses, their energy and the pulsing time of all tiles, one after the
//! other, per mini-batch update, refreshes included; 0 for digital weights).
//!
//! Random streams: the initial weights come from `(seed, [INIT_STREAM, repeat])` and the
//! mini-batch order (and random nudging signs) from `(seed, [TRAIN_STREAM, repeat])`, so
//! every point of a repeat starts from the same network and sees the same data (paired
//! comparisons); the devices, their programming and every pulse come from
//! `(seed, [HARDWARE_STREAM, repeat, point])`. Results do not depend on the thread count.
//! The digital twin depends only on data, network, rule and repeat: it is trained once per
//! repeat in [`JobKind::prepare`].

use super::data_source::{DataCache, DataConfig, poisoned};
use crate::crossbar::TileConfig;
use crate::crossbar::update::PulsedUpdateConfig;
use crate::data::{Dataset, Split};
use crate::device::{AnyDevice, preset};
use crate::experiment::config::{to_value, typed};
use crate::experiment::kinds::{Kind, SweepKind};
use crate::experiment::run::{JobId, JobKind};
use crate::experiment::table::epoch_metric;
use crate::learning::ep::{self, Activation, EpConfig, EpConv, EpNetwork, EpOptimizerState};
use crate::learning::sgd::{self, EpochSchedule, HiddenActivation, Mlp, OutputLoss, Sgd};
use crate::nn::TrainConfig;
use crate::nn::sequential::spec::LayerSpec;
use crate::nn::sequential::{self, Sequential};
use crate::synapses::DigitalSynapses;
use crate::synapses::PlasticSynapses;
use crate::synapses::{CrossbarSynapses, program_layers};
use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use toml::Value;

/// `hardware.device` value that trains `f32` weights.
pub const DIGITAL: &str = "digital";
use crate::rng::{
    EXPERIMENT_HARDWARE_STREAM as HARDWARE_STREAM, EXPERIMENT_INIT_STREAM as INIT_STREAM,
    EXPERIMENT_TRAIN_STREAM as TRAIN_STREAM,
};

/// `[network]`: the layers between the data's inputs and its classes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkSection {
    /// Convolutional layers with max pooling below the fully connected ones, input side
    /// first (equilibrium propagation only).
    pub convs: Vec<EpConv>,
    /// Hidden layer sizes of the fully connected layers, input side first.
    pub hidden: Vec<usize>,
}

impl Default for NetworkSection {
    fn default() -> Self {
        Self {
            convs: Vec::new(),
            hidden: vec![256],
        }
    }
}

impl NetworkSection {
    /// Synaptic layers: the convolutions, the hidden layers and the output layer.
    fn layers(&self) -> usize {
        self.convs.len() + self.hidden.len() + 1
    }
}

/// Which on-chip learning rule trains the network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// Equilibrium propagation on a layered energy-based network.
    #[default]
    Ep,
    /// Analog SGD (backpropagation) on a multilayer perceptron.
    Sgd,
    /// The digital reference: the same layers as a feed-forward network (each convolution
    /// followed by ReLU and its max pooling, ReLU hidden layers) trained by
    /// backpropagation on `f32` weights (`hardware.device = "digital"` only).
    Backprop,
}

/// `[rule.ep]`: equilibrium-propagation settings — the library's [`EpConfig`] (phases,
/// nudging, learning rates, batch size; its `epochs` and `seed` come from `rule.epochs`
/// and the job seed) and the neurons' non-linearity, written as one flat table. Missing
/// keys take the reference settings ([`EpConfig::mnist10k_784_512_10`], steep sigmoid);
/// unknown keys are errors naming the key.
#[derive(Clone, Debug, PartialEq)]
pub struct EpSection {
    /// The EP settings.
    pub ep: EpConfig,
    /// Neuron non-linearity ρ.
    pub activation: Activation,
}

impl Default for EpSection {
    fn default() -> Self {
        Self {
            ep: EpConfig::mnist10k_784_512_10(),
            activation: Activation::SteepSigmoid,
        }
    }
}

/// The key of [`EpSection::activation`] in the flat table.
const ACTIVATION_KEY: &str = "activation";

impl Serialize for EpSection {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut table = match Value::try_from(&self.ep).map_err(serde::ser::Error::custom)? {
            Value::Table(t) => t,
            _ => return Err(serde::ser::Error::custom("EP settings are not a table")),
        };
        let activation = Value::try_from(self.activation).map_err(serde::ser::Error::custom)?;
        table.insert(ACTIVATION_KEY.into(), activation);
        table.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for EpSection {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let given = toml::Table::deserialize(deserializer)?;
        let mut table = match Value::try_from(EpSection::default()).map_err(D::Error::custom)? {
            Value::Table(t) => t,
            _ => return Err(D::Error::custom("EP settings are not a table")),
        };
        table.extend(given);
        let activation = table
            .remove(ACTIVATION_KEY)
            .map(|v| v.try_into::<Activation>())
            .transpose()
            .map_err(D::Error::custom)?
            .unwrap_or(Activation::SteepSigmoid);
        let ep = Value::Table(table)
            .try_into::<EpConfig>()
            .map_err(D::Error::custom)?;
        Ok(EpSection { ep, activation })
    }
}

/// `[rule.sgd]`: analog-SGD settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SgdSection {
    /// Learning rate η of weights and biases.
    pub learning_rate: f32,
    /// Learning rate of each synaptic layer's weights, input side first (empty:
    /// `learning_rate` for every layer), e.g. NeuroSim's `[0.4, 0.2]` (alpha1, alpha2).
    pub layer_learning_rates: Vec<f32>,
    /// Images per mini-batch.
    pub batch_size: usize,
    /// Hidden-layer non-linearity.
    pub activation: HiddenActivation,
    /// Output error: `cross_entropy` (softmax outputs) or `mse` (sigmoid outputs,
    /// NeuroSim's).
    pub loss: OutputLoss,
    /// Learn digital biases (false: none, as NeuroSim's MLP).
    pub biases: bool,
    /// How a weight change reaches the devices: `outer_product` (coincident stochastic
    /// pulse trains) or `dense` (every device its own pulse count, rounded as
    /// `hardware.pulses.rounding` says: NeuroSim's scheme with `"nearest"`).
    pub update: UpdateScheme,
    /// Initial weights `U(±init_bound)` in every layer (absent: `U(±1/√fan_in)`).
    pub init_bound: Option<f32>,
    /// The next layer reads hidden activations binarised at this threshold (1 at or above,
    /// 0 below: NeuroSim's 1-bit `da1` with `Hthreshold = 0.5`); the weight updates and the
    /// backpropagated derivatives keep the analog activations. Absent: analog reads.
    pub hidden_threshold: Option<f32>,
}

/// How analog SGD applies its weight changes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateScheme {
    /// `ΔW = η δ xᵀ` as coincident row and column pulse trains.
    #[default]
    OuterProduct,
    /// `ΔW` computed digitally and applied device by device.
    Dense,
}

impl Default for SgdSection {
    fn default() -> Self {
        Self {
            learning_rate: 0.5,
            layer_learning_rates: Vec::new(),
            batch_size: 10,
            activation: HiddenActivation::Sigmoid,
            loss: OutputLoss::CrossEntropy,
            biases: true,
            update: UpdateScheme::OuterProduct,
            init_bound: None,
            hidden_threshold: None,
        }
    }
}

/// `[rule]`: the learning rule and its training budget.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuleSection {
    /// The rule that trains the network.
    pub kind: RuleKind,
    /// Passes over the training set.
    pub epochs: usize,
    /// Settings of equilibrium propagation (used when `kind = "ep"`).
    pub ep: EpSection,
    /// Settings of analog SGD (used when `kind = "sgd"`).
    pub sgd: SgdSection,
    /// Settings of backpropagation (used when `kind = "backprop"`).
    pub backprop: BackpropSection,
}

/// `[rule.backprop]`: the library's [`TrainConfig`] (optimiser, batch size, schedule,
/// weight decay, augmentation) without its `epochs` and `seed`, which come from
/// `rule.epochs` and the job seed; giving them here is an error naming the key to use.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BackpropSection(pub TrainConfig);

/// The [`TrainConfig`] keys that `[rule.backprop]` takes from elsewhere, with where.
const BACKPROP_KEYS_ELSEWHERE: [(&str, &str); 2] =
    [("epochs", "rule.epochs"), ("seed", "experiment.seed")];

impl Serialize for BackpropSection {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut table = match Value::try_from(&self.0).map_err(serde::ser::Error::custom)? {
            Value::Table(t) => t,
            _ => {
                return Err(serde::ser::Error::custom(
                    "training settings are not a table",
                ));
            }
        };
        for (key, _) in BACKPROP_KEYS_ELSEWHERE {
            table.remove(key);
        }
        table.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for BackpropSection {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let given = toml::Table::deserialize(deserializer)?;
        for (key, instead) in BACKPROP_KEYS_ELSEWHERE {
            if given.contains_key(key) {
                return Err(D::Error::custom(format!(
                    "rule.backprop.{key}: backpropagation takes its {key} from {instead}; \
                     remove rule.backprop.{key}"
                )));
            }
        }
        Value::Table(given)
            .try_into::<TrainConfig>()
            .map(BackpropSection)
            .map_err(D::Error::custom)
    }
}

/// `[hardware]`: the devices that hold the weights and how they are pulsed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HardwareSection {
    /// Device preset name or file, or `"digital"` for `f32` weights.
    pub device: String,
    /// Overrides of the preset's parameters, by name (e.g. `c2c_sigma = 0.02`).
    pub device_params: toml::Table,
    /// Multiplies every variability parameter of the device after the overrides
    /// (`device::preset::variability_parameters`): 1 = as published, 0 = noise-free.
    pub variability_scale: f64,
    /// Weight mapped to a full conductance window: one number for every layer, or an
    /// array with one per synaptic layer (input side first).
    pub w_max: Value,
    /// Pulse-train length and pair-update policy of the weight updates.
    pub pulses: PulsedUpdateConfig,
    /// Re-program every differential pair of a layer to its present weight after this
    /// many updates of the layer (0 = never): the refresh that SET-only pairs need
    /// once both devices approach the top of their window.
    pub refresh_interval: u64,
    /// The tile: mapping, periphery, faults, wires, energy.
    pub tile: TileConfig,
}

impl Default for HardwareSection {
    fn default() -> Self {
        Self {
            device: "rram_hfo2".to_string(),
            device_params: toml::Table::new(),
            variability_scale: 1.0,
            w_max: Value::Float(1.0),
            pulses: PulsedUpdateConfig::default(),
            refresh_interval: 0,
            tile: TileConfig::ideal(),
        }
    }
}

impl HardwareSection {
    /// The device model: preset, overrides, variability scale.
    fn device(&self) -> Result<AnyDevice> {
        preset::load_scaled(&self.device, &self.device_params, self.variability_scale)
            .context("hardware.device / hardware.device_params / hardware.variability_scale")
    }

    /// The weight scale of each of `layers` synaptic layers.
    fn w_max(&self, layers: usize) -> Result<Vec<f64>> {
        let number = |v: &Value| v.as_float().or_else(|| v.as_integer().map(|i| i as f64));
        let values = match &self.w_max {
            Value::Array(items) => {
                ensure!(
                    items.len() == layers,
                    "hardware.w_max has {} entries but the network has {layers} synaptic \
                     layers: give one number, or one per layer",
                    items.len()
                );
                items.iter().map(number).collect::<Option<Vec<f64>>>()
            }
            single => number(single).map(|w| vec![w; layers]),
        };
        let values = values.with_context(|| {
            format!(
                "hardware.w_max = {}: must be a number or an array of numbers",
                self.w_max
            )
        })?;
        ensure!(
            values.iter().all(|w| w.is_finite() && *w > 0.0),
            "hardware.w_max = {}: every weight scale must be a positive number",
            self.w_max
        );
        Ok(values)
    }

    fn validate(&self, layers: usize) -> Result<()> {
        self.w_max(layers)?;
        self.pulses.validate().context("hardware.pulses")?;
        self.tile.validate().context("[hardware.tile]")?;
        let mapping = &self.tile.mapping;
        ensure!(
            mapping.encoding.is_analog() && mapping.bit_slicing.is_none(),
            "hardware.tile.mapping: pulsed training needs analog weights without bit slicing \
             (encoding = \"analog\" or \"reference\", no bit_slicing)"
        );
        ensure!(
            mapping.weight_max.is_none(),
            "hardware.tile.mapping.weight_max: the weight scale of a trained tile is \
             hardware.w_max; remove mapping.weight_max"
        );
        if self.device != DIGITAL {
            self.device()?;
        }
        Ok(())
    }
}

/// All sections of an on-chip training experiment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainingConfig {
    /// Data set.
    pub data: DataConfig,
    /// Network.
    pub network: NetworkSection,
    /// Learning rule.
    pub rule: RuleSection,
    /// Hardware.
    pub hardware: HardwareSection,
    /// Free-form labels of the point (not used by the simulation).
    pub labels: toml::Table,
}

impl TrainingConfig {
    fn parse(config: &Value) -> Result<Self> {
        let c: TrainingConfig = typed(config.clone(), "the experiment's sections")?;
        c.validate()?;
        Ok(c)
    }

    fn validate(&self) -> Result<()> {
        ensure!(
            self.network.hidden.iter().all(|&h| h > 0),
            "network.hidden = {:?}: every hidden layer needs at least one neuron",
            self.network.hidden
        );
        ensure!(self.rule.epochs > 0, "rule.epochs must be at least 1");
        ensure!(
            self.network.convs.is_empty() || self.rule.kind != RuleKind::Sgd,
            "network.convs: convolutional layers are trained by equilibrium propagation \
             (rule.kind = \"ep\") or digital backpropagation (\"backprop\"); analog SGD \
             trains fully connected layers"
        );
        self.data.check_transforms()?;
        let layers = self.network.layers();
        match self.rule.kind {
            RuleKind::Ep => self.ep_config(0).validate(layers).context("[rule.ep]")?,
            RuleKind::Backprop => {
                ensure!(
                    self.hardware.device == DIGITAL,
                    "rule.kind = \"backprop\" is the digital reference and trains f32 weights: \
                     set hardware.device = \"digital\" (got \"{}\")",
                    self.hardware.device
                );
                self.backprop_config(0)
                    .validate()
                    .context("[rule.backprop]")?;
            }
            RuleKind::Sgd => {
                let s = &self.rule.sgd;
                ensure!(
                    s.learning_rate.is_finite() && s.learning_rate > 0.0,
                    "rule.sgd.learning_rate = {}: must be a positive number",
                    s.learning_rate
                );
                ensure!(s.batch_size > 0, "rule.sgd.batch_size must be at least 1");
                ensure!(
                    s.layer_learning_rates.is_empty() || s.layer_learning_rates.len() == layers,
                    "rule.sgd.layer_learning_rates has {} entries but the network has {layers} \
                     synaptic layers: give one per layer or leave it out",
                    s.layer_learning_rates.len()
                );
                for (field, value) in [
                    ("init_bound", s.init_bound),
                    ("hidden_threshold", s.hidden_threshold),
                ] {
                    if let Some(v) = value {
                        ensure!(
                            v.is_finite() && v > 0.0,
                            "rule.sgd.{field} = {v}: must be a positive number, or left out"
                        );
                    }
                }
                ensure!(
                    s.layer_learning_rates
                        .iter()
                        .all(|r| r.is_finite() && *r > 0.0),
                    "rule.sgd.layer_learning_rates = {:?}: every rate must be a positive number",
                    s.layer_learning_rates
                );
            }
        }
        self.hardware.validate(layers)?;
        if let Some((key, v)) = self.labels.iter().find(|(_, v)| !is_scalar(v)) {
            bail!("labels.{key} = {v}: a label must be a string, a number or a boolean");
        }
        Ok(())
    }

    /// The EP training settings, with the shuffle and nudging-sign seed `seed`.
    fn ep_config(&self, seed: u64) -> EpConfig {
        EpConfig {
            epochs: self.rule.epochs,
            seed,
            ..self.rule.ep.ep.clone()
        }
    }

    /// The backpropagation settings, with the shuffle and augmentation seed `seed`.
    fn backprop_config(&self, seed: u64) -> TrainConfig {
        TrainConfig {
            epochs: self.rule.epochs,
            seed,
            ..self.rule.backprop.0.clone()
        }
    }

    /// Images per mini-batch of the configured rule.
    fn batch_size(&self) -> usize {
        match self.rule.kind {
            RuleKind::Ep => self.rule.ep.ep.batch_size,
            RuleKind::Sgd => self.rule.sgd.batch_size,
            RuleKind::Backprop => self.rule.backprop.0.batch_size,
        }
    }

    /// The feed-forward network that backpropagation trains: every convolution followed
    /// by ReLU and its max pooling, then the ReLU hidden layers and the output layer.
    fn feed_forward_layers(&self, classes: usize) -> Vec<LayerSpec> {
        let mut layers = Vec::new();
        for conv in &self.network.convs {
            layers.push(LayerSpec::Conv2d {
                out: conv.out,
                kernel: conv.kernel,
                stride: 1,
                padding: conv.padding,
                groups: 1,
                bias: true,
                quantization: None,
            });
            layers.push(LayerSpec::Relu);
            if conv.pool > 1 {
                layers.push(LayerSpec::MaxPool2d {
                    kernel: conv.pool,
                    stride: conv.pool,
                });
            }
        }
        layers.push(LayerSpec::Flatten);
        for &out in &self.network.hidden {
            layers.push(LayerSpec::Linear {
                out,
                bias: true,
                quantization: None,
            });
            layers.push(LayerSpec::Relu);
        }
        layers.push(LayerSpec::Linear {
            out: classes,
            bias: true,
            quantization: None,
        });
        layers
    }

    /// The part of the configuration that determines the digitally trained twin.
    fn twin_key(&self, repeat: u32) -> Result<String> {
        Ok(format!(
            "{}#{repeat}",
            serde_json::to_string(&(&self.data, &self.network, &self.rule))?
        ))
    }
}

fn is_scalar(v: &Value) -> bool {
    matches!(
        v,
        Value::String(_) | Value::Integer(_) | Value::Float(_) | Value::Boolean(_)
    )
}

/// The seeds of one job.
#[derive(Clone, Copy, Debug)]
struct Seeds {
    init: u64,
    train: u64,
    hardware: u64,
}

impl Seeds {
    fn of(job: JobId) -> Self {
        let repeat = u64::from(job.repeat);
        Self {
            init: crate::rng::stream_key(job.seed, &[INIT_STREAM, repeat]),
            train: crate::rng::stream_key(job.seed, &[TRAIN_STREAM, repeat]),
            hardware: crate::rng::stream_key(
                job.seed,
                &[HARDWARE_STREAM, repeat, job.point as u64],
            ),
        }
    }
}

/// A network of either rule on synaptic layers `S`.
enum Model<S> {
    Ep(EpNetwork<S>),
    Sgd(Mlp<S>),
}

impl Model<DigitalSynapses> {
    /// The untrained network of `c` for images of `shape` (`[C, H, W]`) and `classes`
    /// classes.
    fn initial(c: &TrainingConfig, shape: [usize; 3], classes: usize, seed: u64) -> Result<Self> {
        let mut sizes = vec![shape.iter().product()];
        sizes.extend(&c.network.hidden);
        sizes.push(classes);
        let activation = c.rule.ep.activation;
        Ok(match c.rule.kind {
            RuleKind::Ep if !c.network.convs.is_empty() => {
                let fc = &sizes[1..];
                Model::Ep(
                    EpNetwork::digital_convnet(shape, &c.network.convs, fc, activation, seed)
                        .context("network.convs")?,
                )
            }
            RuleKind::Ep => Model::Ep(EpNetwork::digital(&sizes, activation, seed)?),
            RuleKind::Backprop => bail!(
                "rule.kind = \"backprop\" trains a digital feed-forward network, not an on-chip \
                 model: set hardware.device = \"digital\""
            ),
            RuleKind::Sgd => Model::Sgd(
                Mlp::new(
                    sgd::initial_layers(&sizes, c.rule.sgd.init_bound, seed)
                        .context("rule.sgd.init_bound")?,
                    c.rule.sgd.activation,
                )?
                .with_training(c.rule.sgd.loss, c.rule.sgd.biases)
                .with_hidden_threshold(c.rule.sgd.hidden_threshold),
            ),
        })
    }

    /// The same network with every weight matrix programmed onto its own tile.
    fn on_tiles(
        &self,
        hardware: &HardwareSection,
        seed: u64,
    ) -> Result<Model<CrossbarSynapses<AnyDevice>>> {
        let device = hardware.device()?;
        let program = |layers: &[DigitalSynapses]| -> Result<Vec<CrossbarSynapses<AnyDevice>>> {
            let w_max = hardware.w_max(layers.len())?;
            let mut tiles = program_layers(
                &device,
                layers,
                &w_max,
                &hardware.tile,
                hardware.pulses,
                seed,
            )?;
            for tile in &mut tiles {
                tile.set_refresh_interval(hardware.refresh_interval);
                tile.tile_mut().ledger_mut().reset();
            }
            Ok(tiles)
        };
        Ok(match self {
            Model::Ep(net) => Model::Ep(EpNetwork::with_connections(
                program(net.synapses())?,
                net.biases().to_vec(),
                net.connections().to_vec(),
                net.activation(),
            )?),
            Model::Sgd(mlp) => {
                let (loss, biases) = mlp.training();
                Model::Sgd(
                    Mlp::new(program(mlp.layers())?, mlp.activation())?
                        .with_training(loss, biases)
                        .with_hidden_threshold(mlp.hidden_threshold()),
                )
            }
        })
    }
}

impl<S: PlasticSynapses> Model<S> {
    /// Train for the configured epochs on `split.train`, testing on `split.test` after
    /// each epoch (in place: the test reads are reads of the trained devices).
    /// `on_epoch` hears of every finished epoch (its index, from 0).
    fn train_and_test(
        &mut self,
        c: &TrainingConfig,
        split: &Split,
        seed: u64,
        on_epoch: &mut dyn FnMut(usize),
    ) -> Result<Curve> {
        let mut curve = Curve::default();
        let ep_config = c.ep_config(seed);
        let mut ep_optimizer = EpOptimizerState::new(&ep_config);
        for epoch in 0..c.rule.epochs {
            let train = match self {
                Model::Ep(net) => {
                    let mut rule = ep_config.rule_at(epoch);
                    ep::train_epoch(
                        net,
                        &split.train,
                        &ep_config,
                        &mut rule,
                        &mut ep_optimizer,
                        epoch,
                    )?
                    .train_accuracy
                }
                Model::Sgd(mlp) => {
                    let s = &c.rule.sgd;
                    let mut rule = Sgd {
                        learning_rate: s.learning_rate,
                        layer_learning_rates: s.layer_learning_rates.clone(),
                        dense: s.update == UpdateScheme::Dense,
                    };
                    let schedule = EpochSchedule {
                        batch_size: s.batch_size,
                        seed,
                        epoch,
                    };
                    sgd::train_epoch(mlp, &mut rule, s.learning_rate, &split.train, schedule)?
                }
            };
            curve.train.push(train);
            curve.test.push(self.accuracy(c, &split.test)?);
            on_epoch(epoch);
        }
        Ok(curve)
    }

    /// Test accuracy on `data` (EP: free-phase prediction after T1 steps).
    fn accuracy(&mut self, c: &TrainingConfig, data: &Dataset) -> Result<f64> {
        match self {
            Model::Ep(net) => ep::evaluate(net, data, c.rule.ep.ep.free_steps),
            Model::Sgd(mlp) => sgd::accuracy(mlp, data),
        }
    }

    fn synapses(&self) -> &[S] {
        match self {
            Model::Ep(net) => net.synapses(),
            Model::Sgd(mlp) => mlp.layers(),
        }
    }
}

/// Test accuracy after each epoch and training accuracy during each epoch.
#[derive(Clone, Debug, Default)]
struct Curve {
    test: Vec<f64>,
    train: Vec<f64>,
}

impl Curve {
    /// Test accuracy after the last epoch.
    fn test(&self) -> f64 {
        self.test.last().copied().unwrap_or(f64::NAN)
    }

    /// Training accuracy during the last epoch.
    fn train(&self) -> f64 {
        self.train.last().copied().unwrap_or(f64::NAN)
    }
}

/// The on-chip training experiment kind.
#[derive(Default)]
pub struct OnChipTraining {
    /// Data sets by configuration, loaded once.
    data: DataCache,
    /// Accuracy curves of the digitally trained twins by twin key, filled in `prepare`.
    twins: Mutex<HashMap<String, Curve>>,
}

impl OnChipTraining {
    fn initial_model(&self, c: &TrainingConfig, seeds: Seeds) -> Result<Model<DigitalSynapses>> {
        let split = self.data.load(&c.data)?;
        let classes = split.train.classes().max(split.test.classes());
        Model::initial(c, split.train.shape(), classes, seeds.init)
    }

    /// The learning curve of the network of `c` trained with `f32` weights: the rule
    /// itself on digital synapses, or backpropagation on the feed-forward network.
    /// `on_epoch` hears of every finished epoch (its index, from 0).
    fn digital_curve(
        &self,
        c: &TrainingConfig,
        seeds: Seeds,
        on_epoch: &mut dyn FnMut(usize),
    ) -> Result<Curve> {
        let split = self.data.load(&c.data)?;
        if c.rule.kind != RuleKind::Backprop {
            let mut model = self.initial_model(c, seeds)?;
            return model.train_and_test(c, &split, seeds.train, on_epoch);
        }
        let classes = split.train.classes().max(split.test.classes());
        let layers = c.feed_forward_layers(classes);
        let mut net = Sequential::random(split.train.shape(), &layers, seeds.init)
            .context("the feed-forward network of network.convs and network.hidden")?;
        let config = c.backprop_config(seeds.train);
        let (report, test) = sequential::train::train_tested(
            &mut net,
            &split.train,
            &split.test,
            &config,
            &mut |r| on_epoch(r.epoch),
        )?;
        Ok(Curve {
            test,
            train: report.epochs.iter().map(|e| e.train_accuracy).collect(),
        })
    }

    fn twin(&self, c: &TrainingConfig, repeat: u32) -> Result<Curve> {
        let key = c.twin_key(repeat)?;
        let cache = self.twins.lock().map_err(|_| poisoned())?;
        cache
            .get(&key)
            .cloned()
            .context("internal error: the digital twin of this job was not trained in prepare")
    }
}

impl JobKind for OnChipTraining {
    fn validate(&self, config: &Value) -> Result<()> {
        TrainingConfig::parse(config).map(|_| ())
    }

    fn prepare(&self, jobs: &[(&Value, JobId)], progress: bool) -> Result<()> {
        let bar = crate::experiment::run::progress_bar(progress, jobs.len(), "jobs prepared");
        for (config, job) in jobs {
            bar.inc(1);
            let c = TrainingConfig::parse(config)?;
            let key = c.twin_key(job.repeat)?;
            if self
                .twins
                .lock()
                .map_err(|_| poisoned())?
                .contains_key(&key)
            {
                continue;
            }
            let what = format!("training the digital twin of repeat {}", job.repeat);
            bar.set_message(what.clone());
            let seeds = Seeds::of(*job);
            let epochs = c.rule.epochs;
            let mut on_epoch = |e: usize| {
                bar.set_message(format!("{what}: epoch {}/{epochs} done", e + 1));
            };
            let twin = self
                .digital_curve(&c, seeds, &mut on_epoch)
                .with_context(|| format!("training the digital twin of repeat {}", job.repeat))?;
            self.twins.lock().map_err(|_| poisoned())?.insert(key, twin);
        }
        bar.finish_and_clear();
        Ok(())
    }

    fn run(&self, config: &Value, job: JobId) -> Result<Vec<f64>> {
        let c = TrainingConfig::parse(config)?;
        let twin = self.twin(&c, job.repeat)?;
        if c.hardware.device == DIGITAL {
            return Ok(metric_values(&twin, &twin, [0.0; 3]));
        }
        let split = self.data.load(&c.data)?;
        let seeds = Seeds::of(job);
        let mut model = self
            .initial_model(&c, seeds)?
            .on_tiles(&c.hardware, seeds.hardware)?;
        let curve = model.train_and_test(&c, &split, seeds.train, &mut |_| {})?;
        let updates = (c.rule.epochs * split.train.len().div_ceil(c.batch_size())) as f64;
        let (pulses, energy_j, time_s) = model.synapses().iter().fold((0.0, 0.0, 0.0), |acc, l| {
            let total = &l.tile().ledger().total;
            (
                acc.0 + total.programming_pulses as f64,
                acc.1 + total.programming_j,
                acc.2 + total.programming_time_s,
            )
        });
        Ok(metric_values(
            &curve,
            &twin,
            [pulses / updates, energy_j / updates, time_s / updates],
        ))
    }
}

/// The metrics of one job, in the order of [`SweepKind::metrics`]: the trained network's
/// curve, its digital twin's, and the write cost per update (pulses, energy, time).
fn metric_values(curve: &Curve, twin: &Curve, cost: [f64; 3]) -> Vec<f64> {
    let mut values = vec![curve.test(), twin.test(), curve.train()];
    values.extend(cost);
    values.extend(&curve.test);
    values.extend(&curve.train);
    values
}

impl Kind for OnChipTraining {
    const NAME: &'static str = "on_chip_training";
    const DESCRIPTION: &'static str = "train a network on crossbar tiles with an on-chip rule (equilibrium propagation or analog SGD), every update a pulse train: accuracy after each epoch against the digital twin, pulses and write energy";
    type Config = TrainingConfig;

    fn config(sections: Value, what: &str) -> Result<TrainingConfig> {
        typed(with_ideal_tile(sections)?, what)
    }
}

impl SweepKind for OnChipTraining {
    fn metrics(config: &TrainingConfig) -> Vec<String> {
        let mut metrics: Vec<String> = [
            "accuracy",
            "digital_accuracy",
            "train_accuracy",
            "pulses_per_update",
            "write_energy_per_update_j",
            "write_time_per_update_s",
        ]
        .map(String::from)
        .to_vec();
        for family in ["accuracy", "train_accuracy"] {
            metrics.extend((1..=config.rule.epochs).map(|k| epoch_metric(family, k)));
        }
        metrics
    }
}

/// Fill the keys of `hardware.tile` that the file does not give from the ideal tile
/// (`TileConfig::ideal()`), so that a partial tile section changes only what it names.
fn with_ideal_tile(mut body: Value) -> Result<Value> {
    let Some(given) = body.get_mut("hardware").and_then(|h| h.get_mut("tile")) else {
        return Ok(body);
    };
    let mut tile = to_value(&TileConfig::ideal())?;
    merge(&mut tile, given.clone());
    *given = tile;
    Ok(body)
}

/// Overlay `top` onto `base`: tables merge key by key, anything else replaces.
fn merge(base: &mut Value, top: Value) {
    match (base, top) {
        (Value::Table(b), Value::Table(t)) => {
            for (key, value) in t {
                match b.get_mut(&key) {
                    Some(slot) => merge(slot, value),
                    None => {
                        b.insert(key, value);
                    }
                }
            }
        }
        (slot, top) => *slot = top,
    }
}
