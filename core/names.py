"""Category names as information: the name is an example in the text model's space.

A user who creates "Running shoes" has already said a lot. Names are embedded with the title
model, so they compare directly with titles. Images reach the same space through their ImageNet
head (ConSE, Norouzi et al., ICLR 2014): an image's "concept" vector is the average of the text
embeddings of the ImageNet class names, weighted by the head's probabilities softened to
temperature 2 (measured: see CONCEPT_TEMPERATURE). Both
"text" and "concept" features then take each category's name as k pseudo-examples (see
`protoshelf.core.fusion`, which chooses k on held-out examples), which gives predictions from zero
examples and a prior whose share k/(k+n) fades as examples are added.
"""
from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

import numpy as np

from protoshelf.core.progress import Progress, no_progress

CONCEPT_TEMPERATURE = 2.0
"""ImageNet logits are divided by this before the softmax, and every class is averaged. ConSE's
top 10 at temperature 1 put 0-shot photos (tuxpaint animals, 13 kinds) at 30.5% and Twemoji
subcategories at 5.0%; a softer average of all 1000 at 2.0 gives 44.9% and 8.2% (top 50: 41.5%,
7.3%; temperature 3 or 5: within a point). Name templates ("a photo of a …") and averaging each
class's synonyms separately moved either set by at most 1–2 points, in opposite directions."""
CONCEPT_PREFIX = f"concept-t{CONCEPT_TEMPERATURE:g}:"
"""Part of the stored model name, so vectors made at another temperature are never mixed in."""
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
    from protoshelf.core.backbones import import_timm

    info = import_timm().data.ImageNetInfo()  # timm ships the class descriptions: no network
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
            mixed = torch.softmax(logits / CONCEPT_TEMPERATURE, dim=1).numpy() @ class_vectors
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

    def use_device(self, device: str) -> None:
        """Take the title model on `device` from the next name on: the app embeds titles there, and
        the process's one model then serves both (names on the CPU loaded a second copy on a GPU
        machine). Names embedded already are kept."""
        if device != self.device:
            self.device, self.encoder, self.unavailable = device, None, None

    def model(self):
        if self.encoder is None and self.unavailable is None:
            from protoshelf.core.text import TextModelError, shared_title_encoder

            try:
                self.encoder = shared_title_encoder(self.device)
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
