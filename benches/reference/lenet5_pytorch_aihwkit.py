"""The rivals' side of `cargo bench --bench cnn` (docs/BENCHMARKS.md, issue 12 targets):
  1. one training epoch of LeNet-5 in PyTorch on MNIST-10k's 8,000 training digits
     (batch 32, Adam 1e-3, no augmentation), best of 3;
  2. inference of 500 test digits by the same LeNet-5 converted to aihwkit 1.1
     AnalogConv2d/AnalogLinear on its PCM inference model (PCMLikeNoiseModel, 8-bit DAC and
     ADC, read noise at every read, global drift compensation), 1 s after programming,
     best of 5, next to the digital PyTorch inference of the same 500 digits.
Reads the embedded data of the repository (data/mnist10k). Run in a Python 3.11
virtual environment with torch 2.10 and aihwkit 1.1 (`pip install aihwkit==1.1.0` upgrades
torch to the newest release, under which aihwkit 1.1 fails to build its tiles: run
`pip install torch==2.10.0` after it):
  python benches/reference/lenet5_pytorch_aihwkit.py --threads 1
"""
import argparse
import gzip
import pathlib
import time

import numpy as np
import torch
from torch import nn

ROOT = pathlib.Path(__file__).resolve().parents[2]


def idx(name):
    data = gzip.open(ROOT / "data/mnist10k" / name).read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def lenet5():
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    )


def best(runs, f):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return min(times)


def train_epoch(x, y):
    torch.manual_seed(1)
    model = lenet5()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss = nn.CrossEntropyLoss()
    order = torch.randperm(len(x))
    for start in range(0, len(x), 32):
        batch = order[start:start + 32]
        opt.zero_grad()
        loss(model(x[batch]), y[batch]).backward()
        opt.step()


def analog(model):
    from aihwkit.inference import PCMLikeNoiseModel, GlobalDriftCompensation
    from aihwkit.nn.conversion import convert_to_analog
    from aihwkit.simulator.configs import InferenceRPUConfig

    config = InferenceRPUConfig()
    config.forward.inp_res = 1 / (2**8 - 2)
    config.forward.out_res = 1 / (2**8 - 2)
    config.noise_model = PCMLikeNoiseModel(g_max=25.0)
    config.drift_compensation = GlobalDriftCompensation()
    net = convert_to_analog(model, config)
    net.eval()
    net.program_analog_weights()
    net.drift_analog_weights(1.0)
    return net


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.tensor(idx("train-images-idx3-ubyte.gz"), dtype=torch.float32)[:, None] / 255
    y = torch.tensor(idx("train-labels-idx1-ubyte.gz"), dtype=torch.long)
    test = torch.tensor(idx("t10k-images-idx3-ubyte.gz")[:500], dtype=torch.float32)[:, None] / 255
    epoch = best(3, lambda: train_epoch(x, y))
    print(f"PyTorch {torch.__version__}, {args.threads} threads: LeNet-5 epoch on 8000 digits, batch 32: {epoch:.2f} s")
    model = lenet5().eval()
    with torch.no_grad():
        digital = best(5, lambda: model(test))
        net = analog(model)
        t = best(5, lambda: net(test))
    print(f"digital inference of 500 digits: {digital * 1e3:.1f} ms")
    print(f"aihwkit AnalogConv2d (PCM, 8-bit, read noise): {t * 1e3:.1f} ms = {500 / t:.0f} images/s")


if __name__ == "__main__":
    main()
