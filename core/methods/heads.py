"""Pieces shared by the methods that train a classifier head on cached features.

Trained heads are good at telling known classes apart but say nothing about "none of these": a
softmax over classes always sums to one. So each trained method borrows its rejection from the
prototypes in the backbone's feature space: the head decides *which* class, the prototypes decide
*whether* any class fits, and the product keeps rows summing to at most one.
"""
from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from protoshelf.core.methods.base import FewShotMethod
from protoshelf.core.methods.prototypes import CHUNK_ROWS, PrototypeClassifier, l2_normalise


def balanced_class_weights(y: torch.Tensor, classes: int) -> torch.Tensor:
    """Inverse-frequency weights (mean 1 over the examples) so rare classes count as much as common ones."""
    counts = torch.bincount(y, minlength=classes).float()
    return torch.where(counts > 0, len(y) / (classes * counts.clamp(min=1)), torch.zeros_like(counts))


def class_means(x: torch.Tensor, y: torch.Tensor, classes: int) -> torch.Tensor:
    """Unit-length mean of each class's (unit-length) rows: the prototype."""
    sums = torch.zeros(classes, x.shape[1], dtype=x.dtype).index_add_(0, y, x)
    return torch.nn.functional.normalize(sums, dim=1)


def with_rejection(class_probabilities: np.ndarray, prototype_scores: np.ndarray) -> np.ndarray:
    """Scale a head's class probabilities by how much the prototypes believe any class fits."""
    accepted = np.clip(prototype_scores.sum(axis=1, keepdims=True), 0.0, 1.0)
    return (class_probabilities * accepted).astype(np.float32)


def softmax(logits: torch.Tensor) -> np.ndarray:
    return torch.softmax(logits.float(), dim=1).numpy()


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run torch on one thread: heads and episodes are many tiny matrix products, where thread
    synchronisation costs more than it saves (8x slower with two threads on a busy 2-core CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class HeadOnPrototypes(FewShotMethod):
    """A method whose head reads the prototypes' features (centred on the catalog, unit length)
    and whose "none of these" share comes from those prototypes; it only says how to score."""

    temperature: float
    reject_similarity: float | None

    @property
    def scale(self) -> float:
        """Logit scale that makes a head at the prototypes equal the prototypes' softmax: (2·cos − 2)/T."""
        return 2 / self.temperature

    def fit_prototypes(self, support: np.ndarray, y: np.ndarray, unlabelled: np.ndarray | None) -> None:
        self.prototypes_ = PrototypeClassifier(self.temperature, self.reject_similarity).fit(support, y, unlabelled)

    def features(self, vectors: np.ndarray) -> np.ndarray:
        return l2_normalise(np.asarray(vectors, np.float32) - self.prototypes_.centre_)

    @abstractmethod
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits of rows of `features()`."""

    def predict(self, queries: np.ndarray) -> np.ndarray:
        out = np.empty((len(queries), len(self.classes_)), np.float32)
        with torch.no_grad():
            for start in range(0, len(queries), CHUNK_ROWS):
                chunk = queries[start : start + CHUNK_ROWS]
                out[start : start + len(chunk)] = softmax(self.logits(torch.from_numpy(self.features(chunk))))
        return with_rejection(out, self.prototypes_.predict(queries))
