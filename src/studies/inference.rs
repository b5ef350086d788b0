//! The `inference` experiment kind: train (or import) a network digitally, deploy it on
//! crossbar tiles built from a device preset, and measure its test accuracy and energy.
//!
//! Sections: `[data]` (data set), `[network]` (MLP, binary or ternary network, or a
//! sequential convolutional network as in `docs/NETWORKS.md`; its architecture or imported
//! weights), `[train]` (digital training, optionally
//! hardware-aware), `[hardware]` (device preset and parameter overrides, inference time,
//! input scaling, tile configuration).
//!
//! Metrics per job: `accuracy` (test accuracy on the hardware), `digital_accuracy` (the
//! same network in floating point), `weight_rms_error` (RMS of the deployed effective
//! weights minus the trained ones, relative to the largest |weight| of each layer; analog
//! networks, 0 for binary ones), `bit_error_rate` (fraction of weights the sense
//! amplifiers read wrong; binary/ternary networks, 0 for analog ones),
//! `read_energy_per_image_j` and `read_pj_per_mac` (array, DAC, ADC and sense energy of
//! the test-set inference, from the tiles' ledgers). Training depends only on
//! data, network, train and the repeat index, so every hardware point of a sweep deploys
//! the same trained network of its repeat (paired comparisons); it is done once per
//! repeat in [`JobKind::prepare`].

use super::data_source::{DataCache, DataConfig, poisoned};
use crate::crossbar::TileConfig;
use crate::data::Split;
use crate::device::{AnyDevice, preset};
use crate::experiment::config::typed;
use crate::experiment::kinds::{Kind, SweepKind};
use crate::experiment::run::{JobId, JobKind};
use crate::nn::Deployment;
use crate::nn::binary::{InputEncoding, Quantization, QuantizedMatrix, QuantizedMlp};
use crate::nn::sequential::spec::{self, LayerSpec};
use crate::nn::sequential::{self, Sequential, state_dict};
use crate::nn::{self, Mlp, Network, TrainConfig};
use crate::synapses::DigitalSynapses;
use crate::synapses::InputScaling;
use anyhow::{Context, Result, bail, ensure};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use toml::Value;

use crate::rng::{
    EXPERIMENT_HARDWARE_STREAM as HARDWARE_STREAM, EXPERIMENT_INIT_STREAM as INIT_STREAM,
    EXPERIMENT_TRAIN_STREAM as TRAIN_STREAM,
};

/// What kind of network is deployed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkKind {
    /// Real-valued ReLU multilayer perceptron on analog differential pairs.
    #[default]
    Mlp,
    /// Binarized network (±1 weights, batch norm folded into thresholds) on 2T2R pairs
    /// read by precharge sense amplifiers.
    Bnn,
    /// Ternary network (−1/0/+1 weights) on 2T2R pairs with a sense-amplifier dead zone.
    Tnn,
    /// A layer list mirroring a PyTorch `nn.Sequential` (convolutions, pooling, linear
    /// layers; `network.arch` or `network.layers`) on analog differential pairs; its
    /// binary and ternary layers (`quantization`) on 2T2R pairs read by sense amplifiers.
    Sequential,
}

impl NetworkKind {
    /// The kind as written in a configuration.
    fn name(self) -> &'static str {
        match self {
            NetworkKind::Mlp => "mlp",
            NetworkKind::Bnn => "bnn",
            NetworkKind::Tnn => "tnn",
            NetworkKind::Sequential => "sequential",
        }
    }
}

/// `[network]`: the network to deploy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// Real-valued MLP, binarized or ternary network, or a sequential (convolutional)
    /// network.
    pub kind: NetworkKind,
    /// Hidden layer widths (MLP, binary and ternary networks).
    pub hidden: Vec<usize>,
    /// Sequential networks: a named architecture (`lenet5`; `docs/NETWORKS.md`), or empty
    /// to use `layers`.
    pub arch: String,
    /// Sequential networks: the layer list, index for index a PyTorch `nn.Sequential`
    /// (e.g. `[{ conv2d = { out = 6, kernel = 5 } }, "relu", "flatten", { linear = 10 }]`).
    pub layers: Vec<Value>,
    /// Weights to import instead of training, in PyTorch layout: for an MLP a directory of
    /// `0.weight.npy`, `0.bias.npy`, ...; for a sequential network a `.safetensors` file of
    /// its `state_dict` or such a directory. Empty: train.
    pub weights: String,
    /// Binary/ternary networks (`bnn`, `tnn`): binarise the input pixels too (±1 inputs),
    /// so that every layer is an XNOR-popcount layer. Refused for the other kinds, which
    /// read the real pixels.
    pub binary_inputs: bool,
    /// Write every network trained by the run into the output directory, in PyTorch
    /// layout, for `network.weights` or PyTorch to load: `weights/point_P_repeat_K.safetensors`
    /// (a sequential network's `state_dict`) or the directory `weights/point_P_repeat_K/`
    /// (an MLP's `0.weight.npy`, `0.bias.npy`, ...), P the first point that uses it; binary
    /// and ternary layers with their quantised weights. MLP and sequential networks that
    /// are trained (not imported) only.
    pub export: bool,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            kind: NetworkKind::Mlp,
            hidden: vec![256, 128],
            arch: String::new(),
            layers: Vec::new(),
            weights: String::new(),
            binary_inputs: false,
            export: false,
        }
    }
}

impl NetworkConfig {
    /// The layers of a sequential network, with the input shape `[C, H, W]` of a named
    /// architecture (a layer list takes the data's shape).
    fn layer_specs(&self) -> Result<(Option<[usize; 3]>, Vec<LayerSpec>)> {
        match (self.arch.is_empty(), self.layers.is_empty()) {
            (false, false) => {
                bail!("network.arch and network.layers are both set: keep one of them")
            }
            (true, true) => bail!(
                "network.kind = \"sequential\" needs network.arch (one of: {}) or a \
                 network.layers list",
                spec::ARCHITECTURES.join(", ")
            ),
            (false, true) => {
                let (input, layers) = spec::named(&self.arch).with_context(|| {
                    format!(
                        "network.arch = \"{}\" is not a known architecture (known: {})",
                        self.arch,
                        spec::ARCHITECTURES.join(", ")
                    )
                })?;
                Ok((Some(input), layers))
            }
            (true, false) => Ok((
                None,
                spec::parse_layers(&Value::Array(self.layers.clone()))?,
            )),
        }
    }
}

/// `[hardware]`: the simulated chip.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HardwareConfig {
    /// Device preset name (`xbar devices` lists them) or path to a preset TOML file.
    pub device: String,
    /// Overrides of the preset's parameters, by name (e.g. `g_max_s = 2.5e-5`).
    pub device_params: toml::Table,
    /// Multiplies every variability parameter of the device (device-to-device spread,
    /// cycle-to-cycle, programming and read noise; see
    /// `device::preset::variability_parameters`) after the overrides: 1 = as published,
    /// 0 = noise-free, 2 = twice as variable.
    pub variability_scale: f64,
    /// Time between programming and inference, seconds (drift, relaxation).
    pub t_inference_s: f64,
    /// How inputs are brought into the DAC range (analog MLPs).
    pub input_scaling: InputScaling,
    /// Training images used to calibrate the ADC ranges (`tile.periphery.adc.range.mode =
    /// "calibrated"`), propagated through the digital network to every layer.
    pub calibration_images: usize,
    /// The tile: mapping, periphery, programming, faults, wires, energy. For binary and
    /// ternary networks the mapping encoding is set to match the network.
    pub tile: TileConfig,
}

impl Default for HardwareConfig {
    fn default() -> Self {
        Self {
            device: "ideal".to_string(),
            device_params: toml::Table::new(),
            variability_scale: 1.0,
            t_inference_s: 1.0,
            input_scaling: InputScaling::AbsMax,
            calibration_images: 256,
            tile: TileConfig::default(),
        }
    }
}

/// All sections of an inference experiment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InferenceConfig {
    /// Data set.
    pub data: DataConfig,
    /// Network.
    pub network: NetworkConfig,
    /// Digital training.
    pub train: TrainConfig,
    /// Hardware.
    pub hardware: HardwareConfig,
    /// Free-form labels of the point (not used by the simulation), e.g. a sweep's series
    /// names for the plots; left out of the configuration when empty, so experiments
    /// without labels keep their fingerprints.
    #[serde(skip_serializing_if = "toml::Table::is_empty")]
    pub labels: toml::Table,
}

impl HardwareConfig {
    /// The device model: preset, overrides, variability scale.
    fn device(&self) -> Result<AnyDevice> {
        preset::load_scaled(&self.device, &self.device_params, self.variability_scale)
            .context("hardware.device / hardware.device_params / hardware.variability_scale")
    }
}

impl InferenceConfig {
    fn validate(&self) -> Result<()> {
        self.train.validate().context("[train]")?;
        self.hardware.tile.validate().context("[hardware.tile]")?;
        ensure!(
            self.network.hidden.iter().all(|&h| h > 0),
            "network.hidden = {:?}: every hidden layer needs at least one neuron",
            self.network.hidden
        );
        ensure!(
            self.network.weights.is_empty()
                || matches!(
                    self.network.kind,
                    NetworkKind::Mlp | NetworkKind::Sequential
                ),
            "network.weights: importing weights is supported for network.kind = \"mlp\" and \
             \"sequential\" only"
        );
        ensure!(
            !self.network.export
                || (self.network.weights.is_empty()
                    && matches!(
                        self.network.kind,
                        NetworkKind::Mlp | NetworkKind::Sequential
                    )),
            "network.export: writing trained weights is supported for trained (not imported, \
             network.weights empty) networks of kind \"mlp\" and \"sequential\""
        );
        ensure!(
            !self.network.binary_inputs
                || matches!(self.network.kind, NetworkKind::Bnn | NetworkKind::Tnn),
            "network.binary_inputs = true binarises the input pixels of the fully connected \
             binary and ternary networks (network.kind = \"bnn\" or \"tnn\") only; a \
             network of kind \"{}\" reads the real pixels: remove network.binary_inputs (in a \
             sweep over network.kind, set it per point)",
            self.network.kind.name()
        );
        let sequential = self.network.kind == NetworkKind::Sequential;
        let described = !self.network.arch.is_empty() || !self.network.layers.is_empty();
        ensure!(
            sequential || !described,
            "network.arch / network.layers describe a sequential network: set network.kind = \
             \"sequential\" (or remove them and use network.hidden)"
        );
        if sequential {
            self.network.layer_specs()?;
        }
        let t = self.hardware.t_inference_s;
        ensure!(
            t.is_finite() && t > 0.0,
            "hardware.t_inference_s = {t}: must be a positive number of seconds"
        );
        ensure!(
            self.hardware.calibration_images > 0,
            "hardware.calibration_images must be at least 1"
        );
        Ok(())
    }

    /// The part of the configuration that determines the trained network.
    fn training_key(&self, repeat: u32) -> Result<String> {
        Ok(format!(
            "{}#{repeat}",
            serde_json::to_string(&(&self.data, &self.network, &self.train))?
        ))
    }
}

/// A trained network with its digital test accuracy.
struct Trained {
    network: TrainedNetwork,
    digital_accuracy: f64,
}

enum TrainedNetwork {
    Mlp(Mlp),
    Quantized(Network<QuantizedMatrix>),
    Sequential(Sequential<DigitalSynapses>),
}

/// The inference experiment kind.
#[derive(Default)]
pub struct Inference {
    /// Data sets by configuration, loaded once.
    data: DataCache,
    /// Trained networks by training key, filled in `prepare`.
    trained: Mutex<HashMap<String, Arc<Trained>>>,
}

impl Inference {
    fn parse(config: &Value) -> Result<InferenceConfig> {
        let c: InferenceConfig = typed(config.clone(), "the experiment's sections")?;
        c.validate()?;
        Ok(c)
    }

    /// Layer sizes: the data's inputs, the hidden layers, the data's classes.
    fn sizes(c: &InferenceConfig, split: &Split) -> Vec<usize> {
        let mut sizes = vec![split.train.features()];
        sizes.extend(&c.network.hidden);
        sizes.push(split.train.classes().max(split.test.classes()));
        sizes
    }

    /// The input shape and layers of a sequential network on the images of `split`,
    /// checked against the data: a named architecture's input shape, and enough class
    /// scores.
    fn sequential_arch(c: &InferenceConfig, split: &Split) -> Result<([usize; 3], Vec<LayerSpec>)> {
        let (named_input, layers) = c.network.layer_specs()?;
        let data = split.train.shape();
        if let Some(input) = named_input {
            ensure!(
                input == data,
                "network.arch = \"{}\" takes {} images (channels x height x width) but \
                 data.source = {} holds {}",
                c.network.arch,
                crate::data::shape_text(input),
                c.data.source,
                crate::data::shape_text(data)
            );
        }
        let resolved = spec::resolve(data, &layers)?;
        let scores = resolved.last().map_or(0, |l| l.output.len());
        let classes = split.train.classes().max(split.test.classes());
        ensure!(
            scores >= classes,
            "the last layer of the network gives {scores} class scores but data.source = {} \
             has {classes} classes: end with a linear layer of {classes} outputs",
            c.data.source
        );
        Ok((data, layers))
    }

    /// Imported weights must have the configured architecture: for an MLP the data's
    /// inputs and classes and `network.hidden` as hidden layers (so that the run record
    /// states the shape that ran); for a sequential network every key and shape of its
    /// `state_dict`.
    fn check_imported(c: &InferenceConfig, split: &Split) -> Result<()> {
        if c.network.weights.is_empty() {
            return Ok(());
        }
        if c.network.kind == NetworkKind::Sequential {
            return Self::import_sequential(c, split).map(drop);
        }
        let mlp = nn::weights::load_mlp(std::path::Path::new(&c.network.weights))
            .context("network.weights")?;
        let found = mlp.sizes();
        let expected = Self::sizes(c, split);
        let hidden = &found[1..found.len() - 1];
        ensure!(
            found == expected,
            "network.weights = {}: the weights are a {} network, but the configuration says {} \
             ({} inputs and {} classes from the data, network.hidden = {:?}); set \
             network.hidden = {hidden:?} to import them",
            c.network.weights,
            dashed(&found),
            dashed(&expected),
            expected[0],
            expected[expected.len() - 1],
            c.network.hidden
        );
        Ok(())
    }

    /// The configured sequential network with the weights of `network.weights`.
    fn import_sequential(
        c: &InferenceConfig,
        split: &Split,
    ) -> Result<Sequential<DigitalSynapses>> {
        let (input, layers) = Self::sequential_arch(c, split)?;
        let mut net = Sequential::random(input, &layers, 0)?;
        state_dict::load(&mut net, std::path::Path::new(&c.network.weights))
            .context("network.weights")?;
        Ok(net)
    }

    /// The network's weights (with biases) and the activation values per image that
    /// training keeps (a convolution's im2col patches included), with a description.
    fn footprint(c: &InferenceConfig, split: &Split) -> Result<(f64, f64, String)> {
        if c.network.kind != NetworkKind::Sequential {
            let sizes = Self::sizes(c, split);
            let weights = sizes.windows(2).map(|w| (w[0] as f64 + 1.0) * w[1] as f64);
            let neurons = sizes.iter().map(|&n| n as f64).sum();
            return Ok((
                weights.sum(),
                neurons,
                format!("a {} network", dashed(&sizes)),
            ));
        }
        let (input, layers) = Self::sequential_arch(c, split)?;
        let (weights, values) = spec::resolve(input, &layers)?
            .iter()
            .map(spec::ResolvedLayer::footprint)
            .fold((0.0, 0.0), |(w, v), (dw, dv)| (w + dw, v + dv));
        Ok((
            weights,
            values,
            format!("a sequential network of {} layers", layers.len()),
        ))
    }

    /// Refuse a job whose network would not fit in memory: training (the weights with their
    /// optimiser state, and the activations of a batch) plus one deployment per worker
    /// thread (device states and read caches, `crossbar::tiled::deployed_bytes`); the
    /// training byte counts are the constants below.
    fn check_memory(c: &InferenceConfig, split: &Split) -> Result<()> {
        let (weights, neurons, what) = Self::footprint(c, split)?;
        let training = TRAINING_BYTES_PER_WEIGHT * weights
            + ACTIVATION_BYTES_PER_NEURON * c.train.batch_size as f64 * neurons;
        let deployment = crate::crossbar::tiled::deployed_bytes(weights, &c.hardware.tile);
        let parallel_jobs = rayon::current_num_threads() as f64;
        crate::memory::ensure_fits(
            training + parallel_jobs * deployment,
            &what,
            if c.network.kind == NetworkKind::Sequential {
                "use fewer or narrower layers in network.layers (or fewer --threads)"
            } else {
                "use smaller network.hidden layers (or fewer --threads)"
            },
        )
    }

    fn train_network(&self, c: &InferenceConfig, job: JobId, bar: &ProgressBar) -> Result<Trained> {
        let split = self.data.load(&c.data)?;
        let sizes = Self::sizes(c, &split);
        let init_seed = crate::rng::stream_key(job.seed, &[INIT_STREAM, u64::from(job.repeat)]);
        let train = TrainConfig {
            seed: crate::rng::stream_key(job.seed, &[TRAIN_STREAM, u64::from(job.repeat)]),
            ..c.train.clone()
        };
        let mut on_epoch = |_: &nn::EpochReport| bar.inc(1);
        let mut network = match c.network.kind {
            // Binary and ternary layers are measured, deployed and exported with the
            // quantised weights their forward pass uses.
            NetworkKind::Sequential if !c.network.weights.is_empty() => {
                TrainedNetwork::Sequential(Self::import_sequential(c, &split)?.quantized())
            }
            NetworkKind::Sequential => {
                let (input, layers) = Self::sequential_arch(c, &split)?;
                let mut net = Sequential::random(input, &layers, init_seed)?;
                sequential::train::train(&mut net, &split.train, &train, &mut on_epoch)?;
                TrainedNetwork::Sequential(net.quantized())
            }
            NetworkKind::Mlp if !c.network.weights.is_empty() => TrainedNetwork::Mlp(
                nn::weights::load_mlp(std::path::Path::new(&c.network.weights))
                    .context("network.weights")?,
            ),
            NetworkKind::Mlp => {
                let mut mlp = Mlp::random(&sizes, init_seed)?;
                nn::backprop::train_observed(&mut mlp, &split.train, &train, &mut on_epoch)?;
                TrainedNetwork::Mlp(mlp)
            }
            NetworkKind::Bnn | NetworkKind::Tnn => {
                let q = if c.network.kind == NetworkKind::Bnn {
                    Quantization::Binary
                } else {
                    Quantization::Ternary
                };
                let input = if c.network.binary_inputs {
                    InputEncoding::Binary
                } else {
                    InputEncoding::Real
                };
                let mut net = QuantizedMlp::random(&sizes, q, input, init_seed)?;
                nn::binary::train_quantized_observed(
                    &mut net,
                    &split.train,
                    &train,
                    &mut on_epoch,
                )?;
                TrainedNetwork::Quantized(net.fold()?)
            }
        };
        let digital_accuracy = match &mut network {
            TrainedNetwork::Mlp(m) => nn::evaluate(m, &split.test)?,
            TrainedNetwork::Quantized(n) => nn::evaluate(n, &split.test)?,
            TrainedNetwork::Sequential(n) => nn::evaluate(n, &split.test)?,
        };
        Ok(Trained {
            network,
            digital_accuracy,
        })
    }

    fn trained(&self, c: &InferenceConfig, repeat: u32) -> Result<Arc<Trained>> {
        let key = c.training_key(repeat)?;
        let cache = self.trained.lock().map_err(|_| poisoned())?;
        cache
            .get(&key)
            .cloned()
            .context("internal error: the network of this job was not trained in prepare")
    }
}

impl Inference {
    /// Save the network of `c`'s repeat `job` as `weights/point_P_repeat_K` under `dir`
    /// unless that file is already there; returns its path relative to `dir`.
    fn export_one(&self, c: &InferenceConfig, job: JobId, dir: &Path) -> Result<String> {
        let trained = self.trained(c, job.repeat)?;
        let stem = format!("{EXPORT_DIR}/point_{}_repeat_{}", job.point, job.repeat);
        let name = match trained.network {
            TrainedNetwork::Sequential(_) => format!("{stem}.safetensors"),
            _ => stem,
        };
        let path = dir.join(&name);
        if path.exists() {
            return Ok(name);
        }
        std::fs::create_dir_all(dir.join(EXPORT_DIR))
            .with_context(|| format!("cannot create {}", dir.join(EXPORT_DIR).display()))?;
        match &trained.network {
            TrainedNetwork::Sequential(net) => state_dict::save(net, &path)?,
            TrainedNetwork::Mlp(mlp) => {
                // A directory of files: written beside and renamed, so that an interrupted
                // export never leaves a partial directory under the final name.
                let partial = dir.join(format!("{name}.partial"));
                if partial.exists() {
                    std::fs::remove_dir_all(&partial)
                        .with_context(|| format!("cannot remove {}", partial.display()))?;
                }
                crate::nn::weights::save_mlp(mlp, &partial)?;
                std::fs::rename(&partial, &path).with_context(|| {
                    format!("cannot rename {} to {}", partial.display(), path.display())
                })?;
            }
            TrainedNetwork::Quantized(_) => {
                bail!("internal error: validation lets only MLP and sequential networks export")
            }
        }
        Ok(name)
    }
}

/// Directory (inside the output directory) of exported weights.
const EXPORT_DIR: &str = "weights";

impl JobKind for Inference {
    fn validate(&self, config: &Value) -> Result<()> {
        let c = Self::parse(config)?;
        c.hardware.device()?;
        let split = self.data.load(&c.data)?;
        Self::check_imported(&c, &split)?;
        Self::check_memory(&c, &split)
    }

    fn prepare(&self, jobs: &[(&Value, JobId)], progress: bool) -> Result<()> {
        let mut to_train: Vec<(String, InferenceConfig, JobId)> = Vec::new();
        for (config, job) in jobs {
            let c = Self::parse(config)?;
            let key = c.training_key(job.repeat)?;
            let known = self
                .trained
                .lock()
                .map_err(|_| poisoned())?
                .contains_key(&key);
            if !known && !to_train.iter().any(|(k, _, _)| *k == key) {
                to_train.push((key, c, *job));
            }
        }
        let epochs = |c: &InferenceConfig| {
            if c.network.weights.is_empty() {
                c.train.epochs
            } else {
                0
            }
        };
        let total: usize = to_train.iter().map(|(_, c, _)| epochs(c)).sum();
        let bar = crate::experiment::run::progress_bar(progress && total > 0, total, "epochs");
        for (key, c, job) in to_train {
            bar.set_message(format!("training the network of repeat {}", job.repeat));
            let t = self
                .train_network(&c, job, &bar)
                .with_context(|| format!("training the network of repeat {}", job.repeat))?;
            self.trained
                .lock()
                .map_err(|_| poisoned())?
                .insert(key, Arc::new(t));
        }
        bar.finish_and_clear();
        Ok(())
    }

    fn export(&self, jobs: &[(&Value, JobId)], dir: &Path) -> Result<Vec<String>> {
        let mut done: Vec<String> = Vec::new();
        let mut files = Vec::new();
        for (config, job) in jobs {
            let c = Self::parse(config)?;
            let key = c.training_key(job.repeat)?;
            if !c.network.export || done.contains(&key) {
                continue;
            }
            files.push(self.export_one(&c, *job, dir).context("network.export")?);
            done.push(key);
        }
        Ok(files)
    }

    fn run(&self, config: &Value, job: JobId) -> Result<Vec<f64>> {
        let c = Self::parse(config)?;
        let trained = self.trained(&c, job.repeat)?;
        let split = self.data.load(&c.data)?;
        let device = c.hardware.device()?;
        let seed = crate::rng::stream_key(
            job.seed,
            &[HARDWARE_STREAM, u64::from(job.repeat), job.point as u64],
        );
        let deployment = Deployment {
            device: &device,
            tile: c.hardware.tile.clone(),
            t_inference_s: c.hardware.t_inference_s,
            seed,
        };
        let n_cal = c.hardware.calibration_images.min(split.train.len());
        let calibration = &split.train.images[..n_cal * split.train.features()];
        let scaling = c.hardware.input_scaling;
        let outcome = match &trained.network {
            TrainedNetwork::Mlp(mlp) => {
                deployment.evaluate_mlp(mlp, scaling, calibration, n_cal, &split.test)?
            }
            TrainedNetwork::Quantized(net) => deployment.evaluate_quantized(net, &split.test)?,
            TrainedNetwork::Sequential(net) => {
                deployment.evaluate_sequential(net, scaling, calibration, &split.test)?
            }
        };
        Ok(vec![
            outcome.accuracy,
            trained.digital_accuracy,
            outcome.weight_rms_error,
            outcome.bit_error_rate,
            outcome.read_energy_j / split.test.len() as f64,
            outcome.pj_per_mac,
        ])
    }

    fn unbounded_metrics(&self) -> &'static [&'static str] {
        // Devices far beyond their published variability can store infinite conductances
        // (a log-normal spread overflows): the weights are then lost, and the error says so.
        &["weight_rms_error"]
    }
}

impl Kind for Inference {
    const NAME: &'static str = "inference";
    const DESCRIPTION: &'static str = "train (or import) a network digitally, deploy it on crossbar tiles of a device preset, measure accuracy and energy";
    type Config = InferenceConfig;
}

impl SweepKind for Inference {
    fn metrics(_: &InferenceConfig) -> Vec<String> {
        [
            "accuracy",
            "digital_accuracy",
            "weight_rms_error",
            "bit_error_rate",
            "read_energy_per_image_j",
            "read_pj_per_mac",
        ]
        .map(String::from)
        .to_vec()
    }
}

/// Training memory per weight, bytes: the `f32` weight, its gradient, two optimiser
/// moments and the noisy copy of hardware-aware training (5 x 4 bytes).
const TRAINING_BYTES_PER_WEIGHT: f64 = 20.0;
/// Training memory per neuron and image of a batch, bytes: the `f32` pre-activation,
/// activation and their two gradients (4 x 4 bytes).
const ACTIVATION_BYTES_PER_NEURON: f64 = 16.0;
/// Layer sizes as `784-256-10`.
fn dashed(sizes: &[usize]) -> String {
    sizes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("-")
}
