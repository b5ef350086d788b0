"""Regenerate the PyTorch reference of tests/nn_sequential.rs
(`pytorch_grouped_convolutions_give_pytorchs_scores`): an nn.Sequential with a grouped
convolution (2 groups), a depthwise convolution with two kernels per channel
(groups = in_channels, stride 2) and a pointwise (1 x 1) one, its state_dict as
safetensors, an input batch and PyTorch's scores.
Run with torch 2.10 and safetensors: python make.py"""
import numpy as np
import torch
from torch import nn
from safetensors.torch import save_file

torch.manual_seed(0)
model = nn.Sequential(
    nn.Conv2d(4, 8, 3, padding=1, groups=2), nn.ReLU(),
    nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=8), nn.ReLU(),
    nn.Conv2d(16, 6, 1), nn.ReLU(), nn.AvgPool2d(2),
    nn.Flatten(), nn.Linear(24, 3),
)
x = torch.rand(2, 4, 8, 8)
with torch.no_grad():
    logits = model(x)
save_file(model.state_dict(), "model.safetensors")
np.save("input.npy", x.numpy().astype("<f4"))
np.save("logits.npy", logits.numpy().astype("<f4"))
