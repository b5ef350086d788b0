"""xbar.run and xbar.load_results: an experiment run from Python writes the same results as
the `xbar run` command (bit for bit, whatever the thread count), resumes and refuses exactly
like it, and bad input is a ValueError with the command's message."""

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import xbar
from conftest import REPO

# A small inference experiment on the embedded MNIST-10k: a 784-16-10 MLP trained for one
# epoch, programmed on PCM and read 1 s and 1 day after programming.
TINY = """
[experiment]
name = "tiny"
kind = "inference"
seed = 3
repeats = 1

[data]
source = "mnist10k"

[network]
kind = "mlp"
hidden = [16]

[train]
epochs = 1
batch_size = 64

[hardware]
device = "pcm_gst"

[[sweep]]
path = "hardware.t_inference_s"
values = [1.0, 86400.0]
"""


def cli(*args):
    """The `xbar` command: $XBAR_BIN, the release build of this checkout, or cargo run."""
    binary = os.environ.get("XBAR_BIN") or str(REPO / "target" / "release" / "xbar")
    if Path(binary).is_file():
        command = [binary]
    else:
        cargo = shutil.which("cargo")
        assert cargo, "neither target/release/xbar nor cargo found: build the CLI first"
        command = [cargo, "run", "--release", "--quiet", "--manifest-path", str(REPO / "Cargo.toml"), "--"]
    return subprocess.run(command + list(args), capture_output=True, text=True)


@pytest.fixture
def experiment(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def test_run_returns_the_summary_and_matches_the_command_bit_for_bit(experiment, tmp_path):
    py_out = tmp_path / "py"
    result = xbar.run(experiment, out=py_out, threads=1)
    summary = result["summary"]
    assert list(summary["hardware.t_inference_s"]) == [1.0, 86400.0]
    assert summary["accuracy_mean"].dtype == np.float64
    assert np.all((summary["accuracy_mean"] > 0.5) & (summary["accuracy_mean"] <= 1.0))
    assert result["run"]["plan"]["seed"] == 3
    assert str(py_out / "results.csv") in result["files"]

    cli_out = tmp_path / "cli"
    done = cli("run", str(experiment), "--out", str(cli_out), "--threads", "2", "--quiet")
    assert done.returncode == 0, done.stderr
    for name in ("results.csv", "summary.csv"):
        assert (py_out / name).read_bytes() == (cli_out / name).read_bytes(), name


def test_set_and_seed_change_what_runs(experiment, tmp_path):
    result = xbar.run(experiment, out=tmp_path / "o", set={"train.epochs": 2, "network.hidden": [8]}, seed=5)
    plan = result["run"]["plan"]
    assert plan["base"]["train"]["epochs"] == 2
    assert plan["base"]["network"]["hidden"] == [8]
    assert plan["seed"] == 5


def test_results_are_never_overwritten_by_another_experiment(experiment, tmp_path):
    out = tmp_path / "o"
    first = xbar.run(experiment, out=out)
    again = xbar.run(experiment, out=out)  # the same experiment: nothing to redo
    np.testing.assert_array_equal(first["summary"]["accuracy_mean"], again["summary"]["accuracy_mean"])
    with pytest.raises(ValueError, match="seed 3 there, 4 now"):
        xbar.run(experiment, out=out, seed=4)
    assert (out / "results.csv").read_bytes() == Path(first["dir"], "results.csv").read_bytes()


def test_bad_experiments_are_value_errors_with_the_command_message(experiment, tmp_path):
    with pytest.raises(ValueError, match="no_such_key"):
        xbar.run(experiment, out=tmp_path / "a", set={"train.no_such_key": 1})
    with pytest.raises(ValueError, match="cannot read the experiment file"):
        xbar.run(tmp_path / "missing.toml", out=tmp_path / "b")
    with pytest.raises(ValueError, match="use at least one thread"):
        xbar.run(experiment, out=tmp_path / "c", threads=0)
    with pytest.raises(TypeError, match="cannot be a configuration value"):
        xbar.run(experiment, out=tmp_path / "d", set={"train.epochs": object()})
    assert not (tmp_path / "a").exists(), "a refused run leaves nothing behind"


def test_load_results_refuses_what_is_not_a_results_directory(tmp_path):
    with pytest.raises(ValueError, match="not a results directory"):
        xbar.load_results(tmp_path / "nothing")
    with pytest.raises(ValueError, match="no run.json"):
        xbar.load_results(tmp_path)
