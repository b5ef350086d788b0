//! Saving and loading MLP weights as a directory of `.npy` files in PyTorch layout.
//!
//! Format: layer `i` (counting from the input, `i = 0, 1, ...`) is stored as
//! `i.weight.npy` (`outputs x inputs`, float32, C order: PyTorch's `nn.Linear.weight`)
//! and `i.bias.npy` (`outputs`); ReLU is applied between layers, nothing after the last.
//! [`save_mlp`] also writes `network.json` (the layer sizes, for people and scripts);
//! [`load_mlp`] does not need it, so a directory exported from PyTorch loads directly:
//!
//! ```python
//! for k, v in model.state_dict().items():     # model = nn.Sequential(Linear, ReLU, ...)
//!     np.save(f"{k}.npy", v.cpu().numpy().astype("<f4"))
//! ```
//!
//! Layer indices only need to increase, so `nn.Sequential`'s `0, 2, 4` (the ReLUs take
//! the odd indices) load as well as `0, 1, 2`.

use super::mlp::{Dense, Mlp};
use crate::npy::{read_npy, write_npy};
use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Name of the descriptive manifest written next to the `.npy` files.
const MANIFEST: &str = "network.json";

/// Contents of `network.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    /// Always `"mlp"`.
    kind: String,
    /// Layer sizes, input first.
    sizes: Vec<usize>,
    /// Activation between layers (always `"relu"`).
    hidden_activation: String,
}

/// Save `mlp` into `dir` (created if missing) as `0.weight.npy`, `0.bias.npy`, ... plus
/// `network.json`. Refuses a directory holding layer files beyond the network's last layer
/// (they would be loaded as extra layers).
pub fn save_mlp(mlp: &Mlp, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create weight directory {}", dir.display()))?;
    let existing = layer_files(dir)?;
    if let Some((index, _)) = existing.range(mlp.layers().len() as u64..).next() {
        bail!(
            "weight directory {} already holds {index}.weight.npy or {index}.bias.npy, which is \
             not part of this {}-layer network: save into an empty directory",
            dir.display(),
            mlp.layers().len()
        );
    }
    for (i, layer) in mlp.layers().iter().enumerate() {
        write_npy(
            &dir.join(format!("{i}.weight.npy")),
            &[layer.outputs(), layer.inputs()],
            layer.weight(),
        )?;
        write_npy(
            &dir.join(format!("{i}.bias.npy")),
            &[layer.outputs()],
            layer.bias(),
        )?;
    }
    let manifest = Manifest {
        kind: "mlp".into(),
        sizes: mlp.sizes(),
        hidden_activation: "relu".into(),
    };
    let mut text = serde_json::to_vec_pretty(&manifest).context("serialising the manifest")?;
    text.push(b'\n');
    crate::atomic::write_atomic(&dir.join(MANIFEST), &text)
}

/// Load an MLP from a directory of `N.weight.npy` / `N.bias.npy` files (see the module
/// documentation), checking every shape and that consecutive layers fit together.
pub fn load_mlp(dir: &Path) -> Result<Mlp> {
    let layers = layer_files(dir)?;
    ensure!(
        !layers.is_empty(),
        "weight directory {} holds no N.weight.npy file: export each nn.Linear layer's weight \
         and bias as 0.weight.npy, 0.bias.npy, 1.weight.npy, ...",
        dir.display()
    );
    let mut dense = Vec::with_capacity(layers.len());
    let mut previous: Option<(u64, usize)> = None;
    for (&index, &[has_weight, has_bias]) in &layers {
        ensure!(
            has_weight,
            "{}: {index}.bias.npy has no matching {index}.weight.npy",
            dir.display()
        );
        ensure!(
            has_bias,
            "{}: {index}.weight.npy has no matching {index}.bias.npy (for a layer without bias, \
             save zeros)",
            dir.display()
        );
        let layer = load_layer(dir, index)?;
        if let Some((prev, outputs)) = previous {
            ensure!(
                layer.inputs() == outputs,
                "{}: layer {index}.weight.npy takes {} inputs but the previous layer \
                 {prev}.weight.npy has {outputs} outputs (weights must be outputs x inputs, PyTorch \
                 nn.Linear layout)",
                dir.display(),
                layer.inputs()
            );
        }
        previous = Some((index, layer.outputs()));
        dense.push(layer);
    }
    let mlp = Mlp::new(dense).with_context(|| format!("weight directory {}", dir.display()))?;
    check_manifest(dir, &mlp)?;
    Ok(mlp)
}

/// The layer indices present in `dir`, each with whether its weight and bias files exist;
/// any other `.npy` file is an error.
fn layer_files(dir: &Path) -> Result<BTreeMap<u64, [bool; 2]>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read weight directory {}", dir.display()))?;
    let mut layers: BTreeMap<u64, [bool; 2]> = BTreeMap::new();
    for entry in entries {
        let name = entry
            .with_context(|| format!("listing {}", dir.display()))?
            .file_name();
        let name = name.to_string_lossy();
        let Some(stem) = name.strip_suffix(".npy") else {
            continue;
        };
        let parsed = stem
            .split_once('.')
            .and_then(|(index, what)| Some((index.parse::<u64>().ok()?, what)));
        match parsed {
            Some((index, "weight")) => layers.entry(index).or_default()[0] = true,
            Some((index, "bias")) => layers.entry(index).or_default()[1] = true,
            _ => bail!(
                "unexpected file {name} in weight directory {}: xbar loads MLPs of linear layers \
                 stored as N.weight.npy and N.bias.npy (N = layer index)",
                dir.display()
            ),
        }
    }
    Ok(layers)
}

fn load_layer(dir: &Path, index: u64) -> Result<Dense> {
    let weight_path = dir.join(format!("{index}.weight.npy"));
    let bias_path = dir.join(format!("{index}.bias.npy"));
    let weight = read_npy(&weight_path)?;
    let bias = read_npy(&bias_path)?;
    let &[outputs, inputs] = weight.shape.as_slice() else {
        bail!(
            "{}: a weight must be a 2-D array (outputs x inputs), this one has shape {:?}",
            weight_path.display(),
            weight.shape
        );
    };
    ensure!(
        bias.shape == [outputs],
        "{}: shape {:?} does not match the weight's {outputs} outputs (expected ({outputs},)); \
         is the weight stored inputs x outputs? nn.Linear's layout is outputs x inputs",
        bias_path.display(),
        bias.shape
    );
    Dense::new(inputs, outputs, weight.data, bias.data)
        .with_context(|| format!("layer {}", weight_path.display()))
}

/// If `network.json` exists, check that it describes the loaded layers.
fn check_manifest(dir: &Path, mlp: &Mlp) -> Result<()> {
    let path = dir.join(MANIFEST);
    if !path.exists() {
        return Ok(());
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let manifest: Manifest =
        serde_json::from_str(&text).with_context(|| format!("malformed {}", path.display()))?;
    ensure!(
        manifest.kind == "mlp" && manifest.hidden_activation == "relu",
        "{}: xbar loads kind \"mlp\" with hidden_activation \"relu\", found {:?} / {:?}",
        path.display(),
        manifest.kind,
        manifest.hidden_activation
    );
    ensure!(
        manifest.sizes == mlp.sizes(),
        "{} lists layer sizes {:?} but the .npy files give {:?}: the directory mixes two networks",
        path.display(),
        manifest.sizes,
        mlp.sizes()
    );
    Ok(())
}
