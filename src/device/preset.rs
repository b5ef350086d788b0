//! Device presets: named TOML files in `device_models/` (compiled into the binary, so `xbar`
//! works from any directory) or a user's own file, turned into an [`AnyDevice`].
//!
//! A preset file has a top-level `name`, `model` (`ideal`, `rram`, `pcm`, `mram` or one of
//! the pulsed step-model families of [`super::pulsed`], e.g. `soft_bounds`) and a one-line
//! `description`, and one `[params.NAME]` table per parameter with `value` (a number, a
//! boolean, or an array of numbers for a step table), `unit` and `source`:
//!
//! ```toml
//! name = "my_pcm"
//! model = "pcm"
//! description = "Our GST cells"
//!
//! [params.g_max_s]
//! value = 25e-6
//! unit = "S"
//! source = "Nandakumar et al., ICECS 2019"
//! ```
//!
//! Experiments override parameters by name ([`load`] with a table of `name = value`); an
//! unknown name is an error that names it. Every problem is reported with the file and the
//! field, e.g. `pcm_gst.toml: params.g_max_s: must be > 0 (got -1)`.

use super::any::AnyDevice;
use super::ideal::{Ideal, IdealParams};
use super::mram::{Mram, MramParams};
use super::params::ParamError;
use super::pcm::{Pcm, PcmParams};
use super::pulsed::{self, PulsedDevice, PulsedParams, StepFamily};
use super::rram::{Rram, RramParams};
use anyhow::{Context, Result, anyhow, bail};
use serde::de::DeserializeOwned;
use std::path::Path;

/// The built-in presets: (name, file text).
pub const BUILTIN: [(&str, &str); 20] = [
    ("ideal", include_str!("../../device_models/ideal.toml")),
    (
        "rram_hfo2",
        include_str!("../../device_models/rram_hfo2.toml"),
    ),
    ("pcm_gst", include_str!("../../device_models/pcm_gst.toml")),
    (
        "stt_mram",
        include_str!("../../device_models/stt_mram.toml"),
    ),
    (
        "reram_es",
        include_str!("../../device_models/reram_es.toml"),
    ),
    (
        "reram_sb",
        include_str!("../../device_models/reram_sb.toml"),
    ),
    ("ecram", include_str!("../../device_models/ecram.toml")),
    (
        "ecram_mo",
        include_str!("../../device_models/ecram_mo.toml"),
    ),
    (
        "capacitor",
        include_str!("../../device_models/capacitor.toml"),
    ),
    (
        "gokmen_vlasov",
        include_str!("../../device_models/gokmen_vlasov.toml"),
    ),
    (
        "idealized",
        include_str!("../../device_models/idealized.toml"),
    ),
    (
        "neurosim_agasi",
        include_str!("../../device_models/neurosim_agasi.toml"),
    ),
    (
        "neurosim_taox_hfox",
        include_str!("../../device_models/neurosim_taox_hfox.toml"),
    ),
    (
        "neurosim_pcmo",
        include_str!("../../device_models/neurosim_pcmo.toml"),
    ),
    (
        "neurosim_alox_hfo2",
        include_str!("../../device_models/neurosim_alox_hfo2.toml"),
    ),
    (
        "neurosim_gst",
        include_str!("../../device_models/neurosim_gst.toml"),
    ),
    (
        "neurosim_epiram",
        include_str!("../../device_models/neurosim_epiram.toml"),
    ),
    (
        "neurosim_hzo_fefet",
        include_str!("../../device_models/neurosim_hzo_fefet.toml"),
    ),
    (
        "aihwkit_pcm",
        include_str!("../../device_models/aihwkit_pcm.toml"),
    ),
    (
        "sot_mram",
        include_str!("../../device_models/sot_mram.toml"),
    ),
];

/// The largest conductance a parameter in siemens may take: 1 S, a 1-ohm cell (memory
/// cells are below about 10 mS; the limit only catches unit mistakes such as `g_max_s =
/// 25` for 25 uS).
pub const MAX_CELL_CONDUCTANCE_S: f64 = 1.0;

/// The smallest resistance a parameter in ohms may take (the same limit, seen as resistance).
pub const MIN_CELL_RESISTANCE_OHM: f64 = 1.0 / MAX_CELL_CONDUCTANCE_S;

/// A TOML number as `f64`.
fn number(v: &toml::Value) -> Option<f64> {
    match v {
        toml::Value::Float(f) => Some(*f),
        toml::Value::Integer(i) => Some(*i as f64),
        _ => None,
    }
}

/// The physical cell models accepted in the `model` field (the pulsed step-model families,
/// [`pulsed::FAMILIES`], are accepted too: [`models`]).
pub const CELL_MODELS: [&str; 4] = ["ideal", "rram", "pcm", "mram"];

/// Every model name accepted in the `model` field: the cell models, then the pulsed
/// step-model families.
pub fn models() -> impl Iterator<Item = &'static str> {
    CELL_MODELS.into_iter().chain(pulsed::FAMILIES)
}

/// The family a model name stands for, as `xbar devices` groups presets.
pub fn family_label(model: &str) -> &'static str {
    match model {
        "ideal" => "ideal linear device (noise-free)",
        "rram" => "NeuroSim nonlinear LTP/LTD (filamentary RRAM, analog and binary)",
        "pcm" => "PCM statistical model (Nandakumar/Joshi, as in aihwkit)",
        "mram" => "magnetic tunnel junction (binary; STT or three-terminal SOT write)",
        "constant_step" => "constant step (aihwkit ConstantStepDevice)",
        "linear_step" => "linear step (aihwkit LinearStepDevice)",
        "soft_bounds" => "soft bounds (aihwkit SoftBoundsDevice)",
        "exp_step" => "exponential step (aihwkit ExpStepDevice)",
        "pow_step" => "power step (aihwkit PowStepDevice)",
        "piecewise_step" => "piecewise step table (aihwkit PiecewiseStepDevice)",
        _ => "unknown model",
    }
}

/// The variability parameters every pulsed step-model family shares.
const PULSED_VARIABILITY: [&str; 11] = [
    "w_min_dtod",
    "w_max_dtod",
    "dw_min_dtod",
    "dw_min_std",
    "up_down_dtod",
    "write_noise_std",
    "read_noise_rel",
    "diffusion",
    "diffusion_dtod",
    "lifetime_dtod",
    "reset_dtod",
];

/// One documented parameter of a preset.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamEntry {
    /// Parameter name (the model's field name).
    pub name: String,
    /// Value (a TOML integer, float, boolean or array of numbers).
    pub value: toml::Value,
    /// Unit, e.g. `S`, `V`, `s`, `1` for dimensionless.
    pub unit: String,
    /// Published source of the value, or "representative value" with a reason.
    pub source: String,
}

/// A parsed preset file.
#[derive(Clone, Debug, PartialEq)]
pub struct Preset {
    /// Preset name.
    pub name: String,
    /// Model name (one of [`models`]).
    pub model: String,
    /// One-line description.
    pub description: String,
    /// Where it came from, as used in messages (`rram_hfo2.toml` or the user's path).
    pub origin: String,
    /// Parameters in file order.
    pub params: Vec<ParamEntry>,
}

/// Names of the built-in presets.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN.iter().map(|(name, _)| *name).collect()
}

/// Every built-in preset, parsed.
pub fn list() -> Result<Vec<Preset>> {
    BUILTIN
        .iter()
        .map(|(name, text)| parse(text, &format!("{name}.toml")))
        .collect()
}

/// Read a built-in preset by name, or a preset file by path (anything that names an existing
/// file, ends in `.toml` or contains a path separator is taken as a path).
pub fn read(name_or_path: &str) -> Result<Preset> {
    if let Some((name, text)) = BUILTIN.iter().find(|(name, _)| *name == name_or_path) {
        return parse(text, &format!("{name}.toml"));
    }
    let path = Path::new(name_or_path);
    let looks_like_path = path.exists()
        || name_or_path.ends_with(".toml")
        || name_or_path.contains(std::path::MAIN_SEPARATOR)
        || name_or_path.contains('/');
    if !looks_like_path {
        bail!(
            "unknown device `{name_or_path}`: not a built-in preset ({}) and not a preset file \
             (give a path to a .toml file)",
            builtin_names().join(", ")
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the device preset file {}", path.display()))?;
    parse(&text, &path.display().to_string())
}

/// Load a preset by name or path and build its device, replacing parameters by `overrides`.
pub fn load(name_or_path: &str, overrides: &toml::Table) -> Result<AnyDevice> {
    read(name_or_path)?.build(overrides)
}

/// The parameters of each model that describe its randomness: device-to-device spread,
/// cycle-to-cycle noise, programming noise, read noise and the LRS/HRS spreads. A
/// variability scale multiplies all of them at once ("devices k times worse than the
/// preset"), so different technologies can share one x axis. Drift, switching kinetics and
/// fault rates are not included: they have their own parameters.
pub fn variability_parameters(model: &str) -> Vec<&'static str> {
    if pulsed::FAMILIES.contains(&model) {
        let family = StepFamily::variability_fields(model).iter();
        return PULSED_VARIABILITY.iter().chain(family).copied().collect();
    }
    let physical: &[&str] = match model {
        "rram" => &[
            "c2c_sigma",
            "d2d_window_sigma",
            "d2d_step_sigma",
            "program_sigma",
            "read_noise_rel",
            "sigma_ln_r_lrs_ref",
            "sigma_ln_r_hrs",
            "relax_sigma_per_decade",
        ],
        "pcm" => &[
            "prog_noise_scale",
            "read_noise_scale",
            "set_step_sigma_rel",
            "d2d_g_max_sigma",
            "g_reset_sigma_s",
        ],
        "mram" => &[
            "d2d_r_p_sigma",
            "d2d_tmr_sigma",
            "d2d_ic0_sigma",
            "read_noise_rel",
        ],
        _ => &[],
    };
    physical.to_vec()
}

/// Load a preset, apply `overrides`, then multiply every variability parameter
/// ([`variability_parameters`]) by `variability_scale` (1 = the preset as published).
pub fn load_scaled(
    name_or_path: &str,
    overrides: &toml::Table,
    variability_scale: f64,
) -> Result<AnyDevice> {
    if !(variability_scale.is_finite() && variability_scale >= 0.0) {
        bail!(
            "variability_scale = {variability_scale}: must be a finite number >= 0 (1 = the preset as published)"
        );
    }
    let preset = read(name_or_path)?;
    let mut params = preset.resolved_params(overrides)?;
    for name in variability_parameters(&preset.model) {
        if let Some(v) = params.get_mut(name) {
            let scaled = v
                .as_float()
                .or_else(|| v.as_integer().map(|i| i as f64))
                .map(|x| x * variability_scale);
            if let Some(x) = scaled {
                *v = toml::Value::Float(x);
            }
        }
    }
    preset.build(&params)
}

/// Parse preset text; `origin` names the file in error messages.
pub fn parse(text: &str, origin: &str) -> Result<Preset> {
    let root: toml::Table =
        toml::from_str(text).map_err(|e| anyhow!("{origin}: not a valid TOML file: {e}"))?;
    for key in root.keys() {
        if !["name", "model", "description", "params"].contains(&key.as_str()) {
            bail!(
                "{origin}: unknown top-level field `{key}` (expected name, model, description, params)"
            );
        }
    }
    let name = string_field(&root, "name", origin)?;
    let model = string_field(&root, "model", origin)?;
    if !models().any(|m| m == model) {
        bail!(
            "{origin}: model: unknown model `{model}` (expected one of {})",
            models().collect::<Vec<_>>().join(", ")
        );
    }
    let description = string_field(&root, "description", origin)?;
    let params_table = match root.get("params") {
        Some(toml::Value::Table(t)) => t,
        Some(_) => bail!("{origin}: params: must be a table of [params.NAME] entries"),
        None => bail!("{origin}: params: missing (add one [params.NAME] table per parameter)"),
    };
    let mut params = params_table
        .iter()
        .map(|(pname, entry)| param_entry(pname, entry, origin))
        .collect::<Result<Vec<_>>>()?;
    params.sort_by_key(|p| {
        text.find(&format!("[params.{}]", p.name))
            .unwrap_or(usize::MAX)
    });
    Ok(Preset {
        name,
        model,
        description,
        origin: origin.to_string(),
        params,
    })
}

fn string_field(root: &toml::Table, field: &str, origin: &str) -> Result<String> {
    match root.get(field) {
        Some(toml::Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(toml::Value::String(_)) => bail!("{origin}: {field}: must not be empty"),
        Some(_) => bail!("{origin}: {field}: must be a string"),
        None => bail!("{origin}: {field}: missing"),
    }
}

fn param_entry(name: &str, entry: &toml::Value, origin: &str) -> Result<ParamEntry> {
    let at = format!("{origin}: params.{name}");
    let table = entry
        .as_table()
        .ok_or_else(|| anyhow!("{at}: must be a table with value, unit and source"))?;
    for key in table.keys() {
        if !["value", "unit", "source"].contains(&key.as_str()) {
            bail!("{at}: unknown field `{key}` (expected value, unit, source)");
        }
    }
    let value = table
        .get("value")
        .ok_or_else(|| anyhow!("{at}.value: missing"))?
        .clone();
    check_value(&value).map_err(|m| anyhow!("{at}.value: {m}"))?;
    let text = |key: &str| -> Result<String> {
        match table.get(key) {
            Some(toml::Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
            Some(_) => bail!("{at}.{key}: must be a non-empty string"),
            None => bail!("{at}.{key}: missing"),
        }
    };
    Ok(ParamEntry {
        name: name.to_string(),
        value,
        unit: text("unit")?,
        source: text("source")?,
    })
}

/// A parameter value must be an integer, a finite float, a boolean (a model's switch) or an
/// array of such numbers (a step table).
fn check_value(value: &toml::Value) -> std::result::Result<(), String> {
    match value {
        toml::Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| check_number(item).map_err(|m| format!("element {i}: {m}"))),
        toml::Value::Boolean(_) => Ok(()),
        number => check_number(number),
    }
}

/// A number: an integer or a finite float.
fn check_number(value: &toml::Value) -> std::result::Result<(), String> {
    match value {
        toml::Value::Integer(_) => Ok(()),
        toml::Value::Float(f) if f.is_finite() => Ok(()),
        toml::Value::Float(f) => Err(format!("must be a finite number (got {f})")),
        other => Err(format!(
            "must be a number, a boolean or an array of numbers (got {})",
            other.type_str()
        )),
    }
}

impl Preset {
    /// The parameter values, after replacing those named in `overrides`.
    pub fn resolved_params(&self, overrides: &toml::Table) -> Result<toml::Table> {
        let mut table: toml::Table = self
            .params
            .iter()
            .map(|p| (p.name.clone(), p.value.clone()))
            .collect();
        for (name, value) in overrides {
            let Some(slot) = table.get_mut(name) else {
                bail!(
                    "{}: unknown parameter `{name}` in the overrides (this {} preset has: {})",
                    self.origin,
                    self.model,
                    self.params
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            };
            check_value(value)
                .map_err(|m| anyhow!("{}: override of params.{name}: {m}", self.origin))?;
            *slot = coerce_like(slot, value);
        }
        Ok(table)
    }

    /// Conductances and resistances must be those of a memory cell: a value beyond them is
    /// almost always a unit mistake, and it would make every energy and current absurd.
    fn check_cell_ranges(&self, table: &toml::Table) -> Result<()> {
        for p in &self.params {
            let Some(value) = table.get(&p.name).and_then(number) else {
                continue;
            };
            let (limit_ok, limit) = match p.unit.as_str() {
                "S" => (
                    value.abs() <= MAX_CELL_CONDUCTANCE_S,
                    "at most 1 S (a 1-ohm cell)",
                ),
                "ohm" => (value >= MIN_CELL_RESISTANCE_OHM, "at least 1 ohm"),
                _ => (true, ""),
            };
            if !limit_ok {
                bail!(
                    "{}: params.{} = {value:e} {} is not a memory cell's value ({limit}): check \
                     the unit",
                    self.origin,
                    p.name,
                    p.unit
                );
            }
        }
        Ok(())
    }

    /// Build the device, with `overrides` replacing parameters by name, and validate it.
    pub fn build(&self, overrides: &toml::Table) -> Result<AnyDevice> {
        let table = self.resolved_params(overrides)?;
        self.check_cell_ranges(&table)?;
        let origin = self.origin.as_str();
        let device = match self.model.as_str() {
            "ideal" => {
                let p: IdealParams = typed(table, origin)?;
                check(p.validate(), origin)?;
                AnyDevice::Ideal(Ideal::new(p))
            }
            "rram" => {
                let p: RramParams = typed(table, origin)?;
                check(p.validate(), origin)?;
                AnyDevice::Rram(Rram::new(p))
            }
            "pcm" => {
                let p: PcmParams = typed(table, origin)?;
                check(p.validate(), origin)?;
                AnyDevice::Pcm(Pcm::new(p))
            }
            "mram" => {
                let p: MramParams = typed(table, origin)?;
                check(p.validate(), origin)?;
                AnyDevice::Mram(Mram::new(p))
            }
            family if pulsed::FAMILIES.contains(&family) => {
                AnyDevice::Pulsed(build_pulsed(family, table, origin)?)
            }
            other => bail!("{origin}: model: unknown model `{other}`"),
        };
        Ok(device)
    }
}

/// An override keeps the type of the value it replaces where that loses nothing
/// (an integral float replacing an integer becomes an integer).
fn coerce_like(old: &toml::Value, new: &toml::Value) -> toml::Value {
    match (old, new) {
        (toml::Value::Integer(_), toml::Value::Float(f)) if f.fract() == 0.0 && f.abs() < 9e15 => {
            toml::Value::Integer(*f as i64)
        }
        _ => new.clone(),
    }
}

/// A pulsed device of `family`: the family's own parameters are split off the table first
/// (so a missing one is named), the rest are the shared [`PulsedParams`].
fn build_pulsed(family: &str, mut table: toml::Table, origin: &str) -> Result<PulsedDevice> {
    let own: toml::Table = StepFamily::fields(family)
        .iter()
        .filter_map(|field| table.remove_entry(*field))
        .collect();
    let family = match family {
        "constant_step" => StepFamily::ConstantStep,
        "linear_step" => StepFamily::LinearStep(typed(own, origin)?),
        "soft_bounds" => StepFamily::SoftBounds(typed(own, origin)?),
        "exp_step" => StepFamily::ExpStep(typed(own, origin)?),
        "pow_step" => StepFamily::PowStep(typed(own, origin)?),
        "piecewise_step" => StepFamily::PiecewiseStep(typed(own, origin)?),
        other => bail!("{origin}: model: unknown step family `{other}`"),
    };
    let params: PulsedParams = typed(table, origin)?;
    let device = PulsedDevice::new(params, family);
    check(device.validate(), origin)?;
    Ok(device)
}

fn typed<P: DeserializeOwned>(table: toml::Table, origin: &str) -> Result<P> {
    toml::Value::Table(table)
        .try_into()
        .map_err(|e| anyhow!("{origin}: params: {}", e.to_string().trim()))
}

fn check(result: std::result::Result<(), ParamError>, origin: &str) -> Result<()> {
    result.map_err(|e| anyhow!("{origin}: {e}"))
}

/// Parse `NAME=VALUE` (VALUE in TOML syntax, e.g. `g_max_s=2e-5`) into an override table.
pub fn parse_overrides<S: AsRef<str>>(assignments: &[S]) -> Result<toml::Table> {
    let mut table = toml::Table::new();
    for a in assignments {
        let a = a.as_ref();
        let (name, value) = a
            .split_once('=')
            .ok_or_else(|| anyhow!("override `{a}` must look like NAME=VALUE"))?;
        let name = name.trim();
        let parsed: toml::Table = toml::from_str(&format!("v = {}", value.trim()))
            .map_err(|_| anyhow!("override `{a}`: `{}` is not a number", value.trim()))?;
        let value = parsed
            .get("v")
            .cloned()
            .ok_or_else(|| anyhow!("override `{a}`: no value"))?;
        table.insert(name.to_string(), value);
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variability_scale_multiplies_every_variability_parameter_and_nothing_else() {
        let base = match load("rram_hfo2", &toml::Table::new()).unwrap() {
            AnyDevice::Rram(d) => d.params,
            _ => unreachable!("rram_hfo2 is an RRAM preset"),
        };
        let scaled = match load_scaled("rram_hfo2", &toml::Table::new(), 3.0).unwrap() {
            AnyDevice::Rram(d) => d.params,
            _ => unreachable!("rram_hfo2 is an RRAM preset"),
        };
        assert!((scaled.c2c_sigma - 3.0 * base.c2c_sigma).abs() < 1e-15);
        assert!((scaled.sigma_ln_r_hrs - 3.0 * base.sigma_ln_r_hrs).abs() < 1e-15);
        assert_eq!(scaled.g_max_s, base.g_max_s);
        assert_eq!(scaled.p_stuck_lrs, base.p_stuck_lrs);
        for preset in list().unwrap() {
            for name in variability_parameters(&preset.model) {
                assert!(
                    preset.params.iter().any(|p| p.name == name),
                    "{} has no {name}",
                    preset.name
                );
            }
        }
        assert!(load_scaled("pcm_gst", &toml::Table::new(), -1.0).is_err());
    }

    #[test]
    fn the_model_list_ends_with_the_pulsed_families() {
        assert_eq!(models().skip(4).collect::<Vec<_>>(), pulsed::FAMILIES);
        for model in models() {
            assert_ne!(
                family_label(model),
                family_label("no such model"),
                "{model}"
            );
        }
    }

    #[test]
    fn every_builtin_preset_parses_and_builds() {
        for preset in list().unwrap() {
            preset.build(&toml::Table::new()).unwrap();
        }
    }
}
