"""Regenerate the PyTorch reference of tests/nn_sequential.rs
(`pytorch_state_dicts_give_pytorchs_scores`): a small nn.Sequential with every layer type
xbar mirrors, its state_dict as safetensors, an input batch and PyTorch's scores.
Run with torch 2.10 and safetensors: python make.py"""
import numpy as np
import torch
from torch import nn
from safetensors.torch import save_file

torch.manual_seed(0)
model = nn.Sequential(
    nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(4, 5, 3, stride=2, padding=1), nn.ReLU(), nn.AvgPool2d(2),
    nn.Flatten(), nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 3),
)
x = torch.rand(2, 3, 8, 8)
with torch.no_grad():
    logits = model(x)
save_file(model.state_dict(), "model.safetensors")
np.save("input.npy", x.numpy().astype("<f4"))
np.save("logits.npy", logits.numpy().astype("<f4"))
