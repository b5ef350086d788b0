"""xbar.torch (runs where PyTorch is installed): analog layers equal their digital twins on
exact tiles, forward and backward; convert swaps layers and keeps the original; training
re-programs the tiles; grouped convolutions have a tile per group; device physics (PCM
drift) shows through."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import xbar  # noqa: E402
from xbar.torch import AnalogConv2d, AnalogLinear, analog_layers, convert, set_read_time  # noqa: E402
from conftest import EXACT  # noqa: E402

EXACT_TILE = {k: v for k, v in EXACT.items() if k != "device"}


def small_cnn():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 3 * 3, 10),
    )


def test_analog_linear_on_exact_tiles_equals_nn_linear_forward_and_backward():
    torch.manual_seed(1)
    digital = nn.Linear(20, 7)
    analog = convert(digital, device="ideal", **EXACT_TILE)
    assert isinstance(analog, AnalogLinear) and not isinstance(digital, AnalogLinear)
    x = torch.randn(5, 20, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    y, y2 = digital(x), analog(x2)
    torch.testing.assert_close(y2, y, atol=1e-5, rtol=0)
    g = torch.randn_like(y)
    y.backward(g)
    y2.backward(g)
    # The input gradient is the transposed read of the same exact tile.
    torch.testing.assert_close(x2.grad, x.grad, atol=1e-5, rtol=0)
    torch.testing.assert_close(analog.weight.grad, digital.weight.grad, atol=1e-5, rtol=0)
    torch.testing.assert_close(analog.bias.grad, digital.bias.grad)


def assert_twin_agrees(model, analog, x, weighted):
    """``analog`` (converted from ``model`` onto exact tiles) gives ``model``'s outputs on
    ``x``, its input gradient and the weight gradients of its ``weighted`` layers."""
    x = x.detach().requires_grad_(True)
    x2 = x.detach().clone().requires_grad_(True)
    y, y2 = model(x), analog(x2)
    torch.testing.assert_close(y2, y, atol=1e-4, rtol=0)
    y.sum().backward()
    y2.sum().backward()
    torch.testing.assert_close(x2.grad, x.grad, atol=1e-4, rtol=0)
    for a, d in zip(analog_layers(analog), weighted):
        torch.testing.assert_close(a.weight.grad, d.weight.grad, atol=1e-4, rtol=1e-4)


def test_convert_swaps_convolutions_and_linears_and_keeps_the_original():
    model = small_cnn()
    analog = convert(model, device="ideal", seed=10, **EXACT_TILE)
    layers = analog_layers(analog)
    assert [type(m) for m in layers] == [AnalogConv2d, AnalogConv2d, AnalogLinear]
    assert [m.analogs[0].seed for m in layers] == [10, 11, 12]
    assert analog_layers(model) == []
    assert_twin_agrees(model, analog, torch.randn(3, 1, 14, 14), [model[0], model[3], model[6]])


def test_grouped_and_depthwise_convolutions_have_one_tile_per_group():
    torch.manual_seed(4)
    model = nn.Sequential(
        nn.Conv2d(4, 8, 3, padding=1, groups=2), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=8), nn.ReLU(),
        nn.Conv2d(16, 6, 1), nn.Flatten(), nn.Linear(6 * 4 * 4, 3),
    )
    analog = convert(model, device="ideal", seed=20, **EXACT_TILE)
    layers = analog_layers(analog)
    # Seeds run on over the groups: 2 tiles, then 8, then one each.
    assert [[m.seed for m in layer.analogs] for layer in layers] == [
        [20, 21], list(range(22, 30)), [30], [31]]
    assert [t.weights().shape for t in layers[1].tiles] == [(2, 9)] * 8
    assert_twin_agrees(model, analog, torch.randn(3, 4, 8, 8), [model[0], model[2], model[4], model[6]])
    with pytest.raises(ValueError, match="one tile per group"):
        layers[0].tile


def test_padding_strings_and_modes_pad_as_nn_conv2d():
    # 'same' with an even kernel pads one more on the right / bottom; the modes pad with
    # reflected, replicated or wrapped-around pixels; 'valid' pads nothing.
    torch.manual_seed(5)
    model = nn.Sequential(
        nn.Conv2d(2, 3, 4, padding="same"), nn.ReLU(),
        nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"), nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=(2, 1), padding_mode="replicate", groups=2), nn.ReLU(),
        nn.Conv2d(4, 3, 3, padding=1, padding_mode="circular", dilation=2), nn.ReLU(),
        nn.Conv2d(3, 2, 3, padding="valid"), nn.Flatten(), nn.Linear(2 * 7 * 3, 2),
    )
    analog = convert(model, device="ideal", **EXACT_TILE)
    layers = analog_layers(analog)
    assert [m.padding_mode for m in layers[:5]] == ["zeros", "reflect", "replicate", "circular", "zeros"]
    assert layers[0]._pads() == (1, 2, 1, 2)
    assert_twin_agrees(model, analog, torch.randn(2, 2, 9, 7), [model[i] for i in (0, 2, 4, 6, 8, 10)])


def test_digital_backward_uses_the_master_weights():
    torch.manual_seed(2)
    layer = AnalogLinear(12, 5, device="pcm_gst", seed=3, backward="digital")
    x = torch.randn(4, 12, requires_grad=True)
    layer(x).sum().backward()
    torch.testing.assert_close(x.grad, torch.ones(4, 5) @ layer.weight.detach())


def test_an_optimiser_step_reprograms_the_tile():
    torch.manual_seed(3)
    layer = AnalogLinear(8, 4, device="ideal", **EXACT_TILE)
    before = layer.tile.weights().copy()
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    layer(torch.randn(6, 8)).pow(2).sum().backward()
    opt.step()
    after = layer.tile.weights()
    assert not np.allclose(after, before)
    np.testing.assert_allclose(after, layer.weight.detach().double().numpy(), atol=1e-6)


def test_pcm_drift_shows_through_and_compensation_restores_it():
    model = small_cnn()
    x = torch.rand(8, 1, 14, 14)
    reference = model(x).detach()

    def error(read_time, compensate):
        analog = convert(model, device="pcm_gst", seed=0, periphery={"drift_compensation": compensate})
        set_read_time(analog, read_time)
        with torch.no_grad():
            y = analog(x)
        return float((y - reference).norm() / reference.norm())

    # Conductances drift as (t / t0)^-nu: a year later the analog products have shrunk by
    # about half (the digital biases have not); global drift compensation undoes most of it
    # (what remains is the 1/f read noise, larger a year on, and the spread of drift).
    fresh, year, year_compensated = error(1.0, False), error(3.15e7, False), error(3.15e7, True)
    assert fresh < 0.2
    assert year > 2 * fresh
    assert year_compensated < 0.75 * year


def test_unsupported_layers_and_settings_are_value_errors():
    with pytest.raises(ValueError, match="backward = 'analog'"):
        AnalogLinear(3, 2, backward="analog")
    with pytest.raises(ValueError, match="unknown device"):
        AnalogLinear(3, 2, device="nope")(torch.ones(1, 3))
    with pytest.raises(ValueError, match="read_time = -1"):
        set_read_time(nn.Sequential(AnalogLinear(3, 2)), -1.0)
