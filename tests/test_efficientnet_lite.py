"""The built-in backbones, built without timm, are timm's efficientnet_liteN to the last bit."""
from __future__ import annotations

import subprocess
import sys

import pytest
import timm
import torch
from torch import nn

from protoshelf.core.backbones import PACKAGED
from protoshelf.core.efficientnet_lite import VARIANTS, EfficientNetLite, folded_for_inference


def randomised(model: nn.Module) -> nn.Module:
    """Weights and batch-norm statistics far from their initial values but at a working scale, so
    activations neither vanish nor saturate ReLU6 (weights all in [0.3, 0.7] made every output 6.0,
    and a model without skips or with strides swapped matched it)."""
    generator = torch.Generator().manual_seed(0)

    def draw(shape, low=None, high=None):
        if low is None:
            return torch.randn(shape, generator=generator)
        return torch.rand(shape, generator=generator) * (high - low) + low

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.copy_(draw(module.weight.shape) / fan_in ** 0.5)
            elif isinstance(module, nn.BatchNorm2d):
                channels = module.num_features
                module.weight.copy_(draw(channels, 0.75, 1.25))
                module.bias.copy_(draw(channels) * 0.1)
                module.running_mean.copy_(draw(channels) * 0.1)
                module.running_var.copy_(draw(channels, 0.5, 1.5))
    return model


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("training", [False, True])
def test_outputs_and_weight_names_are_timms(variant, training):
    reference = timm.create_model(variant, pretrained=False)
    reference.reset_classifier(0)
    randomised(reference).train(training)
    ours = EfficientNetLite(variant).train(training)
    assert list(ours.state_dict()) == list(reference.state_dict())
    ours.load_state_dict(reference.state_dict())
    size = PACKAGED[variant].size  # 240 and 260 give odd sizes on the way down
    images = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        features = ours(images)
        assert torch.equal(features, reference(images))
    assert features.shape == (2, 1280)
    assert 0 < features.mean() and features.max() < 6  # neither dead nor saturated
    assert not torch.equal(features[0], features[1])
    for mine, theirs in zip(ours.state_dict().values(), reference.state_dict().values()):
        assert torch.equal(mine, theirs)  # training updated the running statistics alike


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_folding_the_batch_norms_keeps_the_features_and_the_trunk(variant):
    trunk = randomised(EfficientNetLite(variant)).eval()
    before = {key: value.clone() for key, value in trunk.state_dict().items()}
    folded = folded_for_inference(trunk)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, nn.ReLU6) for m in folded.modules()) == sum(
        isinstance(m, nn.ReLU6) for m in trunk.modules())
    size = PACKAGED[variant].size
    images = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected, got = trunk(images), folded(images)
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert not torch.equal(got[0], got[1])
    assert trunk.state_dict().keys() == before.keys()  # the original keeps its norms, for fine-tuning
    assert all(torch.equal(value, before[key]) for key, value in trunk.state_dict().items())


def test_building_the_default_backbone_imports_neither_timm_nor_torchvision():
    """Importing them (and torch._dynamo with torchvision) took 1.2-2.5 s of every `protoshelf embed`."""
    code = ("import sys; from protoshelf.core.backbones import load_backbone; load_backbone(); "
            "print(*[m for m in ('timm', 'torchvision', 'torch._dynamo') if m in sys.modules])")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert shown.stdout.split() == []
