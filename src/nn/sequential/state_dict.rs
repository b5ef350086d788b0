//! PyTorch interop for sequential networks: the weights as a PyTorch `state_dict`, read
//! from and written to a `.safetensors` file or a directory of `.npy` files.
//!
//! Keys are PyTorch's for the `nn.Sequential` that the layer list mirrors: the weighted
//! layer at list index `i` has `i.weight` (`nn.Conv2d`: `C_out x C_in/groups x k x k`, OIHW;
//! `nn.Linear`: `out x in`) and, unless built with `bias = false`, `i.bias` (`C_out` or
//! `out`); a batch norm has `i.weight` (γ), `i.bias` (β), `i.running_mean`,
//! `i.running_var` and `i.num_batches_tracked` (int64); a residual block's modules are
//! keyed `i.conv1`, `i.bn1`, `i.conv2`, `i.bn2`, `i.downsample.0`, `i.downsample.1` as in
//! torchvision's `BasicBlock`. Tensors are float32 (float64 is accepted and rounded). A
//! PyTorch model is exported with
//!
//! ```python
//! from safetensors.torch import save_file
//! save_file(model.state_dict(), "model.safetensors")       # or, one .npy per key:
//! for k, v in model.state_dict().items(): np.save(f"dir/{k}.npy", v.numpy().astype("<f4"))
//! ```
//!
//! Loading checks the file against the architecture: a missing key, a key the network does
//! not have, a wrong shape or an unsupported dtype is an error naming the key, the expected
//! and the found shape.

use super::{Sequential, Stage, visit_stages, visit_stages_mut};
use crate::npy::{Elements, NpyData, read_npy_data};
use crate::synapses::{DigitalSynapses, SynapticLayer};
use anyhow::{Context, Result, bail, ensure};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use std::collections::BTreeMap;
use std::path::Path;

/// One named tensor of a state dict: its shape (outermost first) and its values in C order.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Sizes of each dimension.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<f32>,
}

/// Tensors by PyTorch key (`0.weight`, `0.bias`, `3.weight`, ...).
pub type StateDict = BTreeMap<String, Tensor>;

/// File extension of the safetensors format.
const SAFETENSORS_EXTENSION: &str = "safetensors";
/// Bytes of memory per stored byte while loading a safetensors file (the file and the
/// f32 tensors made from it).
const LOAD_BYTES_PER_FILE_BYTE: f64 = 2.0;

/// Suffix of a batch norm's count of training batches, an int64 scalar in PyTorch.
const BATCHES_TRACKED: &str = "num_batches_tracked";

impl Sequential<DigitalSynapses> {
    /// The network's parameters and batch-norm buffers by PyTorch key.
    pub fn state_dict(&self) -> StateDict {
        let mut dict = StateDict::new();
        visit_stages(&self.stages, &mut |site, stage| {
            for (name, shape, data) in stage_tensors(stage) {
                dict.insert(format!("{}.{name}", site.key), Tensor { shape, data });
            }
        });
        dict
    }

    /// Replace every parameter and buffer by the tensors of `dict`, which must hold exactly
    /// the network's keys with its shapes.
    pub fn load_state_dict(&mut self, dict: &StateDict) -> Result<()> {
        let expected = self.state_dict();
        if let Some(key) = dict.keys().find(|k| !expected.contains_key(*k)) {
            bail!(
                "key {key} is not a parameter of this architecture (its keys: {}): the file \
                 belongs to another network",
                key_list(&expected)
            );
        }
        for (key, want) in &expected {
            let found = dict.get(key).with_context(|| {
                format!(
                    "key {key} (shape {:?}) is missing: the file holds {}",
                    want.shape,
                    key_list(dict)
                )
            })?;
            ensure!(
                found.shape == want.shape,
                "key {key}: expected shape {:?}, found {:?}",
                want.shape,
                found.shape
            );
        }
        visit_stages_mut(&mut self.stages, &mut |site, stage| {
            let tensor = |name: &str| &dict[&format!("{}.{name}", site.key)].data;
            for (name, values) in tensors_mut(stage) {
                values.copy_from_slice(tensor(name));
            }
            if let Stage::BatchNorm { norm, .. } = stage {
                norm.batches_tracked = tensor(BATCHES_TRACKED)[0] as u64;
            }
        });
        Ok(())
    }
}

/// Names of a batch norm's running statistics: buffers, not learned parameters.
pub(crate) const RUNNING_STATISTICS: [&str; 2] = ["running_mean", "running_var"];

/// A stage's own float tensors by PyTorch name, mutable: `weight` and `bias` (a batch
/// norm's γ and β), then a batch norm's [`RUNNING_STATISTICS`].
pub(crate) fn tensors_mut(stage: &mut Stage<DigitalSynapses>) -> Vec<(&'static str, &mut [f32])> {
    match stage {
        Stage::Conv { synapses, bias, .. } | Stage::Linear { synapses, bias, .. } => {
            let mut found = vec![("weight", synapses.weight_mut())];
            if let Some(bias) = bias {
                found.push(("bias", bias.as_mut_slice()));
            }
            found
        }
        Stage::BatchNorm { norm, .. } => vec![
            ("weight", norm.gamma.as_mut_slice()),
            ("bias", norm.beta.as_mut_slice()),
            (RUNNING_STATISTICS[0], norm.running_mean.as_mut_slice()),
            (RUNNING_STATISTICS[1], norm.running_var.as_mut_slice()),
        ],
        _ => Vec::new(),
    }
}

/// A stage's own tensors: PyTorch name, shape and values.
fn stage_tensors(stage: &Stage<DigitalSynapses>) -> Vec<(&'static str, Vec<usize>, Vec<f32>)> {
    let vector = |v: &[f32]| vec![v.len()];
    match stage {
        Stage::Conv {
            geometry,
            synapses,
            bias,
            ..
        } => {
            let g = geometry;
            let shape = vec![g.out_channels, g.in_channels / g.groups, g.kernel, g.kernel];
            weight_and_bias(shape, synapses, bias.as_deref())
        }
        Stage::Linear { synapses, bias, .. } => {
            let shape = vec![synapses.outputs(), synapses.inputs()];
            weight_and_bias(shape, synapses, bias.as_deref())
        }
        Stage::BatchNorm { norm, .. } => vec![
            ("weight", vector(&norm.gamma), norm.gamma.clone()),
            ("bias", vector(&norm.beta), norm.beta.clone()),
            (
                RUNNING_STATISTICS[0],
                vector(&norm.running_mean),
                norm.running_mean.clone(),
            ),
            (
                RUNNING_STATISTICS[1],
                vector(&norm.running_var),
                norm.running_var.clone(),
            ),
            (
                BATCHES_TRACKED,
                Vec::new(),
                vec![norm.batches_tracked as f32],
            ),
        ],
        _ => Vec::new(),
    }
}

fn weight_and_bias(
    shape: Vec<usize>,
    synapses: &DigitalSynapses,
    bias: Option<&[f32]>,
) -> Vec<(&'static str, Vec<usize>, Vec<f32>)> {
    let mut tensors = vec![("weight", shape, synapses.weight().to_vec())];
    if let Some(bias) = bias {
        tensors.push(("bias", vec![bias.len()], bias.to_vec()));
    }
    tensors
}

fn key_list(dict: &StateDict) -> String {
    if dict.is_empty() {
        return "no tensors".into();
    }
    dict.keys().cloned().collect::<Vec<_>>().join(", ")
}

/// Whether `path` names a safetensors file (by its extension) rather than a `.npy` directory.
fn is_safetensors(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case(SAFETENSORS_EXTENSION))
}

/// Read a state dict from a `.safetensors` file or a directory of `KEY.npy` files.
pub fn read_state_dict(path: &Path) -> Result<StateDict> {
    if is_safetensors(path) {
        read_safetensors(path)
    } else if path.is_dir() {
        read_npy_dir(path)
    } else {
        bail!(
            "{}: not a .safetensors file nor a directory of .npy files",
            path.display()
        )
    }
}

/// Write a state dict as a `.safetensors` file (by the extension) or into a directory of
/// `KEY.npy` files, which must not exist yet (no file of an earlier export is overwritten).
pub fn write_state_dict(path: &Path, dict: &StateDict) -> Result<()> {
    ensure!(
        !path.exists(),
        "{} already exists: export into a new path (existing weights are never overwritten)",
        path.display()
    );
    if is_safetensors(path) {
        let bytes = safetensors_bytes(dict)?;
        crate::atomic::write_atomic(path, &bytes)
    } else {
        std::fs::create_dir_all(path)
            .with_context(|| format!("cannot create weight directory {}", path.display()))?;
        for (key, t) in dict {
            let elements = if key.ends_with(BATCHES_TRACKED) {
                Elements::I64(t.data.iter().map(|&v| v as i64).collect())
            } else {
                Elements::F32(t.data.clone())
            };
            let file = path.join(format!("{key}.npy"));
            let bytes = NpyData {
                shape: t.shape.clone(),
                elements,
            }
            .to_bytes()?;
            crate::atomic::write_atomic(&file, &bytes)
                .with_context(|| format!("writing .npy file {}", file.display()))?;
        }
        Ok(())
    }
}

fn read_safetensors(path: &Path) -> Result<StateDict> {
    let what = format!("safetensors file {}", path.display());
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read {what}"))?
        .len();
    crate::memory::ensure_fits(
        LOAD_BYTES_PER_FILE_BYTE * len as f64,
        &format!("loading {what}"),
        "check that the file holds the network's weights",
    )?;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {what}"))?;
    let file = SafeTensors::deserialize(&bytes)
        .map_err(|e| anyhow::anyhow!("{what} is not a valid safetensors file: {e}"))?;
    file.iter()
        .map(|(key, view)| {
            let data = to_f32(&view, key.ends_with(BATCHES_TRACKED))
                .with_context(|| format!("{what}, key {key}"))?;
            Ok((
                key.to_string(),
                Tensor {
                    shape: view.shape().to_vec(),
                    data,
                },
            ))
        })
        .collect()
}

/// A tensor's values as f32 (float32 as stored, float64 rounded; int64 only for a
/// batch norm's count of batches, `counter`).
fn to_f32(view: &TensorView<'_>, counter: bool) -> Result<Vec<f32>> {
    let bytes = view.data();
    Ok(match view.dtype() {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
            .collect(),
        Dtype::I64 if counter => bytes
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
            .collect(),
        other => bail!(
            "dtype {other:?} is not supported (float32 or float64): save the model after \
             model.float()"
        ),
    })
}

fn safetensors_bytes(dict: &StateDict) -> Result<Vec<u8>> {
    let raw: Vec<(String, Vec<usize>, Dtype, Vec<u8>)> = dict
        .iter()
        .map(|(k, t)| {
            let (dtype, bytes) = if k.ends_with(BATCHES_TRACKED) {
                let counts = t.data.iter().flat_map(|&v| (v as i64).to_le_bytes());
                (Dtype::I64, counts.collect())
            } else {
                (
                    Dtype::F32,
                    t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
                )
            };
            (k.clone(), t.shape.clone(), dtype, bytes)
        })
        .collect();
    let views = raw
        .iter()
        .map(|(k, shape, dtype, bytes)| {
            let view = TensorView::new(*dtype, shape.clone(), bytes)
                .map_err(|e| anyhow::anyhow!("tensor {k}: {e}"))?;
            Ok((k.as_str(), view))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, None).map_err(|e| anyhow::anyhow!("writing safetensors: {e}"))
}

fn read_npy_dir(dir: &Path) -> Result<StateDict> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read weight directory {}", dir.display()))?;
    let mut dict = StateDict::new();
    for entry in entries {
        let path = entry?.path();
        let Some(key) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".npy"))
        else {
            continue;
        };
        let array = read_npy_data(&path)?;
        let shape = array.shape.clone();
        let data = match array.elements {
            Elements::I64(counts) if key.ends_with(BATCHES_TRACKED) => {
                counts.iter().map(|&c| c as f32).collect()
            }
            _ => {
                array
                    .into_f32()
                    .with_context(|| format!(".npy file {}", path.display()))?
                    .data
            }
        };
        dict.insert(key.to_string(), Tensor { shape, data });
    }
    Ok(dict)
}

/// Load the weights of `net` from `path` (see [`read_state_dict`]).
pub fn load(net: &mut Sequential<DigitalSynapses>, path: &Path) -> Result<()> {
    let dict = read_state_dict(path)?;
    net.load_state_dict(&dict)
        .with_context(|| format!("weights {}", path.display()))
}

/// Export the weights of `net` to `path` (see [`write_state_dict`]).
pub fn save(net: &Sequential<DigitalSynapses>, path: &Path) -> Result<()> {
    write_state_dict(path, &net.state_dict())
}
