"""PyTorch adapter: linear and convolution layers whose products are crossbar reads.

``AnalogLinear`` and ``AnalogConv2d`` are ``torch.nn.Module`` s holding their weights as a
digital ``torch.nn.Parameter`` (the master copy an optimiser trains) and an
:class:`xbar.Tile` programmed from it. The forward pass is a tile read — every output pixel
of a convolution is one analog read of its input patch (im2col), as in aihwkit's
``AnalogConv2d`` —, with the device's programming error, drift, read noise, DAC/ADC and IR
drop. The backward pass gives the input gradient by the transposed read of the same tiles
(``backward="transposed"``, what an analog chip computes) or digitally from the master
weights (``backward="digital"``); the weight gradient is digital (``grad_out xᵀ``), so
optimisers train the master copy, and the tile is re-programmed from it before the next
forward pass whenever it changed (hardware-in-the-loop training). ``convert(model)``
swaps every ``nn.Linear`` and ``nn.Conv2d`` of a model for these, the workflow aihwkit users
know.

Tensors are moved to the CPU and float32 for the reads and the results come back on the
input's device and dtype. Bias and everything outside the layers stay digital.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Optional, Union

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ._preset import Preset
from ._xbar import Tile

__all__ = ["AnalogConv2d", "AnalogLinear", "analog_layers", "convert", "set_read_time"]

Device = Union[str, Preset]
_BACKWARDS = ("transposed", "digital")


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float32).contiguous().numpy()


class _AnalogMatrix:
    """The crossbar side of one layer: a tile programmed from a (out, in) weight matrix,
    re-programmed when the master weights change."""

    def __init__(self, device: Device, seed: int, read_time: Optional[float], tile_config: dict):
        self.device = device
        self.seed = seed
        self.read_time = read_time
        self.tile_config = dict(tile_config)
        self.tile: Optional[Tile] = None
        self._programmed_version: Optional[tuple] = None

    def sync(self, weight: torch.Tensor) -> Tile:
        """The tile, (re-)programmed if ``weight`` changed since it was programmed."""
        matrix = weight.detach().reshape(weight.shape[0], -1)
        version = (weight._version, weight.data_ptr())
        if self.tile is None or version != self._programmed_version:
            w = matrix.to("cpu", torch.float64).numpy()
            if self.tile is None:
                self.tile = Tile(w, device=self.device, seed=self.seed, **self.tile_config)
                self.tile.program()
            else:
                # The same devices take the new weights (re-programmed, not re-fabricated).
                self.tile.program(w)
            self._programmed_version = version
        if self.read_time is not None and self.tile.read_time != self.read_time:
            self.tile.set_read_time(self.read_time)
        return self.tile


class _TileProduct(torch.autograd.Function):
    """``y = W x`` by a tile read; backward: the transposed read (or the digital ``Wᵀ``) for
    the input, ``grad_out xᵀ`` for the weight."""

    @staticmethod
    def forward(ctx, x2d, weight2d, tile, backward):  # noqa: D401
        ctx.save_for_backward(x2d, weight2d)
        ctx.tile, ctx.backward_mode = tile, backward
        y = tile.read(_numpy(x2d))
        return torch.from_numpy(y).to(x2d.device, x2d.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        x2d, weight2d = ctx.saved_tensors
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            if ctx.backward_mode == "transposed":
                gx = ctx.tile.read_transposed(_numpy(grad_out))
                grad_x = torch.from_numpy(gx).to(grad_out.device, grad_out.dtype)
            else:
                grad_x = grad_out @ weight2d
        if ctx.needs_input_grad[1]:
            grad_w = grad_out.t() @ x2d
        return grad_x, grad_w, None, None


def _check_backward(backward: str) -> str:
    if backward not in _BACKWARDS:
        raise ValueError(f"backward = {backward!r}: use one of {', '.join(_BACKWARDS)}")
    return backward


class AnalogLinear(nn.Linear):
    """``nn.Linear`` whose product is a crossbar read of ``device`` tiles.

    ``device`` is a preset name, a preset file or an :class:`xbar.Preset`; ``seed`` selects
    the tiles' random streams; ``read_time`` (seconds after programming) is when the tiles
    are read (None: right after programming); ``backward`` is ``"transposed"`` or
    ``"digital"``; other keywords are the tile configuration (the keys of an experiment's
    ``[hardware.tile]``, e.g. ``periphery={"adc": {"bits": 8}}``).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: Device = "pcm_gst",
        seed: int = 0,
        read_time: Optional[float] = None,
        backward: str = "transposed",
        **tile_config: Any,
    ):
        super().__init__(in_features, out_features, bias=bias)
        self.backward_mode = _check_backward(backward)
        self.analogs = [_AnalogMatrix(device, seed, read_time, tile_config)]

    @property
    def tile(self) -> Tile:
        """The layer's tile, programmed from the present weights."""
        return self.analogs[0].sync(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x2d = x.reshape(-1, self.in_features)
        y = _TileProduct.apply(x2d, self.weight, self.tile, self.backward_mode)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, device={self.analogs[0].device!r}, backward={self.backward_mode}"


class AnalogConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose kernel matrix (out x in·kh·kw) is on crossbar tiles: every
    output pixel is one read of its im2col input patch. Padding as ``nn.Conv2d`` takes it
    (numbers, ``'same'``, ``'valid'``; ``padding_mode`` zeros, reflect, replicate or
    circular) is applied to the input digitally before the patches are read. A grouped (or
    depthwise) convolution has one tile per group, holding that group's block
    (out/groups x in/groups·kh·kw) and read with that group's channels of the patch; group
    ``g`` draws its devices with tile seed ``seed + g``. Keywords as :class:`AnalogLinear`."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: Device = "pcm_gst",
        seed: int = 0,
        read_time: Optional[float] = None,
        backward: str = "transposed",
        **tile_config: Any,
    ):
        super().__init__(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding,
            dilation=dilation, groups=groups, bias=bias, padding_mode=padding_mode,
        )
        self.backward_mode = _check_backward(backward)
        self.analogs = [
            _AnalogMatrix(device, seed + g, read_time, tile_config) for g in range(self.groups)
        ]

    def _block(self, g: int) -> torch.Tensor:
        """Group ``g``'s kernel matrix (out/groups x in/groups·kh·kw), a view of the weight."""
        per_group = self.out_channels // self.groups
        return self.weight[g * per_group:(g + 1) * per_group].reshape(per_group, -1)

    @property
    def tiles(self) -> list[Tile]:
        """The layer's tiles, one per group, programmed from the present kernel matrix."""
        return [a.sync(self._block(g)) for g, a in enumerate(self.analogs)]

    @property
    def tile(self) -> Tile:
        """The layer's tile (groups = 1), programmed from the present kernel matrix."""
        if self.groups != 1:
            raise ValueError(f"a convolution of {self.groups} groups has one tile per group: use .tiles")
        return self.tiles[0]

    def _pads(self) -> tuple[int, int, int, int]:
        """(left, right, top, bottom) padding as ``nn.Conv2d`` applies it: ``'same'`` pads
        dilation·(k - 1) in all, the odd one on the right / bottom."""
        if self.padding == "valid":
            return (0, 0, 0, 0)
        if self.padding == "same":
            th, tw = (d * (k - 1) for d, k in zip(self.dilation, self.kernel_size))
            return (tw // 2, tw - tw // 2, th // 2, th - th // 2)
        ph, pw = self.padding
        return (pw, pw, ph, ph)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
        x = F.pad(x, self._pads(), mode=mode)
        n, _, h, w = x.shape
        kh, kw = self.kernel_size
        out_h = (h - self.dilation[0] * (kh - 1) - 1) // self.stride[0] + 1
        out_w = (w - self.dilation[1] * (kw - 1) - 1) // self.stride[1] + 1
        per_group = self.out_channels // self.groups
        outputs = []
        for g, (x_g, tile) in enumerate(zip(x.chunk(self.groups, dim=1), self.tiles)):
            patches = F.unfold(x_g, (kh, kw), self.dilation, 0, self.stride)
            cols = patches.transpose(1, 2).reshape(-1, patches.shape[1])
            y_g = _TileProduct.apply(cols, self._block(g), tile, self.backward_mode)
            outputs.append(y_g.reshape(n, out_h * out_w, per_group))
        y = torch.cat(outputs, dim=2).transpose(1, 2)
        y = y.reshape(n, self.out_channels, out_h, out_w)
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1, 1)
        return y

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, device={self.analogs[0].device!r}, backward={self.backward_mode}"


def _analog_copy(layer: nn.Module, seed: int, device: Device, read_time, backward, tile_config):
    """The analog twin of an ``nn.Linear`` / ``nn.Conv2d``, sharing nothing with it."""
    common = dict(device=device, seed=seed, read_time=read_time, backward=backward, **tile_config)
    if isinstance(layer, nn.Linear):
        twin = AnalogLinear(layer.in_features, layer.out_features, layer.bias is not None, **common)
    else:
        twin = AnalogConv2d(
            layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
            layer.padding, layer.dilation, layer.groups, layer.bias is not None,
            layer.padding_mode, **common,
        )
    twin.load_state_dict(layer.state_dict())
    return twin.to(layer.weight.device, layer.weight.dtype)


def convert(
    model: nn.Module,
    device: Device = "pcm_gst",
    seed: int = 0,
    read_time: Optional[float] = None,
    backward: str = "transposed",
    **tile_config: Any,
) -> nn.Module:
    """A copy of ``model`` with every ``nn.Linear`` and ``nn.Conv2d`` replaced by its analog
    twin on ``device`` tiles, weights copied. Tiles take consecutive seeds from ``seed`` in
    ``model.modules()`` order (a grouped convolution one per group), so layers draw
    independent devices and the result is reproducible. The original model is not
    changed."""
    _check_backward(backward)
    converted = copy.deepcopy(model)
    counter = [0]

    def swap(parent: nn.Module) -> None:
        for name, child in parent.named_children():
            if isinstance(child, (AnalogLinear, AnalogConv2d)):
                continue
            if isinstance(child, (nn.Linear, nn.Conv2d)):
                twin = _analog_copy(child, seed + counter[0], device, read_time, backward, tile_config)
                counter[0] += getattr(child, "groups", 1)
                setattr(parent, name, twin)
            else:
                swap(child)

    if isinstance(converted, (nn.Linear, nn.Conv2d)) and not isinstance(
        converted, (AnalogLinear, AnalogConv2d)
    ):
        return _analog_copy(converted, seed, device, read_time, backward, tile_config)
    swap(converted)
    return converted


def analog_layers(model: nn.Module) -> list[nn.Module]:
    """The analog layers of ``model``, in ``model.modules()`` order."""
    return [m for m in model.modules() if isinstance(m, (AnalogLinear, AnalogConv2d))]


def set_read_time(model: nn.Module, read_time: Optional[float]) -> None:
    """Read every analog layer of ``model`` at ``read_time`` seconds after programming."""
    if read_time is not None and not (math.isfinite(read_time) and read_time >= 0):
        raise ValueError(f"read_time = {read_time}: give a finite time >= 0 s")
    for layer in analog_layers(model):
        for matrix in layer.analogs:
            matrix.read_time = read_time
