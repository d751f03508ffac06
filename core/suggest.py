"""Which items to label next: the ones whose label would teach the classifier the most.

An item is informative when the classifier is unsure about it: its top two categories score
almost alike (small margin), or its scores are spread out (high entropy). Ranking by that alone
returns runs of near-copies, so an item is skipped when it is a near-copy (cosine >= NEAR_COPY)
of one already suggested or labelled. benchmarks/label_next.py measured this against labelling
random items, and against trading uncertainty for novelty (MMR), which picked unrepresentative
outliers and did worse than random on the Twemoji tree.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from protoshelf.core.classify import CatalogClassifier, CatalogPredictions
from protoshelf.core.similar import unit_rows
from protoshelf.core.store import Store, Vectors

from protoshelf.core.constants import SUGGEST_STRATEGIES as STRATEGIES
NEAR_COPY = 0.9
BLOCK_FACTOR = 10
"""Candidates are checked for near-copies N × BLOCK_FACTOR at a time, most uncertain first."""


@dataclass(frozen=True)
class Suggestion:
    """An item worth labelling, with what the classifier currently thinks of it."""

    item_id: int
    category_id: int
    score: float
    runner_up_id: int | None
    runner_up_score: float
    none_score: float
    uncertainty: float

    @property
    def unfamiliar(self) -> bool:
        """Nearer to no category than to any: the reason is novelty rather than a close call."""
        return self.none_score > self.score

    def reason(self, names: Mapping[int, str]) -> str:
        best = f"{names.get(self.category_id, self.category_id)} {self.score:.0%}"
        if self.unfamiliar or self.runner_up_id is None:
            return f"unlike every category (closest: {best})"
        return f"torn between {best} and {names.get(self.runner_up_id, self.runner_up_id)} {self.runner_up_score:.0%}"


def margin_uncertainty(scores: np.ndarray) -> np.ndarray:
    """1 - (best - second best): 1 for a tie or a total stranger, 0 for a sure call."""
    if scores.shape[1] < 2:
        return 1 - scores.max(axis=1, initial=0)
    top_two = -np.partition(-scores, 1, axis=1)[:, :2]
    return 1 - (top_two[:, 0] - top_two[:, 1])


def entropy_uncertainty(scores: np.ndarray) -> np.ndarray:
    """Entropy of the categories plus the "none of these" remainder, scaled into [0, 1]."""
    none = np.clip(1 - scores.sum(axis=1, keepdims=True), 0, 1)
    p = np.clip(np.concatenate([scores, none], axis=1), 1e-12, 1)
    return -(p * np.log(p)).sum(axis=1) / np.log(p.shape[1])


def uncertainty(scores: np.ndarray, strategy: str = "margin") -> np.ndarray:
    if strategy == "margin":
        return margin_uncertainty(scores)
    if strategy == "entropy":
        return entropy_uncertainty(scores)
    raise ValueError(f"Unknown strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}")


def distinct_picks(
    unit_vectors: np.ndarray, n: int, near_copy: float, seen: np.ndarray | None = None,
    picked: np.ndarray | None = None,
) -> list[int]:
    """Rows taken in order, skipping any within `near_copy` cosine of a row taken before it, of
    `seen` (labelled items) or of `picked` (earlier suggestions); all vectors of unit length."""
    blocked = np.zeros(len(unit_vectors), bool)
    if seen is not None and len(seen):
        blocked = (unit_vectors @ seen.T).max(axis=1) >= near_copy
    taken = list(picked) if picked is not None else []
    picks: list[int] = []
    for row in np.flatnonzero(~blocked):
        if len(picks) == n:
            break
        if taken and (np.asarray(taken) @ unit_vectors[row]).max() >= near_copy:
            continue
        picks.append(int(row))
        taken.append(unit_vectors[row])
    return picks


def rank_for_labelling(
    scores: np.ndarray,
    vectors_of: Callable[[np.ndarray], np.ndarray],
    n: int,
    exclude: np.ndarray | None = None,
    strategy: str = "margin",
    near_copy: float | None = NEAR_COPY,
    seen: np.ndarray | None = None,
) -> list[int]:
    """Rows of `scores` to label next, most uncertain first, without near-copies.

    `vectors_of(rows)` returns those rows' embeddings (only candidates are fetched, so a 1M
    catalog is never copied); `exclude` masks rows that cannot be suggested (labelled ones);
    `seen` holds the embeddings of labelled items; `near_copy=None` turns the check off.
    """
    value = uncertainty(scores, strategy)
    candidates = np.arange(len(value)) if exclude is None else np.flatnonzero(~exclude)
    order = candidates[np.argsort(-value[candidates], kind="stable")]
    if near_copy is None or n <= 0:
        return [int(r) for r in order[: max(n, 0)]]
    seen_unit = None if seen is None or not len(seen) else unit_rows(seen)
    picks: list[int] = []
    picked = np.empty((0, 0), np.float32)
    for start in range(0, len(order), n * BLOCK_FACTOR):
        block = order[start : start + n * BLOCK_FACTOR]
        unit = unit_rows(vectors_of(block))
        chosen = distinct_picks(unit, n - len(picks), near_copy, seen_unit, picked if len(picked) else None)
        picks.extend(int(block[c]) for c in chosen)
        picked = unit[chosen] if not len(picked) else np.concatenate([picked, unit[chosen]])
        if len(picks) >= n:
            break
    return picks


def suggest(
    predictions: CatalogPredictions,
    vectors: Vectors,
    n: int = 20,
    labelled: Iterable[int] = (),
    strategy: str = "margin",
    near_copy: float | None = NEAR_COPY,
) -> list[Suggestion]:
    """The n unlabelled items most worth labelling, with the scores that make them so.

    `vectors` (one backbone's embeddings) tell near-copies apart; a predicted item without a
    vector there (e.g. known only by its title) is never anyone's near-copy.
    """
    item_ids = np.asarray(predictions.item_ids, np.int64)
    labelled_ids = np.fromiter((int(i) for i in labelled), np.int64)
    picks = rank_for_labelling(
        predictions.scores,
        lambda rows: _gather(vectors, item_ids[rows]),
        n,
        np.isin(item_ids, labelled_ids),
        strategy,
        near_copy,
        seen=_gather(vectors, labelled_ids[np.isin(labelled_ids, vectors.item_ids)]),
    )
    value = uncertainty(predictions.scores[picks], strategy)
    return [_suggestion(predictions, row, float(v)) for row, v in zip(picks, value)]


def suggest_for_catalog(
    store: Store, backbone: str, n: int = 20, strategy: str = "margin", near_copy: float | None = NEAR_COPY
) -> list[Suggestion]:
    """Fit on the current labels and rank the rest; empty when nothing labelled is embedded."""
    classifier = CatalogClassifier(store, backbone)
    labels = store.labels()
    predictions = classifier.run(labels)
    if predictions is None:
        return []
    return suggest(predictions, classifier.vectors, n, labels, strategy, near_copy)


def _gather(vectors: Vectors, item_ids: np.ndarray) -> np.ndarray:
    """Rows of `vectors` for these ids, zeros where an id has none."""
    width = vectors.matrix.shape[1] if vectors.matrix.ndim == 2 else 0
    out = np.zeros((len(item_ids), width), np.float32)
    if not len(vectors):
        return out
    order = np.argsort(vectors.item_ids, kind="stable")
    positions = np.minimum(np.searchsorted(vectors.item_ids, item_ids, sorter=order), len(order) - 1)
    rows = order[positions]
    found = vectors.item_ids[rows] == item_ids
    out[found] = vectors.matrix[rows[found]]
    return out


def _suggestion(predictions: CatalogPredictions, row: int, value: float) -> Suggestion:
    scores = predictions.scores[row]
    order = np.argsort(-scores, kind="stable")
    second = order[1] if len(order) > 1 else None
    return Suggestion(
        item_id=int(predictions.item_ids[row]),
        category_id=int(predictions.classes[order[0]]),
        score=float(scores[order[0]]),
        runner_up_id=None if second is None else int(predictions.classes[second]),
        runner_up_score=0.0 if second is None else float(scores[second]),
        none_score=max(0.0, 1 - float(scores.sum())),
        uncertainty=round(value, 4),
    )
