//! Preset files: every built-in preset documents each parameter, overrides work by name,
//! and bad presets are refused with an error naming the file and the field.

use xbar::device::{Device, preset};

fn table(pairs: &[(&str, toml::Value)]) -> toml::Table {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// The built-in text of `name` with the `[params.FIELD]` value replaced by `value`.
fn with_value(name: &str, field: &str, value: &str) -> String {
    let text = preset::BUILTIN.iter().find(|(n, _)| *n == name).unwrap().1;
    let header = format!("[params.{field}]\nvalue = ");
    let start = text.find(&header).unwrap() + header.len();
    let end = start + text[start..].find('\n').unwrap();
    format!("{}{value}{}", &text[..start], &text[end..])
}

/// The built-in text of `name` without the `[params.FIELD]` table.
fn without(name: &str, field: &str) -> String {
    let text = preset::BUILTIN.iter().find(|(n, _)| *n == name).unwrap().1;
    let start = text.find(&format!("[params.{field}]")).unwrap();
    let end = text[start + 1..]
        .find("\n[")
        .map_or(text.len(), |i| start + 1 + i + 1);
    format!("{}{}", &text[..start], &text[end..])
}

fn build_error(text: &str, origin: &str) -> String {
    let err = preset::parse(text, origin)
        .and_then(|p| p.build(&toml::Table::new()))
        .unwrap_err();
    format!("{err:#}")
}

#[test]
fn every_builtin_preset_documents_every_parameter() {
    let presets = preset::list().unwrap();
    let names: Vec<&str> = presets.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "ideal",
            "rram_hfo2",
            "pcm_gst",
            "stt_mram",
            "reram_es",
            "reram_sb",
            "ecram",
            "ecram_mo",
            "capacitor",
            "gokmen_vlasov",
            "idealized",
            "neurosim_agasi",
            "neurosim_taox_hfox",
            "neurosim_pcmo",
            "neurosim_alox_hfo2",
            "neurosim_gst",
            "neurosim_epiram",
            "neurosim_hzo_fefet",
            "aihwkit_pcm",
            "sot_mram"
        ]
    );
    for p in &presets {
        assert!(!p.description.is_empty() && !p.description.contains('\n'));
        for e in &p.params {
            assert!(
                !e.unit.is_empty() && !e.source.is_empty(),
                "{}: {}",
                p.name,
                e.name
            );
        }
        p.build(&toml::Table::new()).unwrap();
    }
}

#[test]
fn overrides_replace_parameters_by_name() {
    let device =
        preset::load("pcm_gst", &table(&[("g_max_s", toml::Value::Float(30e-6))])).unwrap();
    assert_eq!(device.nominal_window(), (0.0, 30e-6));
    // An integral float may replace an integer parameter.
    let device = preset::load("ideal", &table(&[("levels", toml::Value::Float(10.0))])).unwrap();
    match device {
        xbar::device::AnyDevice::Ideal(d) => assert_eq!(d.params.levels, 10),
        other => panic!("{other:?}"),
    }
    let parsed = preset::parse_overrides(&["c2c_sigma=0.02", "levels_ltp = 20"]).unwrap();
    assert_eq!(parsed["c2c_sigma"], toml::Value::Float(0.02));
    assert_eq!(parsed["levels_ltp"], toml::Value::Integer(20));
    preset::load("rram_hfo2", &parsed).unwrap();
}

#[test]
fn an_unknown_override_is_refused_by_name() {
    let err = preset::load(
        "rram_hfo2",
        &table(&[("g_maximum", toml::Value::Float(1.0))]),
    )
    .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("rram_hfo2.toml") && msg.contains("g_maximum"),
        "{msg}"
    );
    let err = preset::load(
        "rram_hfo2",
        &table(&[("c2c_sigma", toml::Value::Float(f64::NAN))]),
    )
    .unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("c2c_sigma") && msg.contains("NaN"), "{msg}");
    assert!(preset::parse_overrides(&["c2c_sigma"]).is_err());
}

#[test]
fn a_missing_field_is_named() {
    let msg = build_error(&without("pcm_gst", "t0_s"), "pcm_gst.toml");
    assert!(
        msg.contains("pcm_gst.toml") && msg.contains("t0_s"),
        "{msg}"
    );
    let msg = build_error(&without("stt_mram", "ic0_a"), "my_mtj.toml");
    assert!(
        msg.contains("my_mtj.toml") && msg.contains("ic0_a"),
        "{msg}"
    );
    let no_unit = with_value("ideal", "levels", "100").replacen("unit = \"1\"\n", "", 1);
    let msg = build_error(&no_unit, "ideal.toml");
    assert!(msg.contains("params.levels.unit: missing"), "{msg}");
}

#[test]
fn a_negative_or_inverted_window_is_refused() {
    let msg = build_error(&with_value("pcm_gst", "g_max_s", "-1"), "pcm_gst.toml");
    assert_eq!(msg, "pcm_gst.toml: params.g_max_s: must be > 0 (got -1)");
    let msg = build_error(
        &with_value("rram_hfo2", "g_min_s", "50e-6"),
        "rram_hfo2.toml",
    );
    assert!(
        msg.contains("rram_hfo2.toml: params.g_max_s") && msg.contains("inverted"),
        "{msg}"
    );
    let msg = build_error(&with_value("ideal", "g_min_s", "-1e-6"), "ideal.toml");
    assert!(
        msg.contains("ideal.toml: params.g_min_s: must be >= 0"),
        "{msg}"
    );
}

#[test]
fn a_non_positive_critical_current_is_refused() {
    for bad in ["0.0", "-5e-5"] {
        let msg = build_error(&with_value("stt_mram", "ic0_a", bad), "stt_mram.toml");
        assert!(
            msg.starts_with("stt_mram.toml: params.ic0_a: must be > 0"),
            "{msg}"
        );
    }
}

#[test]
fn nan_and_infinity_are_refused_anywhere() {
    for (name, field) in [
        ("rram_hfo2", "c2c_sigma"),
        ("pcm_gst", "nu_mean_slope"),
        ("stt_mram", "delta"),
    ] {
        for bad in ["nan", "inf", "-inf"] {
            let msg = build_error(&with_value(name, field, bad), &format!("{name}.toml"));
            assert!(
                msg.contains(&format!("{name}.toml: params.{field}.value")),
                "{msg}"
            );
            assert!(msg.contains("finite"), "{msg}");
        }
    }
}

#[test]
fn out_of_range_probabilities_are_refused() {
    let msg = build_error(
        &with_value("rram_hfo2", "p_stuck_lrs", "1.5"),
        "rram_hfo2.toml",
    );
    assert!(
        msg.contains("params.p_stuck_lrs") && msg.contains("[0, 1]"),
        "{msg}"
    );
}

#[test]
fn unknown_names_models_and_fields_are_refused() {
    let msg = format!("{:#}", preset::read("no_such_device").unwrap_err());
    assert!(
        msg.contains("no_such_device") && msg.contains("rram_hfo2"),
        "{msg}"
    );
    let text = preset::BUILTIN[0]
        .1
        .replace("model = \"ideal\"", "model = \"flash\"");
    let msg = build_error(&text, "ideal.toml");
    assert!(
        msg.contains("ideal.toml: model") && msg.contains("flash"),
        "{msg}"
    );
    let text = format!(
        "{}\n[params.g_extra_s]\nvalue = 1.0\nunit = \"S\"\nsource = \"x\"\n",
        preset::BUILTIN[0].1
    );
    let msg = build_error(&text, "ideal.toml");
    assert!(
        msg.contains("ideal.toml") && msg.contains("g_extra_s"),
        "{msg}"
    );
    let msg = build_error("name = \"x\"\nmodel = \"pcm\"\n", "x.toml");
    assert!(msg.contains("x.toml: description: missing"), "{msg}");
    let msg = build_error("name = [", "broken.toml");
    assert!(msg.contains("broken.toml") && msg.contains("TOML"), "{msg}");
}

#[test]
fn a_user_preset_file_loads_by_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("my_rram.toml");
    std::fs::write(&path, with_value("rram_hfo2", "c2c_sigma", "0.01")).unwrap();
    let p = preset::read(path.to_str().unwrap()).unwrap();
    assert_eq!(p.origin, path.display().to_string());
    match p.build(&toml::Table::new()).unwrap() {
        xbar::device::AnyDevice::Rram(r) => assert_eq!(r.params.c2c_sigma, 0.01),
        other => panic!("{other:?}"),
    }
    let missing = dir.path().join("absent.toml");
    let msg = format!("{:#}", preset::read(missing.to_str().unwrap()).unwrap_err());
    assert!(msg.contains("absent.toml"), "{msg}");
}
