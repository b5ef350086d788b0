"""xbar.presets and xbar.preset: names, values with units and sources, overrides, user
files, and the errors of bad names and keys."""

import pytest

import xbar


def test_presets_lists_the_built_in_devices():
    names = xbar.presets()
    for name in ("ideal", "rram_hfo2", "pcm_gst", "stt_mram", "reram_sb"):
        assert name in names


def test_preset_has_values_units_and_sources():
    p = xbar.preset("pcm_gst")
    assert p.model == "pcm" and p.name == "pcm_gst"
    assert p["g_max_s"] == pytest.approx(25e-6)
    assert p.unit("g_max_s") == "S"
    assert "Joshi" in p.source("g_max_s") or "Nandakumar" in p.source("g_max_s")
    assert set(p) == set(p.params) and len(p) == len(p.params)
    for param in p.params.values():
        assert param.unit and param.source


def test_overrides_replace_values_and_say_so():
    p = xbar.preset("pcm_gst", g_max_s=20e-6)
    assert p["g_max_s"] == pytest.approx(20e-6)
    assert p.source("g_max_s").startswith("set by the caller")
    assert p.overrides == {"g_max_s": 20e-6}


def test_unknown_names_and_parameters_are_value_errors():
    with pytest.raises(ValueError, match="unknown device `no_such_device`"):
        xbar.preset("no_such_device")
    with pytest.raises(ValueError, match="unknown parameter `g_maximum`"):
        xbar.preset("pcm_gst", g_maximum=1e-5)
    with pytest.raises(KeyError, match="no parameter `g_maximum`"):
        xbar.preset("pcm_gst")["g_maximum"]


def test_out_of_range_override_names_the_parameter():
    with pytest.raises(ValueError, match="g_max_s"):
        xbar.preset("pcm_gst", g_max_s=5.0)


def test_a_user_preset_file_works_like_a_name(repo, tmp_path):
    text = (repo / "device_models" / "pcm_gst.toml").read_text()
    path = tmp_path / "my_pcm.toml"
    path.write_text(text.replace('name = "pcm_gst"', 'name = "my_pcm"', 1))
    p = xbar.preset(str(path))
    assert p.name == "my_pcm" and p.origin == str(path)
    assert p["g_max_s"] == xbar.preset("pcm_gst")["g_max_s"]


def test_a_wrong_override_type_is_a_type_error():
    with pytest.raises(TypeError, match="cannot be a configuration value"):
        xbar.preset("pcm_gst", g_max_s=object())
