"""Fit a method on the catalog's labelled examples and score every item.

`CatalogClassifier` keeps the catalog's embeddings in memory, so after a label change only the
fit and one matrix product run again: that is what makes predictions in the app feel live.
Category names take part as examples (core/names.py), so a category predicts from the moment
it exists, and scores are calibrated (core/calibration.py), so a confidence means what it says.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from protoshelf.core.backbones import DEFAULT_BACKBONE
from protoshelf.core.calibration import Calibrated, default_temperature
from protoshelf.core.fusion import CV_UNLABELLED, USES, LateFusion, ModalFeatures
from protoshelf.core.methods import DEFAULT_METHOD, UNASSIGNED, decide, is_meta_learner, resolve_method, top_k
from protoshelf.core.names import NAME_SPACES, NameEncoder, concept_model
from protoshelf.core.progress import Progress, no_progress
from protoshelf.core.quality import QualityReport, quality_report
from protoshelf.core.store import Store, Vectors
from protoshelf.core.text import TEXT_EMBEDDING

from protoshelf.core.constants import DEFAULT_THRESHOLD


@dataclass(frozen=True)
class CatalogPredictions:
    """Row i describes item `item_ids[i]`; `category_ids` holds UNASSIGNED (-1) where unsure."""

    item_ids: np.ndarray
    category_ids: np.ndarray
    confidence: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    method: str
    modality: str = "image"
    weights: dict[str, float] | None = None
    model: Calibrated | None = field(default=None, compare=False, repr=False)
    """The fitted model, its held-out scores and temperature."""
    quality: QualityReport | None = field(default=None, compare=False, repr=False)
    """Estimated from the held-out labelled examples, on the worker (core/quality.py)."""
    features: ModalFeatures | None = field(default=None, compare=False, repr=False)
    """The catalog's vectors (shared, not copied) of the items `feature_ids`, for "why this prediction"."""
    feature_ids: np.ndarray | None = field(default=None, compare=False, repr=False)
    names_used: bool = False

    def iter_rankings(self, k: int, block: int = 20_000):
        """Each item's k best (category id, score), best first, computed a block of rows at a time."""
        for start in range(0, len(self.scores), block):
            index, values = top_k(self.scores[start : start + block], k)
            classes = self.classes[index].tolist()
            yield from (list(zip(row_c, row_v)) for row_c, row_v in zip(classes, values.tolist()))

    def with_threshold(self, threshold: float) -> "CatalogPredictions":
        best, confidence = decide(self.scores, threshold)
        ids = np.where(best == UNASSIGNED, UNASSIGNED, self.classes[np.maximum(best, 0)].astype(np.int64))
        return replace(self, category_ids=ids, confidence=confidence)


def available_modalities(store: Store, backbone: str = DEFAULT_BACKBONE) -> list[str]:
    """Modalities the catalog has vectors for, the default first: fused when titles are embedded."""
    has = {
        modality: store.has_embeddings(model) for modality, model in (("image", backbone), ("text", TEXT_EMBEDDING))
    }
    if has["image"] and has["text"]:
        return ["fused", "image", "text"]
    return [m for m in ("image", "text") if has[m]]


def typical_shots(categories) -> int:
    """The median number of examples per category: what "auto" picks a method for."""
    return int(np.median(np.unique(np.asarray(categories), return_counts=True)[1]))


class CatalogClassifier:
    """`names`: embeds category names (a NameEncoder; None leaves names out)."""

    def __init__(self, store: Store, backbone: str = DEFAULT_BACKBONE, names: NameEncoder | None = None):
        self.store = store
        self.backbone = backbone
        self.names = names
        self.reload()

    def reload(self) -> None:
        self.vectors: Vectors = self.store.load_embeddings(self.backbone)
        self.text_vectors: Vectors = self.store.load_embeddings(TEXT_EMBEDDING)
        self.concept_vectors: Vectors = self.store.load_embeddings(concept_model(self.backbone))
        self.item_ids = np.union1d(self.vectors.item_ids, self.text_vectors.item_ids)
        self.features = ModalFeatures.align(
            self.item_ids, {"image": self.vectors, "concept": self.concept_vectors, "text": self.text_vectors}
        )

    def default_modality(self) -> str:
        return "fused" if len(self.text_vectors) and len(self.vectors) else "text" if len(self.text_vectors) else "image"

    def run(
        self,
        labels: dict[int, int],
        method: str = DEFAULT_METHOD,
        threshold: float = DEFAULT_THRESHOLD,
        progress: Progress = no_progress,
        modality: str | None = None,
        use_names: bool = True,
        **params,
    ) -> CatalogPredictions | None:
        """Predictions for every item embedded in `modality` ("image", "text" or "fused"; default:
        fused when titles are embedded), or None when there is nothing to learn from: no labelled
        item embedded in it, and no category name that it can compare with.

        Fused predictions fall back to one modality per item where the other is missing.
        """
        modality = modality or self.default_modality()
        if modality not in USES:
            raise ValueError(f"Unknown modality {modality!r}; choose one of: {', '.join(USES)}")
        features = self.features.only(USES[modality])
        present = features.present()
        labelled_ids = np.fromiter(labels, np.int64, len(labels))
        positions = np.searchsorted(self.item_ids, labelled_ids)
        known = positions < len(self.item_ids)
        known[known] = (self.item_ids[positions[known]] == labelled_ids[known]) & present[positions[known]]
        names = self.category_names(features) if use_names else {}
        if not known.any() and not names:
            return None
        positions = positions[known]
        categories = [labels[int(i)] for i in labelled_ids[known]]
        method = resolve_method(method, typical_shots(categories) if categories else 0)
        sample = features.take(np.sort(np.random.default_rng(0).choice(features.count, CV_UNLABELLED, replace=False))) \
            if features.count > CV_UNLABELLED else features
        model = Calibrated(
            lambda: LateFusion(method, names=names, **params),
            LateFusion.fixed,
            can_hold_out_singletons=bool(names),
            default=default_temperature(method, features.user_modality(), bool(categories), bool(names)),
        ).fit(features.take(positions), categories, unlabelled=features, progress=progress, fold_unlabelled=sample)
        scored = np.flatnonzero(present)
        queries = features if len(scored) == features.count else features.take(scored)
        scores = model.predict(queries)
        classes = np.asarray(model.classes_, dtype=np.int64)
        empty = np.empty(0)
        quality = quality_report(model, labelled_ids[known], classes)
        return CatalogPredictions(
            self.item_ids[scored], empty, empty, scores, classes, method, modality, model.weights_, model, quality,
            features, self.item_ids, bool(names),
        ).with_threshold(threshold)

    def category_names(self, features: ModalFeatures) -> dict[int, np.ndarray]:
        """Name vectors of every category, when names can be compared with these features."""
        if self.names is None or not any(m in NAME_SPACES for m in features.modalities):
            return {}
        return self.names({c.id: c.name for c in self.store.categories()})


def classify_catalog(
    store: Store,
    backbone: str = DEFAULT_BACKBONE,
    method: str = DEFAULT_METHOD,
    threshold: float = DEFAULT_THRESHOLD,
    top: int = 5,
    progress: Progress = no_progress,
    modality: str | None = None,
    names: NameEncoder | None = None,
) -> CatalogPredictions | None:
    """Fit, score and store the predictions of the whole catalog (the CLI's `classify`); with
    `names`, category names take part and images get their concept vectors first. A meta-learner
    meta-trains once, on the labelled categories, before the fits of calibration and fusion (as in
    the app), instead of once inside each of them."""
    if names is not None:
        names.embed_concepts(store, backbone, progress)
    classifier = CatalogClassifier(store, backbone, names)
    labels = store.labels()
    params = {}
    if is_meta_learner(method) and labels:
        from protoshelf.core.meta_training import meta_train_catalog, states_for_fit

        trained = meta_train_catalog(store, backbone, method, labels, progress)
        params["meta_states"] = states_for_fit(method, classifier.features, trained)
    predictions = classifier.run(labels, method, threshold, progress, modality=modality, **params)
    if predictions is not None:
        save_predictions(store, predictions, backbone, threshold, top)
    return predictions


def save_predictions(
    store: Store, predictions: CatalogPredictions, backbone: str, threshold: float, top: int = 5,
    progress: Progress = no_progress,
) -> int:
    category_ids = [None if c == UNASSIGNED else int(c) for c in predictions.category_ids]
    return store.save_predictions(
        predictions.method, backbone,
        {"threshold": threshold, "modality": predictions.modality, "weights": predictions.weights},
        predictions.item_ids, category_ids, predictions.confidence, predictions.iter_rankings(top), progress,
    )
