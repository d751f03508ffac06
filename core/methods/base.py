"""The contract every adaptation method keeps: fit on a support set, score queries.

Methods work on feature vectors (cached embeddings), accept any hashable labels, and return
per-class scores whose rows may sum to less than one: the remainder is the method's belief that a
query is none of the classes. That remainder is what lets the app answer "unassigned" instead of
forcing every unseen thing into some category with full confidence.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from typing import ClassVar

import numpy as np

from core.progress import Progress, no_progress

UNASSIGNED = -1


class FewShotMethod(ABC):
    name: ClassVar[str]
    classes_: np.ndarray

    @abstractmethod
    def fit(
        self,
        support: np.ndarray,
        labels: Sequence[Hashable],
        unlabelled: np.ndarray | None = None,
        progress: Progress = no_progress,
    ) -> "FewShotMethod":
        """Learn from support vectors; `unlabelled` (e.g. the catalog) may inform centring."""

    @abstractmethod
    def predict(self, queries: np.ndarray) -> np.ndarray:
        """Scores of shape (queries, classes), each in [0, 1], rows summing to at most 1."""


def decide(scores: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Best class index per row, or UNASSIGNED where its score is below `threshold`."""
    if scores.shape[1] == 0:
        return np.full(len(scores), UNASSIGNED), np.zeros(len(scores), np.float32)
    best = scores.argmax(axis=1)
    confidence = scores[np.arange(len(scores)), best]
    return np.where(confidence >= threshold, best, UNASSIGNED), confidence


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and scores of the k best classes per row, best first."""
    k = min(k, scores.shape[1])
    if k == 0:
        empty = np.empty((len(scores), 0))
        return empty.astype(np.int64), empty
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(part_scores, order, axis=1)


def encode_labels(labels: Sequence[Hashable]) -> tuple[np.ndarray, np.ndarray]:
    """Classes in first-seen order and each label's index into them."""
    classes = list(dict.fromkeys(labels))
    index = {c: i for i, c in enumerate(classes)}
    return np.array(classes, dtype=object), np.array([index[label] for label in labels], dtype=np.int64)
