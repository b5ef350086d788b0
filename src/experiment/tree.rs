//! Configuration trees addressed by dotted paths (`hardware.tile.periphery.adc.bits`).
//!
//! An experiment's configuration is first read as a TOML tree, completed with every
//! default, and then changed by `--set PATH=VALUE` and by the sweep axes. Every section
//! on a path must exist in the completed tree; a new leaf key may be added to an existing
//! section (an optional value left unset, or a device parameter override), and the typed
//! configuration that is parsed afterwards rejects unknown keys, so a typo is always an
//! error that names the key instead of a silently ignored setting. [`typed`] and
//! [`to_value`] convert between trees and typed sections.

use anyhow::{Context, Result, bail};
use serde::Serialize;
use toml::Value;

/// Read the value at `path`.
pub fn get<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(root, |node, key| node.get(key))
}

/// Set the value at `path`: every section on the path must exist; the leaf is replaced or added.
pub fn set(root: &mut Value, path: &str, value: Value) -> Result<()> {
    let keys: Vec<&str> = path.split('.').collect();
    if keys.iter().any(|k| k.is_empty()) {
        bail!(
            "'{path}' is not a valid configuration path (expected e.g. hardware.tile.periphery.adc.bits)"
        );
    }
    let (last, parents) = keys.split_last().context("empty configuration path")?;
    let parent_path = parents.join(".");
    let mut node = &mut *root;
    for (depth, key) in parents.iter().enumerate() {
        node = node
            .get_mut(*key)
            .with_context(|| unknown_path_message(path, &keys[..=depth].join(".")))?;
    }
    let table = node.as_table_mut().with_context(|| {
        format!("'{parent_path}' is a value, not a section, so '{path}' cannot be set")
    })?;
    match table.get_mut(*last) {
        Some(slot) => {
            if slot.is_table() && !value.is_table() {
                bail!("'{path}' is a section; set one of its keys instead (e.g. {path}.KEY=VALUE)");
            }
            *slot = value;
        }
        None => {
            table.insert((*last).to_string(), value);
        }
    }
    Ok(())
}

/// Replace the section that holds `path`'s leaf by a section with only that leaf (used to
/// switch a tagged table to another variant, dropping the old variant's keys).
pub fn set_section_to_leaf(root: &mut Value, path: &str, value: Value) -> Result<()> {
    let (parent, last) = path
        .rsplit_once('.')
        .with_context(|| format!("'{path}' has no section to replace"))?;
    let section = parent
        .split('.')
        .try_fold(&mut *root, |node, key| node.get_mut(key))
        .with_context(|| unknown_path_message(path, parent))?;
    *section = Value::Table(toml::Table::from_iter([(last.to_string(), value)]));
    Ok(())
}

fn unknown_path_message(path: &str, missing: &str) -> String {
    format!(
        "unknown configuration path '{path}': '{missing}' does not exist \
         (check the spelling against the experiment file's sections and keys)"
    )
}

/// Parse a command-line value: a TOML literal (`8`, `1e-3`, `true`, `[1, 2]`, `"x"`),
/// or a bare word taken as a string (`pcm_gst`).
pub fn parse_value(text: &str) -> Value {
    let text = text.trim();
    match toml::from_str::<toml::Table>(&format!("v = {text}")) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| Value::String(text.to_string())),
        Err(_) => Value::String(text.to_string()),
    }
}

/// Split `PATH=VALUE` from the command line.
pub fn parse_assignment(arg: &str) -> Result<(String, Value)> {
    let (path, value) = arg.split_once('=').with_context(|| {
        format!(
            "--set '{arg}' must have the form PATH=VALUE (e.g. hardware.tile.periphery.adc.bits=6)"
        )
    })?;
    Ok((path.trim().to_string(), parse_value(value)))
}

/// A short label for a value in file names, legends and CSV cells.
pub fn value_label(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Float(f) => crate::output::results::format_float(*f),
        other => other.to_string(),
    }
}

/// A value as a number for plotting (booleans as 0/1), if it is one.
pub fn value_number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        Value::Boolean(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

/// Deserialise a TOML value into a typed section; errors name the section.
pub fn typed<T: serde::de::DeserializeOwned>(value: Value, what: &str) -> Result<T> {
    value
        .try_into()
        .map_err(|e: toml::de::Error| anyhow::anyhow!("in {what}: {}", e.message()))
}

/// Serialise a typed section back into a TOML value. `f32` fields come out widened to
/// `f64` (0.001f32 as 0.0010000000474974513); they are written back as the shortest decimal
/// that gives the same `f32`, so run records show the values that were configured.
pub fn to_value<T: Serialize>(section: &T) -> Result<Value> {
    let mut value = Value::try_from(section).context("serialising the configuration")?;
    unwiden_f32(&mut value);
    Ok(value)
}

/// Replace every float that is exactly an `f32` by the shortest decimal of that `f32`
/// (the same `f32` when parsed back; `f64` values that are not exactly an `f32` are kept).
fn unwiden_f32(value: &mut Value) {
    match value {
        Value::Float(f) if f.is_finite() && f64::from(*f as f32) == *f => {
            if let Ok(short) = (*f as f32).to_string().parse::<f64>() {
                *f = short;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(unwiden_f32),
        Value::Table(t) => t.iter_mut().for_each(|(_, v)| unwiden_f32(v)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widened_f32_values_print_as_configured() {
        #[derive(serde::Serialize)]
        struct S {
            a: f32,
            b: f64,
        }
        let v = to_value(&S { a: 0.001, b: 0.1 }).unwrap();
        assert_eq!(v["a"].as_float(), Some(0.001));
        assert_eq!(v["b"].as_float(), Some(0.1));
    }

    fn tree() -> Value {
        toml::from_str("[hardware]\nadc_bits = 8\n[hardware.device_params]\n[train]\nlr = 0.1\n")
            .unwrap()
    }

    #[test]
    fn existing_paths_are_replaced() {
        let mut t = tree();
        set(&mut t, "hardware.adc_bits", Value::Integer(4)).unwrap();
        assert_eq!(get(&t, "hardware.adc_bits"), Some(&Value::Integer(4)));
    }

    #[test]
    fn unknown_sections_are_errors_naming_the_key() {
        let mut t = tree();
        let e = set(&mut t, "hardwar.adc_bits", Value::Integer(4))
            .unwrap_err()
            .to_string();
        assert!(e.contains("'hardwar'"), "{e}");
        assert!(set(&mut t, "hardware", Value::Integer(1)).is_err());
        assert!(set(&mut t, "hardware..x", Value::Integer(1)).is_err());
    }

    #[test]
    fn existing_sections_accept_new_leaf_keys() {
        let mut t = tree();
        set(&mut t, "hardware.device_params.g_max_s", Value::Float(1e-4)).unwrap();
        assert_eq!(
            get(&t, "hardware.device_params.g_max_s"),
            Some(&Value::Float(1e-4))
        );
    }

    #[test]
    fn command_line_values_parse_as_toml_or_strings() {
        assert_eq!(parse_value("8"), Value::Integer(8));
        assert_eq!(parse_value("1e-3"), Value::Float(1e-3));
        assert_eq!(parse_value("true"), Value::Boolean(true));
        assert_eq!(parse_value("pcm_gst"), Value::String("pcm_gst".into()));
        assert_eq!(parse_value("\"a b\""), Value::String("a b".into()));
        let (p, v) = parse_assignment("train.lr=0.5").unwrap();
        assert_eq!((p.as_str(), v), ("train.lr", Value::Float(0.5)));
        assert!(parse_assignment("train.lr").is_err());
    }
}
