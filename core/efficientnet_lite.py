"""EfficientNet-Lite0/1/2 in plain torch, laid out as timm's `efficientnet_liteN`.

The built-in backbones are built here rather than by timm because importing timm pulls in
torchvision and torch._dynamo: 1.2-2.5 s of one core before `protoshelf embed` could start, for
three small networks. Module names, and so state-dict keys, are timm's
(`conv_stem`, `bn1`, `blocks.S.B.conv_pw`, …, `conv_head`, `bn2`), so fine-tuned weights, partial
fine-tuning by block and timm's own checkpoints carry over; tests/test_efficientnet_lite.py holds
the outputs equal to timm's. Other timm models are still built by timm (core/backbones.py).
"""
from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

# Per stage: block kind, kernel, stride (timm's arch_def for efficientnet_lite; expansion 6 in "ir").
_STAGES = (("ds", 3, 1), ("ir", 3, 2), ("ir", 5, 2), ("ir", 3, 2), ("ir", 5, 1), ("ir", 5, 2), ("ir", 3, 1))

# Per variant: blocks and channels per stage. timm derives them from lite0's: lite1 and lite2 scale
# the depth by 1.1 and 1.2 (rounded up; the first and last stages keep theirs), lite2 the width by
# 1.1 (rounded to a multiple of 8); stem (32) and head (1280) stay fixed.
VARIANTS = {
    "efficientnet_lite0": ((1, 2, 2, 3, 3, 4, 1), (16, 24, 40, 80, 112, 192, 320)),
    "efficientnet_lite1": ((1, 3, 3, 4, 4, 5, 1), (16, 24, 40, 80, 112, 192, 320)),
    "efficientnet_lite2": ((1, 3, 3, 4, 4, 5, 1), (16, 24, 48, 88, 120, 208, 352)),
}
STEM_CHANNELS, FEATURES, EXPANSION = 32, 1280, 6


class BatchNormAct(nn.BatchNorm2d):
    """Batch norm, then ReLU6 where the block has an activation (timm's BatchNormAct2d, same keys)."""

    def __init__(self, channels: int, activation: bool = True):
        super().__init__(channels)
        self.act = nn.ReLU6(inplace=True) if activation else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(super().forward(x))


def _conv(in_channels: int, out_channels: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel, stride, padding=kernel // 2, groups=groups, bias=False)


class DepthwiseSeparable(nn.Module):
    """Depthwise convolution, then pointwise: the first stage."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int):
        super().__init__()
        self.conv_dw = _conv(in_channels, in_channels, kernel, stride, groups=in_channels)
        self.bn1 = BatchNormAct(in_channels)
        self.conv_pw = _conv(in_channels, out_channels)
        self.bn2 = BatchNormAct(out_channels, activation=False)
        self.has_skip = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        y = self.bn2(self.conv_pw(self.bn1(self.conv_dw(x))))
        return x + y if self.has_skip else y


class InvertedResidual(nn.Module):
    """Expand pointwise, depthwise, project pointwise (MobileNetV2's block, without squeeze-excite)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int):
        super().__init__()
        hidden = in_channels * EXPANSION
        self.conv_pw = _conv(in_channels, hidden)
        self.bn1 = BatchNormAct(hidden)
        self.conv_dw = _conv(hidden, hidden, kernel, stride, groups=hidden)
        self.bn2 = BatchNormAct(hidden)
        self.conv_pwl = _conv(hidden, out_channels)
        self.bn3 = BatchNormAct(out_channels, activation=False)
        self.has_skip = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        y = self.bn3(self.conv_pwl(self.bn2(self.conv_dw(self.bn1(self.conv_pw(x))))))
        return x + y if self.has_skip else y


class EfficientNetLite(nn.Module):
    """The trunk: picture batch in, pooled 1280-wide features out (timm's model after reset_classifier(0))."""

    def __init__(self, variant: str):
        super().__init__()
        repeats, channels = VARIANTS[variant]
        self.conv_stem = _conv(3, STEM_CHANNELS, 3, stride=2)
        self.bn1 = BatchNormAct(STEM_CHANNELS)
        stages, width = [], STEM_CHANNELS
        for (kind, kernel, stride), count, out_channels in zip(_STAGES, repeats, channels):
            block = DepthwiseSeparable if kind == "ds" else InvertedResidual
            stage = []
            for index in range(count):
                stage.append(block(width, out_channels, kernel, stride if index == 0 else 1))
                width = out_channels
            stages.append(nn.Sequential(*stage))
        self.blocks = nn.Sequential(*stages)
        self.conv_head = _conv(width, FEATURES)
        self.bn2 = BatchNormAct(FEATURES)
        self.global_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.num_features = FEATURES

    def forward(self, images: Tensor) -> Tensor:
        x = self.bn1(self.conv_stem(images))
        return self.global_pool(self.bn2(self.conv_head(self.blocks(x))))


_CONV_THEN_NORM = {
    EfficientNetLite: (("conv_stem", "bn1"), ("conv_head", "bn2")),
    DepthwiseSeparable: (("conv_dw", "bn1"), ("conv_pw", "bn2")),
    InvertedResidual: (("conv_pw", "bn1"), ("conv_dw", "bn2"), ("conv_pwl", "bn3")),
}


def folded_for_inference(trunk: EfficientNetLite) -> EfficientNetLite:
    """A copy of `trunk` for inference, each batch norm folded into the convolution before it.

    In eager PyTorch a batch norm is a pass of its own over the layer's output, and this network
    has 49 of them (Lite1 and Lite2: 64): on 2 CPU cores, folding took Lite0 from 124-132 to
    169-174 images/s (batches of 16), with features within 2e-5 of the unfolded ones, which reach
    about 5. The copy only runs: it has no batch norms to train or save, and the trunk it came from
    is left as it is, for fine-tuning and the concept head."""
    folded = copy.deepcopy(trunk).eval()
    with torch.no_grad():
        for module in list(folded.modules()):
            for conv_name, norm_name in _CONV_THEN_NORM.get(type(module), ()):
                norm = getattr(module, norm_name)
                setattr(module, conv_name, fuse_conv_bn_eval(getattr(module, conv_name), norm))
                setattr(module, norm_name, norm.act)
    return folded.requires_grad_(False)
