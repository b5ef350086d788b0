"""Shared fixtures of the Python tests: the repository root and exact (noise-free,
converter-free) tile settings."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# An ideal device read without DAC/ADC quantisation or read noise: the tile's product is
# the exact W x up to float32 rounding.
EXACT = dict(device="ideal", periphery={"dac_bits": 0, "adc": {"bits": 0}, "read_noise": False})


@pytest.fixture
def repo() -> Path:
    return REPO
