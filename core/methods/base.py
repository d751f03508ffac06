"""The three kinds of adaptation method, and the contract each keeps.

- A **feature method** (`FewShotMethod`) fits on a support set of feature vectors (cached
  embeddings) and scores queries. Labels may be any hashables; `fit` records them in `classes_`.
- A **meta-learner** (`MetaLearner`) is a feature method with a part learned beforehand, from
  other labelled categories (`meta_train`); the learned part (`MetaTrained`) is handed to fresh
  copies with `adopt`, so one meta-training serves every episode, modality and refit.
- A **backbone adapter** (`BackboneAdapter`) trains on images and yields a new backbone, whose
  embeddings any feature method then uses.

Scores are per class, rows summing to at most one: the remainder is the method's belief that a
query is none of the classes. That remainder is what lets the app answer "unassigned" instead of
forcing every unseen thing into some category with full confidence. Fitted state ends in `_`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from protoshelf.core.progress import Progress, no_progress

if TYPE_CHECKING:
    from protoshelf.core.backbones import Backbone
    from protoshelf.core.store import Store

from protoshelf.core.constants import UNASSIGNED


class FewShotMethod(ABC):
    name: ClassVar[str]
    description: ClassVar[str]
    """One line in plain words: the app's tooltip and the CLI's help."""

    def fit(
        self,
        support: np.ndarray,
        labels: Sequence[Hashable],
        unlabelled: np.ndarray | None = None,
        progress: Progress = no_progress,
    ) -> "FewShotMethod":
        """Learn from support vectors; `unlabelled` (e.g. the catalog) may inform centring."""
        if len(support) != len(labels) or not len(labels):
            raise ValueError(f"{self.name}: need one label per support vector, and at least one")
        self.classes_, y = encode_labels(labels)
        self.learn(np.asarray(support, np.float32), y, unlabelled, progress)
        return self

    @abstractmethod
    def learn(self, support: np.ndarray, y: np.ndarray, unlabelled: np.ndarray | None, progress: Progress) -> None:
        """Fit on support rows whose labels are indices into `classes_` (0..n-1, first-seen order)."""

    @abstractmethod
    def predict(self, queries: np.ndarray) -> np.ndarray:
        """Scores of shape (queries, classes), each in [0, 1], rows summing to at most 1."""


@dataclass(frozen=True)
class MetaTrained:
    """What a meta-learner learned from other categories: its module, for features of `dim`."""

    method: str
    dim: int
    module: Any
    history: list[tuple[int, float, float]] = field(default_factory=list, compare=False)
    """(episode, held-out accuracy, held-out loss) at each validation."""


class MetaLearner(FewShotMethod):
    """A feature method that first learns, from labelled categories other than the new ones,
    something every later fit starts from (a projection, a relation module, an attention)."""

    meta_states: tuple[MetaTrained, ...] = ()

    @abstractmethod
    def meta_train(
        self, embeddings: np.ndarray, labels: Sequence[Hashable], progress: Progress = no_progress
    ) -> MetaTrained:
        """Learn from these labelled vectors; leaves `self` unchanged."""

    @abstractmethod
    def untrained(self, dim: int) -> MetaTrained:
        """The state meta-training starts from (for most, plain prototypes): usable at once."""

    def adopt(self, *states: MetaTrained) -> "MetaLearner":
        """Fit from these instead of meta-training on the support set: the one whose features have
        the support's dimension is used (one per modality)."""
        for state in states:
            if state.method != self.name:
                raise ValueError(f"{self.name} cannot use what {state.method} meta-learned")
        self.meta_states = tuple(states)
        return self

    def meta_state_for(self, support: np.ndarray, labels: Sequence[Hashable], progress: Progress) -> MetaTrained:
        """The adopted state of the support's dimension; without any, one meta-trained on the support."""
        if not self.meta_states:
            return self.meta_train(support, labels, progress)
        dim = np.shape(support)[1]
        for state in self.meta_states:
            if state.dim == dim:
                return state
        dims = ", ".join(str(state.dim) for state in self.meta_states)
        raise ValueError(f"{self.name} was meta-trained on features of dimension {dims}, not {dim}")


class BackboneAdapter(ABC):
    """Trains the backbone itself on labelled images; the catalog is then re-embedded with it."""

    name: ClassVar[str]
    description: ClassVar[str]

    @abstractmethod
    def adapt(self, base: "Backbone", images: Sequence, labels: Sequence[Hashable], device: str) -> "Backbone":
        """A new backbone trained on these images (one evaluation episode)."""

    @abstractmethod
    def adapt_catalog(self, store: "Store", base: str, device: str, progress: Progress = no_progress) -> str:
        """Train on the catalog's labelled images and embed the catalog; the new backbone's name."""


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
