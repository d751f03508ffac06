"""Category names as information: the name is an example in the text model's space.

A user who creates "Running shoes" has already said a lot. Names are embedded with the title
model, so they compare directly with titles. Images reach the same space through their ImageNet
head (ConSE, Norouzi et al., ICLR 2014): an image's "concept" vector is the average of the text
embeddings of its most probable ImageNet class names, weighted by those probabilities. Both
"text" and "concept" features then take each category's name as one more example (see
`protoshelf.core.fusion`), which gives predictions from zero examples and a prior whose share fades as
examples are added.
"""
from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

import numpy as np

from protoshelf.core.progress import Progress, no_progress

CONCEPT_PREFIX = "concept:"
CONCEPT_TOP = 10
"""ImageNet classes averaged per image, as in ConSE: the long tail of tiny probabilities only blurs it."""
NAME_SPACES = ("text", "concept")
"""Feature spaces where a category's name vector is an example like any other."""


def concept_model(backbone: str) -> str:
    """The embeddings-table model name of `backbone`'s concept vectors."""
    return f"{CONCEPT_PREFIX}{backbone}"


def readable(name: str) -> str:
    """A folder or category name as words: `running-shoes` and `running_shoes` → `running shoes`."""
    return " ".join(name.replace("-", " ").replace("_", " ").split())


def name_vectors(names: Mapping, encoder) -> dict:
    """Unit text vectors of category names, by the same keys."""
    return NameEncoder(encoder=encoder)(names)


@lru_cache(maxsize=2)
def _imagenet_names() -> tuple[str, ...]:
    from timm.data import ImageNetInfo  # ships the class descriptions: no network

    info = ImageNetInfo()
    return tuple(info.index_to_description(i) for i in range(info.num_classes()))


_class_vectors: dict[int, np.ndarray] = {}


def imagenet_name_vectors(encoder) -> np.ndarray:
    """Text vectors of the 1000 ImageNet class descriptions ("tennis ball", "tench, Tinca tinca")."""
    key = id(encoder)
    if key not in _class_vectors:
        _class_vectors.clear()
        _class_vectors[key] = encoder(list(_imagenet_names()))
    return _class_vectors[key]


def concept_vectors(
    features: np.ndarray, classifier, class_vectors: np.ndarray, batch: int = 4096,
    progress: Progress = no_progress,
) -> np.ndarray:
    """ConSE vectors (unit length) of backbone features through the backbone's ImageNet head."""
    import torch

    out = np.empty((len(features), class_vectors.shape[1]), np.float32)
    with torch.inference_mode():
        for start in range(0, len(features), batch):
            logits = classifier(torch.as_tensor(np.asarray(features[start : start + batch], np.float32)))
            top = torch.topk(torch.softmax(logits, dim=1), CONCEPT_TOP, dim=1)
            weights = (top.values / top.values.sum(dim=1, keepdim=True)).numpy()
            mixed = np.einsum("nk,nkd->nd", weights, class_vectors[top.indices.numpy()])
            out[start : start + len(mixed)] = mixed / np.maximum(np.linalg.norm(mixed, axis=1, keepdims=True), 1e-12)
            progress(start + len(mixed), len(features))
    return out


def embed_concepts(store, backbone: str, load_encoder, progress: Progress = no_progress) -> int:
    """Store the concept vector of every item with a `backbone` vector and none yet; returns how many.

    `load_encoder()` gives the title model (None: unavailable); it is called only when there is work. Fine-tuned backbones have no ImageNet head that matches their features,
    so they get none.
    """
    from protoshelf.core.backbones import BackboneError, shared_backbone

    vectors = store.load_embeddings(backbone)
    done = store.load_embeddings(concept_model(backbone)).item_ids
    missing = np.flatnonzero(~np.isin(vectors.item_ids, done))
    if not len(missing):
        return 0
    try:
        classifier = shared_backbone(backbone).classifier
    except BackboneError:
        return 0
    if vectors.matrix.shape[1] != classifier.in_features:  # not this backbone's features after all
        return 0
    encoder = load_encoder()
    if encoder is None:
        return 0
    concepts = concept_vectors(vectors.matrix[missing], classifier, imagenet_name_vectors(encoder), progress=progress)
    store.save_embeddings(concept_model(backbone), vectors.item_ids[missing], concepts)
    return len(missing)


class NameEncoder:
    """Category names → text vectors, the title model loaded on first use and each name embedded
    once (a rename embeds only the new name). Without the title model, names stay out: `{}`."""

    def __init__(self, device: str = "cpu", encoder=None):
        self.device = device
        self.encoder = encoder
        self.unavailable: str | None = None
        self._vectors: dict[str, np.ndarray] = {}

    def model(self):
        if self.encoder is None and self.unavailable is None:
            from protoshelf.core.text import TextModelError, TitleEncoder

            try:
                self.encoder = TitleEncoder(self.device)
            except (TextModelError, ImportError, OSError) as exc:
                self.unavailable = str(exc)
        return self.encoder

    def __call__(self, names: Mapping) -> dict:
        encoder = self.model()
        if encoder is None:
            return {}
        new = sorted({readable(str(n)) for n in names.values()} - set(self._vectors))
        if new:
            self._vectors.update(zip(new, encoder(new)))
        return {key: self._vectors[readable(str(n))] for key, n in names.items()}

    def embed_concepts(self, store, backbone: str, progress: Progress = no_progress) -> int:
        return embed_concepts(store, backbone, self.model, progress)
