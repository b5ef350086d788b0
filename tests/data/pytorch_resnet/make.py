"""Regenerate the PyTorch reference of tests/nn_sequential.rs
(`pytorch_residual_networks_give_pytorchs_scores`): a small residual nn.Sequential (conv
without bias, batch norm, an identity and a projection basic block as torchvision's
`BasicBlock`, global average pooling, linear), its batch norms' running statistics made by
a few training-mode passes, its state_dict as safetensors, an input batch and PyTorch's
evaluation-mode scores, and the state_dict after one more training-mode pass on a second
batch (running statistics updated with momentum 0.1 and the unbiased batch variance). Run with torch 2.10 and safetensors: python make.py"""
import numpy as np
import torch
from torch import nn
from safetensors.torch import save_file


class BasicBlock(nn.Module):
    """torchvision.models.resnet.BasicBlock (same module names, so same state_dict keys)."""

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


torch.manual_seed(0)
model = nn.Sequential(
    nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
    BasicBlock(4, 4), BasicBlock(4, 6, stride=2),
    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 5),
)
with torch.no_grad():
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.5, 0.5)
    model.train()
    for _ in range(3):
        model(torch.randn(8, 3, 8, 8) * 2 + 0.5)
    model.eval()
    x = torch.rand(2, 3, 8, 8)
    logits = model(x)
save_file(model.state_dict(), "model.safetensors")
np.save("input.npy", x.numpy().astype("<f4"))
np.save("logits.npy", logits.numpy().astype("<f4"))

model.train()
x_train = torch.randn(3, 3, 8, 8)
with torch.no_grad():
    model(x_train)
np.save("train_input.npy", x_train.numpy().astype("<f4"))
save_file(model.state_dict(), "after_train_pass.safetensors")
