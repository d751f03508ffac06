"""Prototypes refined with the unlabelled catalog (soft k-means, in the spirit of BD-CSPN).

A prototype from one or two shots sits wherever those shots happened to be. The catalog holds many
more items of the same category, unlabelled: each refinement step moves every prototype toward the
catalog items it softly claims, with a soft "none of these" option so the many items of categories
nobody has defined yet do not drag prototypes away (claims below `claim_similarity` go to it; the
final "none" level is then calibrated on the catalog as for prototypes). The support examples keep their full weight;
the whole catalog together weighs `unlabelled_weight` examples (spread over the classes by the soft
claims), whatever its size, so a large catalog cannot drown the merchandiser's examples.
"""
from __future__ import annotations

import numpy as np

from protoshelf.core.methods.prototypes import PrototypeClassifier, class_sums, l2_normalise, scores_with_rejection
from protoshelf.core.progress import Progress, no_progress


class TransductivePrototypes(PrototypeClassifier):
    name = "transductive"
    description = "Averages of your examples, nudged toward the unlabelled catalog items each one claims; helps most with one or two examples."

    def __init__(
        self,
        iterations: int = 2,
        unlabelled_weight: float = 16.0,
        max_unlabelled: int = 20_000,
        claim_similarity: float = 0.25,
        temperature: float = 0.1,
        reject_similarity: float | None = None,
        seed: int = 0,
    ):
        super().__init__(temperature, reject_similarity)
        self.claim_similarity = claim_similarity
        self.iterations = iterations
        self.unlabelled_weight = unlabelled_weight
        self.max_unlabelled = max_unlabelled
        self.seed = seed

    def learn(self, support: np.ndarray, y: np.ndarray, unlabelled: np.ndarray | None, progress: Progress) -> None:
        super().learn(support, y, unlabelled, no_progress)
        if unlabelled is None or not len(unlabelled) or not self.iterations:
            return
        rng = np.random.default_rng(self.seed)
        rows = np.arange(len(unlabelled))
        if len(rows) > self.max_unlabelled:
            rows = np.sort(rng.choice(rows, self.max_unlabelled, replace=False))
        pool = l2_normalise(np.asarray(unlabelled[rows], np.float32) - self.centre_)
        sums = class_sums(l2_normalise(support - self.centre_), y, len(self.classes_))
        for step in range(self.iterations):
            claims = scores_with_rejection(pool @ self.prototypes_.T, self.temperature, self.claim_similarity)
            self.prototypes_ = l2_normalise(sums + self.unlabelled_weight / len(pool) * (claims.T @ pool))
            progress(step + 1, self.iterations)
        self.reject_similarity_ = self._calibrate_rejection(unlabelled)

