//! Deploying a trained network on crossbar tiles: each layer's weight matrix is
//! programmed into a [`TiledMatrix`] of devices and read through the synapse seam —
//! [`AnalogSynapses`] for real-valued MLPs, [`SensedSynapses`] (2T2R sense amplifiers) for
//! folded binary/ternary networks — while biases, activations and thresholds stay digital.
//! A sequential network may mix both: its binary and ternary stages go on 2T2R pairs, the
//! others on analog pairs ([`DeployedSynapses`]).

use super::binary::{Quantization, QuantizedMatrix};
use super::mlp::{Dense, Mlp};
use super::network::Classifier;
use super::network::{Layer, Network, evaluate};
use super::sequential::{Pass, Saved, Sequential};
use crate::crossbar::{AdcRange, Direction, TileConfig, TiledMatrix, WeightEncoding};
use crate::data::Dataset;
use crate::device::AnyDevice;
use crate::synapses::{
    AnalogSynapses, DigitalSynapses, InputScaling, InputSource, SensedSynapses, SynapticLayer,
    column_block, read_block_diagonal, read_generated_blocks,
};
use anyhow::{Context, Result, bail, ensure};

/// What a deployed network achieved on a test set.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Outcome {
    /// Test accuracy on the hardware.
    pub accuracy: f64,
    /// RMS of (deployed effective weight - trained weight) / max|trained weight|, over the
    /// weights of all analog layers (0 for a network of binary/ternary layers only).
    pub weight_rms_error: f64,
    /// Fraction of weight reads by the sense amplifiers that differ from the programmed
    /// weight, over the binary/ternary layers (0 for a network of analog layers only).
    pub bit_error_rate: f64,
    /// Read energy of the whole test-set inference (array, DAC, ADC, sense), joules.
    pub read_energy_j: f64,
    /// Read energy per multiply-accumulate, picojoules.
    pub pj_per_mac: f64,
}

/// One weight matrix on tiles: real weights on analog pairs, or binary/ternary weights on
/// 2T2R pairs read through the sense amplifiers.
pub enum DeployedPart {
    /// Real weights (see [`AnalogSynapses`]).
    Analog(AnalogSynapses),
    /// Binary or ternary weights (see [`SensedSynapses`]).
    Sensed(SensedSynapses),
}

impl DeployedPart {
    /// Multiply-accumulate operations of the reads so far.
    pub fn macs(&self) -> f64 {
        match self {
            DeployedPart::Analog(s) => s.macs(),
            DeployedPart::Sensed(s) => s.macs(),
        }
    }

    fn layer(&self) -> &dyn SynapticLayer {
        match self {
            DeployedPart::Analog(s) => s,
            DeployedPart::Sensed(s) => s,
        }
    }

    fn layer_mut(&mut self) -> &mut dyn SynapticLayer {
        match self {
            DeployedPart::Analog(s) => s,
            DeployedPart::Sensed(s) => s,
        }
    }
}

/// A deployed weighted stage of a sequential network: one [`DeployedPart`], or for a
/// grouped convolution's block-diagonal kernel matrix one part per group (diagonal block),
/// each on its own tiles.
pub struct DeployedSynapses {
    blocks: Vec<DeployedPart>,
}

impl DeployedSynapses {
    /// The matrices it is made of, one per diagonal block (one for a full matrix).
    pub fn parts(&self) -> &[DeployedPart] {
        &self.blocks
    }

    /// Multiply-accumulate operations of the reads so far.
    pub fn macs(&self) -> f64 {
        self.blocks.iter().map(DeployedPart::macs).sum()
    }

    /// Inputs and outputs of one diagonal block.
    fn block_shape(&self) -> (usize, usize) {
        let blocks = self.blocks();
        (self.inputs() / blocks, self.outputs() / blocks)
    }
}

impl SynapticLayer for DeployedSynapses {
    fn inputs(&self) -> usize {
        self.blocks.iter().map(|b| b.layer().inputs()).sum()
    }

    fn outputs(&self) -> usize {
        self.blocks.iter().map(|b| b.layer().outputs()).sum()
    }

    fn blocks(&self) -> usize {
        self.blocks.len()
    }

    fn forward(&mut self, x: &[f32], batch: usize, y: &mut [f32]) -> Result<()> {
        let (n, m) = self.block_shape();
        let blocks = &mut self.blocks;
        read_block_diagonal(x, batch, (blocks.len(), n, m), y, |g, x_g, y_g| {
            blocks[g].layer_mut().forward(x_g, batch, y_g)
        })
    }

    fn transposed(&mut self, y: &[f32], batch: usize, x: &mut [f32]) -> Result<()> {
        let (n, m) = self.block_shape();
        let blocks = &mut self.blocks;
        read_block_diagonal(y, batch, (blocks.len(), m, n), x, |g, y_g, x_g| {
            blocks[g].layer_mut().transposed(y_g, batch, x_g)
        })
    }

    /// Each diagonal block streams its own generated inputs (a group's patches) through
    /// its tiles part by part, so a grouped convolution's patches never exist whole.
    fn forward_generated(
        &mut self,
        batch: usize,
        source: &InputSource<'_>,
        buffer: &mut Vec<f32>,
        y: &mut [f32],
    ) -> Result<()> {
        let (_, m) = self.block_shape();
        let blocks = &mut self.blocks;
        read_generated_blocks(batch, (blocks.len(), m), source, y, |g, source_g, y_g| {
            blocks[g]
                .layer_mut()
                .forward_generated(batch, source_g, buffer, y_g)
        })
    }
}

/// Where and how a network is deployed.
pub struct Deployment<'a> {
    /// Device model of every cell.
    pub device: &'a AnyDevice,
    /// Tile configuration.
    pub tile: TileConfig,
    /// Time between programming and inference, seconds.
    pub t_inference_s: f64,
    /// Seed of fabrication, programming and reads (layer `i` uses stream `[i]`).
    pub seed: u64,
}

impl Deployment<'_> {
    /// Fabricate tiles configured as `tile` for a `n_out x n_in` layer at stream path
    /// `layer` and program `weights` (row-major n_out x n_in).
    fn program(
        &self,
        tile: &TileConfig,
        layer: &[u64],
        (n_in, n_out): (usize, usize),
        weights: &[f64],
    ) -> Result<TiledMatrix<AnyDevice>> {
        let seed = crate::rng::stream_key(self.seed, layer);
        let mut matrix = TiledMatrix::new(self.device.clone(), n_in, n_out, tile.clone(), seed)
            .with_context(|| format!("building the tiles of layer {layer:?}"))?;
        matrix
            .program(weights)
            .with_context(|| format!("programming layer {layer:?}"))?;
        matrix.set_read_time(self.t_inference_s)?;
        Ok(matrix)
    }

    /// Program a `n_out x n_in` layer's `weights` on analog tiles read with `scaling`. With
    /// calibrated ADC ranges, `calibration` (`n_cal` row-major vectors the layer reads in the
    /// digital network) sets them once, at the periphery's reference read time right after
    /// programming, as a chip would; the tiles then move on to the inference time.
    fn program_analog(
        &self,
        layer: &[u64],
        (n_in, n_out): (usize, usize),
        weights: &[f64],
        scaling: InputScaling,
        calibration: &[f32],
    ) -> Result<AnalogSynapses> {
        let matrix = self.program(&self.tile, layer, (n_in, n_out), weights)?;
        let mut synapses = AnalogSynapses::new(matrix, scaling);
        if matches!(self.tile.periphery.adc.range, AdcRange::Calibrated { .. }) {
            let n_cal = calibration.len() / n_in;
            ensure!(
                n_cal > 0,
                "layer {layer:?}: calibrated ADC ranges need calibration inputs"
            );
            let reference_s = self.tile.periphery.reference_read_time_s;
            synapses.matrix_mut().set_read_time(reference_s)?;
            let scaled = synapses.scale_inputs(calibration, n_cal, n_in).to_vec();
            calibrate_adcs(synapses.matrix_mut(), &scaled, n_cal)?;
            synapses.matrix_mut().set_read_time(self.t_inference_s)?;
        }
        Ok(synapses)
    }

    /// Program the binary or ternary (`quantization`) weights `programmed` (−1, 0, +1) of a
    /// `n_out x n_in` layer at stream path `layer` on 2T2R pairs (the tile's mapping set to
    /// that encoding), read through the sense amplifiers.
    fn program_sensed(
        &self,
        layer: &[u64],
        (n_in, n_out): (usize, usize),
        programmed: Vec<i8>,
        quantization: Quantization,
    ) -> Result<SensedSynapses> {
        let mut tile = self.tile.clone();
        tile.mapping.encoding = match quantization {
            Quantization::Binary => WeightEncoding::Binary,
            Quantization::Ternary => WeightEncoding::Ternary,
        };
        let targets: Vec<f64> = programmed.iter().map(|&w| f64::from(w)).collect();
        let matrix = self.program(&tile, layer, (n_in, n_out), &targets)?;
        Ok(SensedSynapses::new(matrix, programmed))
    }

    /// Program every weighted stage of a sequential network (convolution kernels and linear
    /// weights; the stage at site path `p` on tiles with stream `p`, i.e. `[i]` for list
    /// index `i`): real stages on analog pairs read with `scaling`, binary and ternary
    /// stages (already quantised, [`Sequential::quantized`]) on 2T2R pairs read through the
    /// sense amplifiers; batch norms stay digital, a per-channel scale and offset after the
    /// ADCs. Calibrated ADC ranges are set on what each analog stage reads when the digital
    /// network sees the row-major images `calibration` (a convolution: every patch of every
    /// image).
    pub fn program_sequential(
        &self,
        net: &Sequential<DigitalSynapses>,
        scaling: InputScaling,
        calibration: &[f32],
    ) -> Result<Sequential<DeployedSynapses>> {
        let reads = if matches!(self.tile.periphery.adc.range, AdcRange::Calibrated { .. }) {
            let n_cal = calibration.len() / net.inputs();
            ensure!(n_cal > 0, "calibrated ADC ranges need calibration images");
            let images = &calibration[..n_cal * net.inputs()];
            net.clone().forward(images, n_cal, Pass::Record)?.1
        } else {
            Vec::new()
        };
        net.map_synapses(|site, synapses, quantization| {
            let inputs = Saved::at(&reads, &site.path).map_or(&[][..], Saved::reads);
            let blocks = synapses.blocks();
            let (n, m) = (synapses.inputs() / blocks, synapses.outputs() / blocks);
            let n_cal = inputs.len() / synapses.inputs();
            let parts = (0..blocks)
                .map(|g| {
                    // A grouped convolution's block `g` gets its own tiles at stream path
                    // `[.., g]`, calibrated on its own columns of the patches; a full matrix
                    // keeps the stage's path.
                    let mut path = site.path.clone();
                    if blocks > 1 {
                        path.push(g as u64);
                    }
                    let calibration = column_block(inputs, n_cal, n, g);
                    let weights = (synapses.block(g), (n, m));
                    let part =
                        self.program_part(&path, weights, quantization, scaling, &calibration);
                    if blocks > 1 {
                        part.with_context(|| format!("group {g}"))
                    } else {
                        part
                    }
                })
                .collect::<Result<_>>()?;
            Ok(DeployedSynapses { blocks: parts })
        })
    }

    /// Program one weight matrix of a sequential network (a stage's, or one diagonal block
    /// of it; `weights`, the trained values; `calibration`, the vectors it reads in the
    /// digital network) at stream path `path`: binary or ternary (`quantization`) on 2T2R
    /// pairs, real on analog pairs.
    fn program_part(
        &self,
        path: &[u64],
        (weights, shape): (&[f32], (usize, usize)),
        quantization: Option<Quantization>,
        scaling: InputScaling,
        calibration: &[f32],
    ) -> Result<DeployedPart> {
        if let Some(q) = quantization {
            let programmed = quantized_weights(weights, q)?;
            let sensed = self.program_sensed(path, shape, programmed, q)?;
            return Ok(DeployedPart::Sensed(sensed));
        }
        let targets: Vec<f64> = weights.iter().map(|&w| f64::from(w)).collect();
        let analog = self.program_analog(path, shape, &targets, scaling, calibration)?;
        Ok(DeployedPart::Analog(analog))
    }

    /// Deploy a sequential network on tiles (see [`Self::program_sequential`]) and measure
    /// it on `test`: the weight error over its analog stages, the bit-error rate over its
    /// sensed (binary and ternary) stages, the read energy of all.
    pub fn evaluate_sequential(
        &self,
        net: &Sequential<DigitalSynapses>,
        scaling: InputScaling,
        calibration: &[f32],
        test: &Dataset,
    ) -> Result<Outcome> {
        let mut deployed = self.program_sequential(net, scaling, calibration)?;
        let mut error = WeightError::default();
        for ((_, d), (_, a)) in net.synapses().into_iter().zip(deployed.synapses()) {
            for (g, part) in a.parts().iter().enumerate() {
                if let DeployedPart::Analog(a) = part {
                    error.add(d.block(g), &a.matrix().effective_weights()?);
                }
            }
        }
        let accuracy = evaluate(&mut deployed, test)?;
        let mut tally = ReadTally::default();
        for (_, layer) in deployed.synapses() {
            for part in layer.parts() {
                match part {
                    DeployedPart::Analog(s) => tally.analog(s),
                    DeployedPart::Sensed(s) => tally.sensed(s),
                }
            }
        }
        Ok(tally.outcome(accuracy, error.rms()))
    }

    /// Deploy an MLP on analog tiles and measure it on `test`. The ADCs are calibrated (if
    /// configured) on `calibration` (`n_cal` row-major training images) at the periphery's
    /// reference read time right after programming, not at the inference time.
    pub fn evaluate_mlp(
        &self,
        mlp: &Mlp,
        scaling: InputScaling,
        calibration: &[f32],
        n_cal: usize,
        test: &Dataset,
    ) -> Result<Outcome> {
        let mut layer_inputs = calibration.to_vec();
        let mut error = WeightError::default();
        let last = mlp.layers().len() - 1;
        let mut net = mlp.deploy(|i, dense| {
            let weights: Vec<f64> = dense.weight().iter().map(|&w| f64::from(w)).collect();
            let shape = (dense.inputs(), dense.outputs());
            let layer =
                self.program_analog(&[i as u64], shape, &weights, scaling, &layer_inputs)?;
            error.add(dense.weight(), &layer.matrix().effective_weights()?);
            layer_inputs = digital_layer(dense, &layer_inputs, n_cal, i < last);
            Ok(layer)
        })?;
        let accuracy = evaluate(&mut net, test)?;
        let mut tally = ReadTally::default();
        net.layers().iter().for_each(|l| tally.analog(&l.op));
        Ok(tally.outcome(accuracy, error.rms()))
    }

    /// Deploy a folded binary/ternary network on 2T2R tiles read by sense amplifiers
    /// (one sensing of every weight per inference batch, then XNOR-popcount style digital
    /// products) and measure it on `test`.
    pub fn evaluate_quantized(
        &self,
        net: &Network<QuantizedMatrix>,
        test: &Dataset,
    ) -> Result<Outcome> {
        let mut layers = Vec::with_capacity(net.layers().len());
        for (i, layer) in net.layers().iter().enumerate() {
            let q = &layer.op;
            let shape = (q.inputs(), q.outputs());
            let programmed = q.weights().to_vec();
            let op = self.program_sensed(&[i as u64], shape, programmed, q.quantization())?;
            layers.push(Layer {
                op,
                neuron: layer.neuron.clone(),
            });
        }
        let mut sensed = Network::new(layers)?;
        if let Some(t) = net.input_threshold() {
            sensed = sensed.with_binary_input(t);
        }
        let accuracy = evaluate(&mut sensed, test)?;
        let mut tally = ReadTally::default();
        sensed.layers().iter().for_each(|l| tally.sensed(&l.op));
        Ok(tally.outcome(accuracy, 0.0))
    }
}

/// The RMS error of deployed effective weights, each layer's relative to its largest
/// |trained weight| (a layer of zero weights has no scale: its error is in weight units).
#[derive(Default)]
struct WeightError {
    squared: f64,
    count: usize,
}

impl WeightError {
    fn add(&mut self, trained: &[f32], deployed: &[f64]) {
        let largest = trained.iter().fold(0f64, |m, w| m.max(f64::from(w.abs())));
        let w_max = if largest > 0.0 { largest } else { 1.0 };
        for (e, &w) in deployed.iter().zip(trained) {
            self.squared += ((e - f64::from(w)) / w_max).powi(2);
        }
        self.count += trained.len();
    }

    fn rms(&self) -> f64 {
        (self.squared / self.count.max(1) as f64).sqrt()
    }
}

/// What the reads of a deployed network's layers add up to: sense-amplifier bit errors
/// over the weights sensed (binary/ternary layers), read energy and MACs (all layers).
#[derive(Default)]
struct ReadTally {
    bit_errors: u64,
    sensed: u64,
    read_j: f64,
    macs: f64,
}

impl ReadTally {
    /// Add an analog layer's reads.
    fn analog(&mut self, s: &AnalogSynapses) {
        self.read_j += s.matrix().total_energy().read_j();
        self.macs += s.macs();
    }

    /// Add a sensed layer's reads and bit errors.
    fn sensed(&mut self, s: &SensedSynapses) {
        let (errors, reads) = s.bit_errors();
        self.bit_errors += errors;
        self.sensed += reads;
        self.read_j += s.matrix().total_energy().read_j();
        self.macs += s.macs();
    }

    /// The outcome of a network of these reads with `accuracy` and `weight_rms_error`.
    fn outcome(&self, accuracy: f64, weight_rms_error: f64) -> Outcome {
        Outcome {
            accuracy,
            weight_rms_error,
            bit_error_rate: self.bit_errors as f64 / self.sensed.max(1) as f64,
            read_energy_j: self.read_j,
            pj_per_mac: per_mac_pj(self.read_j, self.macs),
        }
    }
}

/// A quantised layer's weights (already ±1, or −1/0/+1 for ternary ones,
/// [`Sequential::quantized`]) as the −1/0/+1 values its 2T2R pairs store.
fn quantized_weights(weights: &[f32], quantization: Quantization) -> Result<Vec<i8>> {
    weights
        .iter()
        .map(|&w| match w {
            -1.0 => Ok(-1),
            0.0 if quantization == Quantization::Ternary => Ok(0),
            1.0 => Ok(1),
            _ => bail!(
                "weight {w} is not {quantization:?}: quantise the network before deploying it"
            ),
        })
        .collect()
}

fn per_mac_pj(read_j: f64, macs: f64) -> f64 {
    if macs > 0.0 {
        read_j / macs * 1e12
    } else {
        0.0
    }
}

/// Calibrate the forward ADC ranges of every tile on its block of the `batch` input
/// vectors `x` (row-major, `batch x n_in`).
fn calibrate_adcs(matrix: &mut TiledMatrix<AnyDevice>, x: &[f32], batch: usize) -> Result<()> {
    let n_in = matrix.n_in();
    let (_, col_blocks) = matrix.grid();
    let mut r0 = 0;
    for (k, tile) in matrix.tiles_mut().iter_mut().enumerate() {
        let tn_in = tile.n_in();
        let block: Vec<f32> = x
            .chunks_exact(n_in)
            .flat_map(|v| v[r0..r0 + tn_in].iter().copied())
            .collect();
        tile.calibrate_adc(Direction::Forward, &block, batch)?;
        if (k + 1) % col_blocks == 0 {
            r0 += tn_in;
        }
    }
    Ok(())
}

/// The digital layer's output (ReLU unless it is the last layer), for the next layer's
/// ADC calibration.
fn digital_layer(dense: &Dense, x: &[f32], batch: usize, relu: bool) -> Vec<f32> {
    let (n, m) = (dense.inputs(), dense.outputs());
    let mut y = vec![0f32; batch * m];
    for (xv, yv) in x.chunks_exact(n).zip(y.chunks_exact_mut(m)) {
        for (j, out) in yv.iter_mut().enumerate() {
            let w = &dense.weight()[j * n..(j + 1) * n];
            let s: f32 = w.iter().zip(xv).map(|(a, b)| a * b).sum::<f32>() + dense.bias()[j];
            *out = if relu { s.max(0.0) } else { s };
        }
    }
    y
}
