"""xbar: in-memory computing crossbars built from emerging memories, from Python.

The Rust simulator's crossbar tiles, device presets and experiment driver, with NumPy
arrays in and out:

>>> import numpy as np, xbar
>>> w = np.random.default_rng(0).uniform(-1, 1, (32, 64))
>>> tile = xbar.Tile(w, device="pcm_gst", seed=0)
>>> report = tile.program()
>>> y = tile.read(np.ones(64, np.float32), t=86400.0)   # one day after programming

- :func:`presets`, :func:`preset`: the device presets, every parameter with unit and source;
- :class:`Tile`: a weight matrix on crossbar tiles (tiled automatically when larger than
  one tile), read forward and transposed, updated by pulses, with an energy ledger;
- :func:`run`, :func:`load_results`: experiment files, exactly as ``xbar run`` runs them;
- :mod:`xbar.torch` (needs PyTorch): ``AnalogLinear``, ``AnalogConv2d`` and ``convert``.

Errors from the simulator are ``ValueError`` with the message the ``xbar`` command prints;
a wrong array type or dtype is a ``TypeError``. Results are bit-identical to the command
line and the Rust library for the same seed, whatever the thread count.
"""

from __future__ import annotations

from ._preset import Parameter, Preset, preset, presets
from ._results import load_results, run
from ._xbar import Tile, __version__

__all__ = [
    "Parameter",
    "Preset",
    "Tile",
    "__version__",
    "load_results",
    "preset",
    "presets",
    "run",
]
