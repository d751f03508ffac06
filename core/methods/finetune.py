"""Fine-tuning the backbone's last blocks on the labelled images, held near the pretrained weights.

Frozen features only know ImageNet; a merchandiser's categories may hinge on details ImageNet never
cared about. Here the last block(s) of the trunk and a new cosine head (started at the class means
of the pretrained features) train on the labelled images under torchvision v2 augmentation. An
L2-SP penalty λ‖θ − θ₀‖² over the unfrozen trunk weights keeps a few dozen images from wrecking
features the whole catalog depends on. BatchNorm statistics stay frozen: batches of a few images
would corrupt them. With three or more shots per class a fifth of them (at least one) is held out
and the epoch with the lowest held-out loss is kept, the untrained start included, so fine-tuning
cannot end worse on held-out images than it began. Mixed precision runs on CUDA.

Afterwards the catalog is embedded again under a new model name, beside the pretrained vectors, so
a user can switch back by choosing the other backbone. Only the tensors that changed are saved,
with safetensors, in the user data folder, named by their content hash.
"""
from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import platformdirs
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from torchvision.transforms import v2

from protoshelf.core.backbones import DEFAULT_BACKBONE, Backbone, BackboneError, resolve_device, shared_backbone
from protoshelf.core.embedding import FeatureExtractor, embed_catalog
from protoshelf.core.model_input import open_model_image, to_model_input
from protoshelf.core.images import ImageError
from protoshelf.core.methods.base import BackboneAdapter, encode_labels
from protoshelf.core.methods.heads import balanced_class_weights
from protoshelf.core.progress import Progress, no_progress
from protoshelf.core.store import Store

FORMAT = "protoshelf-finetune-1"
SEPARATOR = "+ft"
HEAD_SCALE = 10.0


@dataclass(frozen=True)
class FineTuneConfig:
    epochs: int = 8
    l2sp: float = 0.01
    blocks: int = 1
    lr: float = 0.001
    head_lr: float = 0.01
    batch_size: int = 32
    augment: bool = True
    holdout_min_shots: int = 3
    max_per_class: int = 50
    seed: int = 0


@dataclass
class FineTuneResult:
    backbone: Backbone
    classes: np.ndarray
    losses: list[float] = field(default_factory=list)
    held_out_losses: list[float] = field(default_factory=list)
    best_epoch: int = 0

    @property
    def kept_pretrained(self) -> bool:
        """Held-out examples said no epoch beat the pretrained weights, so those were restored."""
        return bool(self.held_out_losses) and self.best_epoch == 0


def default_weights_dir() -> Path:
    return Path(platformdirs.user_data_dir("protoshelf")) / "finetuned"


def is_finetuned(name: str) -> bool:
    return SEPARATOR in name


def trainable_modules(backbone: Backbone, blocks: int) -> dict[str, nn.Module]:
    """The trunk's last `blocks` stages and its head convolution, by state-dict prefix."""
    trunk = backbone.trunk
    if not hasattr(trunk, "blocks") or not hasattr(trunk, "conv_head"):
        raise BackboneError(f"fine-tuning supports EfficientNet-style trunks, not {backbone.name}")
    count = len(trunk.blocks)
    blocks = max(1, min(blocks, count))
    modules = {f"blocks.{i}": trunk.blocks[i] for i in range(count - blocks, count)}
    modules["conv_head"] = trunk.conv_head
    modules["bn2"] = trunk.bn2
    return modules


def augmentation(size: int) -> v2.Compose:
    return v2.Compose([
        v2.RandomResizedCrop(size, scale=(0.5, 1.0), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.05),
    ])


def split_held_out(y: np.ndarray, min_shots: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rows to train on and rows to hold out (a fifth per class, at least one), when every class has enough."""
    counts = np.bincount(y)
    if counts.min() < min_shots:
        return np.arange(len(y)), np.empty(0, np.int64)
    held = []
    for c in range(len(counts)):
        rows = rng.permutation(np.flatnonzero(y == c))
        held.extend(rows[: max(1, len(rows) // 5)])
    held = np.sort(np.array(held))
    return np.setdiff1d(np.arange(len(y)), held), held


def l2sp_penalty(params: Sequence[torch.Tensor], anchors: Sequence[torch.Tensor]) -> torch.Tensor:
    return sum((p - a).pow(2).sum() for p, a in zip(params, anchors))


class _Normalise(nn.Module):
    def __init__(self, backbone: Backbone):
        super().__init__()
        prep = backbone.preprocessing
        self.register_buffer("mean", torch.tensor(prep.mean).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(prep.std).view(1, 3, 1, 1) * 255)

    def forward(self, images_uint8: torch.Tensor) -> torch.Tensor:
        return ((images_uint8.float() - self.mean) / self.std).contiguous(memory_format=torch.channels_last)


def finetune(
    backbone: Backbone,
    images: Sequence[Image.Image],
    labels: Sequence[Hashable],
    config: FineTuneConfig = FineTuneConfig(),
    device: str = "auto",
    progress: Progress = no_progress,
) -> FineTuneResult:
    """A fine-tuned copy of `backbone` (the original is untouched); `progress` may raise Cancelled."""
    classes, y = encode_labels(labels)
    if len(classes) < 2:
        raise ValueError("fine-tuning needs labelled examples of at least two categories")
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    target = resolve_device(device)
    cuda = target.type == "cuda"
    model = copy.deepcopy(backbone).to(target).to(memory_format=torch.channels_last).eval()
    model.requires_grad_(False)
    modules = trainable_modules(model, config.blocks)
    params = [p for m in modules.values() for p in m.parameters()]
    for p in params:
        p.requires_grad_(True)
    anchors = [p.detach().clone() for p in params]
    prep = model.preprocessing
    normalise = _Normalise(model).to(target)
    pixels = torch.stack([to_model_input(im, prep) for im in images])  # what the embedding sees; crops are taken from it
    train_rows, held_rows = split_held_out(y, config.holdout_min_shots, rng)
    y_t = torch.from_numpy(y).to(target)

    def embed(batch_uint8: torch.Tensor) -> torch.Tensor:
        with torch.autocast(target.type, dtype=torch.float16, enabled=cuda):
            return model.features(normalise(batch_uint8.to(target)))

    with torch.no_grad():
        start = torch.cat([embed(pixels[i : i + 64]).float() for i in range(0, len(pixels), 64)])
    class_weights = balanced_class_weights(torch.from_numpy(y), len(classes)).to(target)
    head = nn.Parameter(torch.zeros(len(classes), start.shape[1], device=target).index_add_(
        0, y_t[train_rows], start[train_rows]))

    def logits(features: torch.Tensor) -> torch.Tensor:
        return HEAD_SCALE * F.normalize(features.float(), dim=1) @ F.normalize(head, dim=1).T

    def held_out_loss() -> float:
        with torch.no_grad():
            features = torch.cat([embed(pixels[held_rows[i : i + 64]]) for i in range(0, len(held_rows), 64)])
            return float(F.cross_entropy(logits(features), y_t[held_rows], weight=class_weights))

    optimiser = torch.optim.SGD(
        [{"params": params, "lr": config.lr}, {"params": [head], "lr": config.head_lr}], momentum=0.9, nesterov=True
    )
    scaler = torch.amp.GradScaler(target.type, enabled=cuda)
    augment = augmentation(prep.size) if config.augment else v2.Identity()
    result = FineTuneResult(model, classes)
    best_state = None
    if len(held_rows):
        result.held_out_losses.append(held_out_loss())
        best_state = _snapshot(modules, head)
    steps_per_epoch = -(-len(train_rows) // config.batch_size)
    total, step = config.epochs * steps_per_epoch, 0
    progress(0, total)
    for epoch in range(1, config.epochs + 1):
        order = rng.permutation(train_rows)
        for start_row in range(0, len(order), config.batch_size):
            rows = order[start_row : start_row + config.batch_size]
            batch = torch.stack([augment(pixels[r]) for r in rows])
            with torch.autocast(target.type, dtype=torch.float16, enabled=cuda):
                loss = F.cross_entropy(logits(embed(batch)), y_t[rows], weight=class_weights)
            loss = loss + config.l2sp * l2sp_penalty(params, anchors)
            optimiser.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
            result.losses.append(loss.item())
            step += 1
            progress(step, total)
        if len(held_rows):
            result.held_out_losses.append(held_out_loss())
            if result.held_out_losses[-1] < min(result.held_out_losses[:-1]):
                best_state, result.best_epoch = _snapshot(modules, head), epoch
    if best_state is not None:
        _restore(modules, head, best_state)
    else:
        result.best_epoch = config.epochs
    model.requires_grad_(False)
    return result


def _snapshot(modules: dict[str, nn.Module], head: torch.Tensor) -> dict:
    return {"modules": {k: copy.deepcopy(m.state_dict()) for k, m in modules.items()}, "head": head.detach().clone()}


def _restore(modules: dict[str, nn.Module], head: torch.Tensor, state: dict) -> None:
    for k, m in modules.items():
        m.load_state_dict(state["modules"][k])
    with torch.no_grad():
        head.copy_(state["head"])


def weights_file(name: str, directory: Path | None = None) -> Path:
    return (directory or default_weights_dir()) / (name.replace(":", "_").replace("/", "_") + ".safetensors")


def save_finetuned(
    backbone: Backbone, base: str, config: FineTuneConfig, directory: Path | None = None
) -> str:
    """Save the changed tensors; returns the new backbone name, `<base>+ft<content hash>`."""
    prefixes = tuple(f"{prefix}." for prefix in trainable_modules(backbone, config.blocks))
    tensors = {
        k: v.detach().cpu().contiguous() for k, v in backbone.trunk.state_dict().items() if k.startswith(prefixes)
    }
    name = f"{base}{SEPARATOR}{content_hash(tensors)}"
    path = weights_file(name, directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"format": FORMAT, "base": base, "config": json.dumps(asdict(config))}
    save_file(tensors, str(path), metadata=metadata)
    return name


def content_hash(tensors: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for key in sorted(tensors):
        digest.update(key.encode())
        digest.update(tensors[key].numpy().tobytes())
    return digest.hexdigest()[:10]


def load_finetuned(name: str, directory: Path | None = None) -> Backbone:
    """Rebuild a fine-tuned backbone: its base, with the saved tensors laid over it. The tensors
    must still hash to the name they were saved under, so an edited or damaged file is refused."""
    path = weights_file(name, directory)
    if not path.is_file():
        raise BackboneError(f"no fine-tuned weights for {name!r} at {path}")
    try:
        with safe_open(str(path), "pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise BackboneError(f"{path} is damaged or not a safetensors file ({exc}); fine-tune again") from exc
    if metadata.get("format") != FORMAT:
        raise BackboneError(f"{path} is not a ProtoShelf fine-tuned backbone")
    if content_hash(tensors) != name.rpartition(SEPARATOR)[2]:
        raise BackboneError(f"{path} was changed after it was saved (its tensors no longer match its name)")
    backbone = copy.deepcopy(shared_backbone(metadata["base"]))  # its own: the weights below replace the trunk's
    try:
        missing, unexpected = backbone.trunk.load_state_dict(tensors, strict=False)
    except RuntimeError as exc:  # shapes that do not fit the base, e.g. after a package update
        raise BackboneError(f"{path} does not fit {metadata['base']}: {str(exc)[:200]}") from exc
    if unexpected:
        raise BackboneError(f"{path} does not fit {metadata['base']}: {', '.join(unexpected[:3])}")
    backbone.name = name
    return backbone.eval()


def embed_images(extractor: FeatureExtractor, images: Sequence[Image.Image], batch_size: int = 64) -> np.ndarray:
    parts = [extractor.embed_images(list(images[i : i + batch_size])) for i in range(0, len(images), batch_size)]
    return np.concatenate(parts) if parts else np.empty((0, extractor.backbone.feature_dim), np.float32)


def phase(progress: Progress, index: int, count: int, resolution: int = 1000) -> Progress:
    """Report one of `count` consecutive phases as a share of a single bar."""

    def report(done: int, total: int) -> None:
        share = done * resolution // total if total else resolution
        progress(index * resolution + share, count * resolution)

    return report


def finetune_catalog(
    store: Store,
    labels: dict[int, int] | None = None,
    base: str = DEFAULT_BACKBONE,
    config: FineTuneConfig = FineTuneConfig(),
    device: str = "auto",
    progress: Progress = no_progress,
    directory: Path | None = None,
) -> str:
    """Fine-tune on the catalog's labelled images, re-embed the catalog, return the new backbone name;
    `base` itself when no epoch beat the pretrained weights on held-out examples (a new name for
    bit-identical vectors would only re-embed the catalog for nothing).

    The app calls this in its worker; cancelling (Cancelled from `progress`) during training saves
    nothing, and during re-embedding keeps the finished batches: `embed_finetuned` resumes.
    """
    labels = store.labels() if labels is None else labels
    rng = np.random.default_rng(config.seed)
    by_category: dict[int, list[int]] = {}
    for item_id, category in labels.items():
        by_category.setdefault(category, []).append(item_id)
    chosen = [
        (int(i), c) for c, ids in by_category.items()
        for i in (rng.choice(ids, config.max_per_class, replace=False) if len(ids) > config.max_per_class else ids)
    ]
    items = store.items([i for i, _ in chosen])
    backbone = shared_backbone(base)  # finetune trains a copy of it
    images, y = [], []
    for item_id, category in chosen:
        try:
            images.append(open_model_image(Path(items[item_id].path), backbone.preprocessing))
            y.append(category)
        except (ImageError, OSError, KeyError):
            continue
    result = finetune(backbone, images, y, config, device, phase(progress, 0, 2))
    if result.kept_pretrained:
        return base
    name = save_finetuned(result.backbone, base, config, directory)
    extractor = FeatureExtractor(result.backbone, resolve_device(device))
    embed_catalog(store, name, extractor=extractor, progress=phase(progress, 1, 2))
    return name


def finetuned_backbones(directory: Path | None = None) -> list[str]:
    """Fine-tuned backbones saved on this machine, newest first: they stay choosable after a restart."""
    folder = directory or default_weights_dir()
    files = sorted(folder.glob(f"*{SEPARATOR}*.safetensors"), key=lambda p: p.stat().st_mtime, reverse=True)
    return [p.stem for p in files]


def embed_finetuned(
    store: Store, name: str, device: str = "auto", progress: Progress = no_progress, directory: Path | None = None
):
    """Embed the items that have no vector for a fine-tuned backbone yet (new imports, a cancelled run)."""
    extractor = FeatureExtractor(load_finetuned(name, directory), resolve_device(device))
    return embed_catalog(store, name, extractor=extractor, progress=progress)


class FineTuning(BackboneAdapter):
    """The registered backbone adapter: fine-tuning with augmentation and L2-SP."""

    name = "finetune"
    description = ("Retrains the image network's last block on your examples, then re-embeds the catalog "
                   "(minutes; a GPU helps). Afterwards, pick any method.")

    def __init__(self, config: FineTuneConfig = FineTuneConfig()):
        self.config = config

    def adapt(self, base: Backbone, images: Sequence[Image.Image], labels: Sequence[Hashable], device: str) -> Backbone:
        return finetune(base, images, labels, self.config, device).backbone

    def adapt_catalog(self, store: Store, base: str, device: str, progress: Progress = no_progress) -> str:
        return finetune_catalog(store, base=base, config=self.config, device=device, progress=progress)
