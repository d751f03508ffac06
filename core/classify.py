"""Fit a method on the catalog's labelled examples and score every item.

`CatalogClassifier` keeps the catalog's embeddings in memory, so after a label change only the
fit and one matrix product run again: that is what makes predictions in the app feel live.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.backbones import DEFAULT_BACKBONE
from core.methods import DEFAULT_METHOD, UNASSIGNED, decide, make_method, top_k
from core.progress import Progress, no_progress
from core.store import Store, Vectors

DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class CatalogPredictions:
    """Row i describes item `item_ids[i]`; `category_ids` holds UNASSIGNED (-1) where unsure."""

    item_ids: np.ndarray
    category_ids: np.ndarray
    confidence: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    method: str

    def rankings(self, k: int) -> list[list[tuple[int, float]]]:
        index, values = top_k(self.scores, k)
        return [
            [(int(self.classes[j]), float(v)) for j, v in zip(row_i, row_v)]
            for row_i, row_v in zip(index, values)
        ]

    def with_threshold(self, threshold: float) -> "CatalogPredictions":
        best, confidence = decide(self.scores, threshold)
        ids = np.where(best == UNASSIGNED, UNASSIGNED, self.classes[np.maximum(best, 0)].astype(np.int64))
        return CatalogPredictions(self.item_ids, ids, confidence, self.scores, self.classes, self.method)


class CatalogClassifier:
    def __init__(self, store: Store, backbone: str = DEFAULT_BACKBONE):
        self.store = store
        self.backbone = backbone
        self.vectors: Vectors = store.load_embeddings(backbone)

    def reload(self) -> None:
        self.vectors = self.store.load_embeddings(self.backbone)

    def run(
        self,
        labels: dict[int, int],
        method: str = DEFAULT_METHOD,
        threshold: float = DEFAULT_THRESHOLD,
        progress: Progress = no_progress,
        **params,
    ) -> CatalogPredictions | None:
        """Predictions for every embedded item, or None when nothing labelled is embedded yet."""
        ids = self.vectors.item_ids
        row_of = {int(i): r for r, i in enumerate(ids)}
        labelled = [(row_of[i], c) for i, c in labels.items() if i in row_of]
        if not labelled:
            return None
        rows, categories = zip(*labelled)
        model = make_method(method, **params)
        model.fit(self.vectors.matrix[list(rows)], list(categories), unlabelled=self.vectors.matrix, progress=progress)
        scores = model.predict(self.vectors.matrix)
        classes = np.asarray(model.classes_, dtype=np.int64)
        empty = np.empty(0)
        return CatalogPredictions(ids, empty, empty, scores, classes, method).with_threshold(threshold)


def classify_catalog(
    store: Store,
    backbone: str = DEFAULT_BACKBONE,
    method: str = DEFAULT_METHOD,
    threshold: float = DEFAULT_THRESHOLD,
    top: int = 5,
    progress: Progress = no_progress,
) -> CatalogPredictions | None:
    """Fit, score and store the predictions of the whole catalog (the CLI's `classify`)."""
    predictions = CatalogClassifier(store, backbone).run(store.labels(), method, threshold, progress)
    if predictions is not None:
        save_predictions(store, predictions, backbone, threshold, top)
    return predictions


def save_predictions(
    store: Store, predictions: CatalogPredictions, backbone: str, threshold: float, top: int = 5
) -> int:
    category_ids = [None if c == UNASSIGNED else int(c) for c in predictions.category_ids]
    return store.save_predictions(
        predictions.method, backbone, {"threshold": threshold},
        predictions.item_ids, category_ids, predictions.confidence, predictions.rankings(top),
    )
