"""How good the predictions are, estimated from the labelled examples themselves.

Calibration already held every labelled example out once (core/calibration.py); those held-out
scores are an honest test set the user never had to build. From them: per category, estimated
precision and recall; the pairs of categories most often confused; and labelled examples whose
own category scores low when they are held out (likely mislabels). The expected share of correct
items among those assigned is the mean calibrated confidence of the assigned items.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

LIKELY_WRONG_SCORE = 0.2
"""Held out, an example whose own category gets less than this is worth a second look."""


@dataclass(frozen=True)
class CategoryQuality:
    category_id: int
    held_out: int
    precision: float | None
    """Of held-out examples predicted as this category, the share that are; None if none were."""
    recall: float | None


@dataclass(frozen=True)
class LikelyWrong:
    """A labelled example that, held out, scored `own_score` for its own category and
    `predicted_score` for the category it looks like (`predicted`)."""

    item_id: int
    labelled: int
    own_score: float
    predicted: int
    predicted_score: float


@dataclass(frozen=True)
class QualityReport:
    categories: list[CategoryQuality]
    confused: list[tuple[int, int, int]]
    """(labelled category, predicted category, how many held-out examples), most first."""
    likely_wrong: list[LikelyWrong]
    held_out: int

    @property
    def estimated(self) -> bool:
        return self.held_out > 0


def quality_report(model, support_ids: np.ndarray, classes: np.ndarray, pairs: int = 5) -> QualityReport:
    """Held-out quality of a fitted `Calibrated` model; `support_ids[i]` is its i-th labelled item."""
    scores, truth, positions = model.held_out_scores()
    if not len(truth):
        return QualityReport([], [], [], 0)
    classes = np.asarray(classes, np.int64)
    predicted = scores.argmax(axis=1)
    categories = []
    for j, category in enumerate(classes):
        mine, called = truth == j, predicted == j
        categories.append(CategoryQuality(
            int(category), int(mine.sum()),
            float((truth[called] == j).mean()) if called.any() else None,
            float((predicted[mine] == j).mean()) if mine.any() else None,
        ))
    mistakes = Counter((int(classes[t]), int(classes[p])) for t, p in zip(truth, predicted) if t != p)
    own = scores[np.arange(len(truth)), truth]
    doubtful = np.flatnonzero(own < LIKELY_WRONG_SCORE)
    likely_wrong = sorted(
        (LikelyWrong(int(support_ids[positions[i]]), int(classes[truth[i]]), float(own[i]),
                     int(classes[predicted[i]]), float(scores[i, predicted[i]]))
         for i in doubtful),
        key=lambda w: w.own_score,
    )
    return QualityReport(categories, [(a, b, n) for (a, b), n in mistakes.most_common(pairs)], likely_wrong, len(truth))


def expected_share_correct(confidence: np.ndarray, category_ids: np.ndarray, unassigned: int = -1) -> float | None:
    """What calibration promises for the items assigned now: their mean confidence (None: none assigned)."""
    assigned = np.asarray(category_ids) != unassigned
    return float(np.asarray(confidence)[assigned].mean()) if assigned.any() else None


@dataclass(frozen=True)
class Why:
    """What drove one item's prediction: the labelled examples nearest to it in the category it
    was given, and the share of that category's evidence that is its name (k of k + n, k chosen
    on held-out examples; core/fusion.py)."""

    category_id: int
    nearest: list[tuple[int, float]]
    """(labelled item id, cosine similarity), nearest first."""
    modality: str
    name_share: float | None


def why(predictions, labels: dict[int, int], item_id: int, k: int = 3) -> Why | None:
    """Nearest labelled examples of the item's best category, by cosine in the first modality the
    item has (image, then text); cheap enough for the UI thread (one vector against the examples)."""
    features, ids = predictions.features, predictions.feature_ids
    if features is None or not len(predictions.classes):
        return None
    row = np.searchsorted(predictions.item_ids, item_id)
    if row >= len(predictions.item_ids) or predictions.item_ids[row] != item_id:
        return None
    category = int(predictions.classes[int(np.argmax(predictions.scores[row]))])
    examples = np.array(sorted(i for i, c in labels.items() if c == category and i != item_id), np.int64)
    position = int(np.searchsorted(ids, item_id))
    for modality in ("image", "text"):
        if modality not in features.modalities or not features.has(modality)[position]:
            continue
        lookup = np.full(features.count, -1, np.int64)
        lookup[features.rows[modality]] = np.arange(len(features.rows[modality]))
        places = np.searchsorted(ids, examples)
        found = places < len(ids)
        found[found] = ids[places[found]] == examples[found]
        places = places[found]
        places = places[lookup[places] >= 0]
        matrix = features.matrices[modality]
        query = np.asarray(matrix[lookup[position]], np.float32)
        vectors = np.asarray(matrix[lookup[places]], np.float32).reshape(len(places), -1)
        similarity = vectors @ query / np.maximum(np.linalg.norm(vectors, axis=1) * np.linalg.norm(query), 1e-12)
        order = np.argsort(-similarity)[:k]
        nearest = [(int(ids[places[i]]), float(similarity[i])) for i in order]
        return Why(category, nearest, modality, _name_share(predictions, modality, len(examples)))
    return None


def _name_share(predictions, modality: str, examples: int) -> float | None:
    """The name's share where it competes with `modality`'s examples: titles in "text", pictures in
    their concept space."""
    if not predictions.names_used or predictions.model is None:
        return None
    return predictions.model.model_.name_share("concept" if modality == "image" else "text", examples)
