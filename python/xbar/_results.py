"""Experiments from Python: :func:`run` runs an experiment file exactly as ``xbar run`` does
(same resume and refusal rules, same files), :func:`load_results` reads a results
directory back as NumPy arrays."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from . import _xbar

PathLike = Union[str, "os.PathLike[str]"]


def _column(values: list[str]) -> np.ndarray:
    """A CSV column as float64 (empty cells as NaN) when every cell is a number, else as
    strings."""
    try:
        return np.array([float(v) if v != "" else math.nan for v in values], dtype=np.float64)
    except ValueError:
        return np.array(values, dtype=str)


def _read_csv(path: Path) -> dict[str, np.ndarray]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        return {}
    header, body = rows[0], rows[1:]
    return {name: _column([r[i] for r in body]) for i, name in enumerate(header)}


def load_results(directory: PathLike) -> dict[str, Any]:
    """Read a results directory written by ``xbar run`` (or :func:`run`).

    Returns a dict with ``summary`` and ``results`` (each a dict from column name to a NumPy
    array: float64 for numeric columns, strings otherwise; absent files give empty dicts),
    ``run`` (the parsed ``run.json``: configuration, seed, version, input fingerprints,
    timings), ``dir`` and ``files`` (the paths in the directory).
    """
    d = Path(directory)
    if not d.is_dir():
        raise ValueError(f"{d} is not a results directory (run an experiment first)")
    run_json = d / "run.json"
    if not run_json.is_file():
        raise ValueError(f"{d} holds no run.json: not a directory written by xbar run")
    with open(run_json, encoding="utf-8") as f:
        record = json.load(f)
    tables = {
        name: _read_csv(d / f"{name}.csv") if (d / f"{name}.csv").is_file() else {}
        for name in ("summary", "results")
    }
    files = sorted(str(p) for p in d.iterdir() if p.is_file() and not p.name.startswith("."))
    return {**tables, "run": record, "dir": str(d), "files": files}


def run(
    path: PathLike,
    set: Optional[dict[str, Any]] = None,
    out: Optional[PathLike] = None,
    threads: Optional[int] = None,
    seed: Optional[int] = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Run (or resume) the experiment file ``path`` as ``xbar run`` does and return its
    results as :func:`load_results` reads them.

    ``set`` maps dotted configuration paths to values (``--set``), e.g.
    ``{"hardware.t_inference_s": 3600.0, "train.epochs": 2}``; ``out`` is the output
    directory (default ``results/<file stem>``); ``threads`` the worker threads (default all
    cores; results do not depend on it); ``seed`` replaces ``experiment.seed``; ``progress``
    shows the command's progress bar. The GIL is released while it runs.
    """
    written = _xbar.run_experiment(
        os.fspath(path),
        dict(set or {}),
        None if out is None else os.fspath(out),
        threads,
        seed,
        progress,
    )
    return load_results(written)
