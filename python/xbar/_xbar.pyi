"""Typed stubs of the native module ``xbar._xbar`` (the Rust extension)."""

from os import PathLike
from typing import Any, Optional, Union

import numpy as np
import numpy.typing as npt

from ._preset import Preset

__version__: str
"""The xbar version (the Rust crate's)."""

Floats = npt.NDArray[Union[np.float32, np.float64]]

def presets() -> list[str]:
    """Names of the built-in device presets."""

def preset_table(name_or_path: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """One preset as a dict (name, model, family, description, origin, params with value,
    unit and source), overrides applied and validated. Use :func:`xbar.preset`."""

def run_experiment(
    path: Union[str, PathLike[str]],
    sets: dict[str, Any],
    out: Optional[Union[str, PathLike[str]]] = None,
    threads: Optional[int] = None,
    seed: Optional[int] = None,
    progress: bool = False,
) -> str:
    """Run an experiment file as ``xbar run`` does; returns the output directory. Use
    :func:`xbar.run`."""

class Tile:
    """A weight matrix on crossbar tiles of one device preset.

    ``weights`` is the (n_out, n_in) matrix to store (float32 or float64, any memory order):
    input i drives array row i, output j is read at column j, each weight a differential
    pair of devices. Matrices larger than ``max_rows x max_cols`` (default 256 x 256) are
    split over a grid of tiles whose partial sums add digitally. ``device`` is a built-in
    preset name, a preset TOML file, or a :class:`xbar.Preset` with overrides (default
    ``"pcm_gst"``). ``seed`` selects every random stream (fabrication, programming, read
    noise, updates); the same seed gives bit-identical results whatever ``threads`` (the
    tile's own worker pool; default all cores). ``update`` holds the pulsed-update settings
    (``pulse_train_length``, ``pair_update`` = ``"canonical"`` or ``"set_only"``). Every
    other keyword is the tile configuration, with the keys of an experiment's
    ``[hardware.tile]`` table: ``max_rows``, ``max_cols``, ``mapping``, ``periphery``
    (``dac_bits``, ``adc``, ``read_noise``, ``drift_compensation`` ...), ``programming``,
    ``faults``, ``wires``, ``energy`` (nested dicts; :attr:`config` lists every key with its
    default, and ``src/crossbar/config.rs`` documents each with its unit).
    An unknown key or a bad value is a ``ValueError`` naming it.
    """

    def __init__(
        self,
        weights: Floats,
        device: Union[str, Preset, None] = None,
        seed: int = 0,
        threads: Optional[int] = None,
        update: Optional[dict[str, Any]] = None,
        **tile_config: Any,
    ) -> None: ...
    def program(
        self, weights: Optional[Floats] = None, write_verify: Optional[bool] = None
    ) -> dict[str, Any]:
        """Program the weights (those given at construction, or ``weights`` of the same
        shape) on the devices: open loop or write-verify as configured (``write_verify``
        chooses before the first programming). Returns the report: devices, converged,
        pulses, energy_j, time_s, max_pulses_per_device, rms_error_s, max_abs_error_s."""
    def read(self, x: Floats, t: Optional[float] = None) -> npt.NDArray[np.float32]:
        """``W x`` by an analog read of a vector (n_in,) or a batch (batch, n_in), at ``t``
        seconds after programming (default: the present read time): DAC, conductances at
        ``t`` (drift), read noise drawn at this read, IR drop, ADC, drift compensation.
        Returns float32 of shape (n_out,) or (batch, n_out)."""
    def read_transposed(self, d: Floats, t: Optional[float] = None) -> npt.NDArray[np.float32]:
        """``Wᵀ d`` by a transposed read of the same devices: (n_out,) or (batch, n_out) in,
        (n_in,) or (batch, n_in) out."""
    def update(self, x: Floats, d: Floats, learning_rate: float) -> dict[str, Any]:
        """Pulsed outer-product update ``W <- W - learning_rate * sum_b d_b x_bᵀ`` (the
        gradient-descent step of aihwkit's analog tiles): coincident stochastic pulse trains
        on rows and columns, every pulse through the device's step model. ``x`` is (n_in,)
        or (batch, n_in), ``d`` (n_out,) or (batch, n_out). Returns pulses, energy_j, time_s,
        outer_products, slots."""
    def weights(self) -> npt.NDArray[np.float64]:
        """The effective weights read back without noise at the present read time,
        (n_out, n_in)."""
    def conductances(
        self, plane: int = 0
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Noise-free conductances (G+, G-) of bit-slice ``plane`` at the present read time,
        siemens, each (n_out, n_in) like the weights."""
    def ledger(self) -> dict[str, Any]:
        """Cumulative energy (joules) and latency (seconds) of every read and programming
        of all tiles: array_read_j, dac_j, adc_j, programming_j, read_j, total_j,
        pj_per_mac, macs, vectors, conversions, pulses, read_latency_s,
        programming_time_s."""
    def set_read_time(self, t: float) -> None:
        """Move the tiles to ``t`` seconds after programming."""
    @property
    def shape(self) -> tuple[int, int]:
        """(n_out, n_in)."""
    @property
    def grid(self) -> tuple[int, int]:
        """(row blocks, column blocks) of the tile grid."""
    @property
    def read_time(self) -> Optional[float]:
        """Seconds after programming the tiles are read at (None before programming)."""
    @property
    def device(self) -> str:
        """The device preset's name or path."""
    @property
    def config(self) -> dict[str, Any]:
        """The full tile configuration, defaults included."""
