"""A PyTorch reference of the authors' Bi-Real Nets, for checking weight conversion.

Written here from the public description of ``liuzechun/Bi-Real-net``'s
``pytorch_implementation`` (liuzechun/Bi-Real-net): the same module tree and parameter names
(so ``state_dict()`` has the authors' keys and shapes), evaluation-mode arithmetic only.
Every binary conv records the real-valued input it is about to binarize, so a test can see
which pre-activations sit near zero.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class SignConv(nn.Module):
    """sign(input) convolved with mean|W| * sign(W) per output channel; zero padding."""

    def __init__(self, cin, cout, kernel, stride, flat: bool):
        super().__init__()
        self.stride, self.padding = stride, kernel // 2
        self.shape = (cout, cin, kernel, kernel)
        self.flat = flat
        size = cout * cin * kernel * kernel
        if flat:  # 18/34 keep the kernel flattened as `weights` (out*in*k*k, 1)
            self.weights = nn.Parameter(torch.empty(size, 1))
        else:  # 50 keeps `weight` in conv layout
            self.weight = nn.Parameter(torch.empty(self.shape))
        self.recorded = None

    def kernel(self):
        return (self.weights if self.flat else self.weight).view(self.shape)

    def forward(self, x):
        self.recorded = x.detach()
        w = self.kernel()
        scale = w.abs().mean(dim=(1, 2, 3), keepdim=True)
        return F.conv2d(torch.sign(x), scale * torch.sign(w), stride=self.stride,
                        padding=self.padding)


def _stem(module: nn.Module, width: int):
    module.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
    module.bn1 = nn.BatchNorm2d(width)
    module.maxpool = nn.MaxPool2d(3, stride=2, padding=1)


class Basic(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.binary_conv = SignConv(cin, cout, 3, stride, flat=True)
        self.bn1 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.AvgPool2d(2, stride=stride), nn.Conv2d(cin, cout, 1, bias=False),
                nn.BatchNorm2d(cout))

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.bn1(self.binary_conv(x)) + shortcut


class BasicNet(nn.Module):
    def __init__(self, repeats, width=64, num_classes=1000):
        super().__init__()
        _stem(self, width)
        cin = width
        for s, r in enumerate(repeats):
            cout = width * 2**s
            blocks = [Basic(cin if b == 0 else cout, cout, 2 if s and b == 0 else 1)
                      for b in range(r)]
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
            cin = cout
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.maxpool(self.bn1(self.conv1(x)))
        for s in range(1, 5):
            x = getattr(self, f"layer{s}")(x)
        return self.fc(x.mean(dim=(2, 3)))


def leaky_clip(x):
    return torch.where(x.abs() > 1, 0.1 * x + 0.9 * torch.sign(x), x)


class Bottleneck(nn.Module):
    """Bi-Real-50: every conv bypassed; two streams (mid width, block width)."""

    def __init__(self, cin, planes, stride, downsample, first):
        super().__init__()
        mid = planes // 4
        self.first, self.downsample_block, self.stride = first, downsample, stride
        self.conv1 = (nn.Conv2d(cin, mid, 1, bias=False) if first
                      else SignConv(cin, mid, 1, 1, flat=False))
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = SignConv(mid, mid, 3, stride, flat=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = SignConv(mid, planes, 1, 1, flat=False)
        self.bn3 = nn.BatchNorm2d(planes)
        if downsample:
            # Present in every downsampling block, the first one included (where it is unused).
            self.down_conv1x1 = nn.Conv2d(cin // 4, mid, 1, bias=False)
            self.pooling = nn.AvgPool2d(2, 2)
            self.downsample = nn.Sequential(
                nn.AvgPool2d(stride, stride), nn.Conv2d(cin, planes, 1, bias=False),
                nn.BatchNorm2d(planes))

    def forward(self, x1, x2):
        a = leaky_clip(x2) if self.first else x2
        out1 = self.bn1(self.conv1(a))
        if not self.first:
            out1 = out1 + (self.down_conv1x1(x1) if self.downsample_block else x1)
        out2 = self.bn2(self.conv2(out1))
        out2 = out2 + (self.pooling(out1) if self.downsample_block and self.stride == 2
                       else out1)
        out3 = self.bn3(self.conv3(out2))
        out3 = out3 + (self.downsample(x2) if self.downsample_block else x2)
        return out2, out3


class BottleneckNet(nn.Module):
    def __init__(self, repeats=(3, 4, 6, 3), width=64, num_classes=1000):
        super().__init__()
        _stem(self, width)
        self.layers = nn.ModuleList()
        cin = width
        for s, r in enumerate(repeats):
            planes = width * 4 * 2**s
            for b in range(r):
                self.layers.append(Bottleneck(
                    cin, planes, 2 if s and b == 0 else 1, downsample=b == 0,
                    first=s == 0 and b == 0))
                cin = planes
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.maxpool(self.bn1(self.conv1(x)))
        x1 = x2 = x
        for block in self.layers:
            x1, x2 = block(x1, x2)
        return self.fc(x2.mean(dim=(2, 3)))


def build(depth: int, width: int, num_classes: int, seed: int = 0) -> nn.Module:
    """A reference model with random weights and random, non-trivial BatchNorm statistics."""
    torch.manual_seed(seed)
    net = {18: lambda: BasicNet((4, 4, 4, 4), width, num_classes),
           34: lambda: BasicNet((6, 8, 12, 6), width, num_classes),
           50: lambda: BottleneckNet((3, 4, 6, 3), width, num_classes)}[depth]()
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.normal_(0.0, 0.3)
            module.running_mean.normal_(0.0, 0.3)
            module.running_var.uniform_(0.5, 2.0)
            assert module.eps == 1e-5 and n > 0
        elif isinstance(module, SignConv):
            nn.init.normal_(module.weights if module.flat else module.weight, 0.0, 0.05)
    return net.eval()


def sign_convs(net: nn.Module) -> dict[str, SignConv]:
    return {name: m for name, m in net.named_modules() if isinstance(m, SignConv)}
