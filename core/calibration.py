"""Confidence that means what it says: one temperature, fitted by cross-validation, over any model.

A method's scores (per class, rows summing to at most one, the rest being "none of these") are
often far too sharp on a few shots: a 99% that is right 60% of the time. `Calibrated` wraps any
model with `fit(support, labels, unlabelled, progress)`, `predict(queries)` and `classes_` over
`ModalFeatures` (a `LateFusion`, with or without names), so calibration never lives inside a
method. Each labelled example is held out in turn (stratified folds), the model is refitted on the
rest, and the temperature T and "none of these" offset b that give the held-out examples' true
classes the highest likelihood are kept: p ∝ p_model^(1/T) over the classes, p_none^(1/T)·e^b for "none".
The held-out rows are weighted to stand for the catalog (`catalog_weights`): folds hold out every
category alike, while a catalog is mostly a few large categories, and on Twemoji that alone made
the fitted T 10% too high at every number of examples (fitted T matched the oracle T of a
class-balanced query set to 0.5%), an ECE of 0.07-0.09 on pictures that weighting brought to
0.015-0.044 (`python -m benchmarks.names_calibration --shots 1 2 5 10`).
The offset may only shrink "none", and by at most e²: the held-out examples all belong to some
category, so an unbounded offset went to its lowest value and an item unlike every category
(socks in a shop of fruit and instruments) got assigned.

Only held-out examples whose category keeps another example in training set T and b. A lone
example held out leaves its category with the bare name, a harder problem than any the catalog
poses: on tuxpaint photos at one example per category those rows fitted T = 3–9 and made
confidences half the accuracy. Those rows still feed the quality view. The fit is shrunk toward
T = 1 (the method's own scores) as if `PRIOR_ROWS` held-out rows had agreed with it, so a dozen
held-out rows cannot swing it to an extreme. With no such row (names alone, or one example per
category) there is nothing to fit on: `default_temperature` stands and `fitted_` is False.

`expected_calibration_error`, `precision_coverage` and `expected_precision` measure and use it.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

import numpy as np

from protoshelf.core.constants import DEFAULT_THRESHOLD  # noqa: F401 - the calibrated default, shared with the CLI
from protoshelf.core.progress import Progress, no_progress

TEMPERATURES = np.exp(np.linspace(np.log(0.05), np.log(20.0), 61))
"""A log-spaced grid: one parameter, a few dozen held-out rows, so a grid is exact enough and cannot diverge."""
NONE_OFFSETS = tuple(np.linspace(-2.0, 0.0, 5))
"""How far "none" may shrink: held-out examples all belong to a category, so an unbounded offset
went to its lowest value and items of no category got assigned (socks as an instrument)."""
EPS = 1e-12
CERTAINTY_GAP = 1e-4
"""A calibrated score never claims certainty: a few dozen held-out examples cannot vouch for 100%."""
ECE_BINS = 15
PRIOR_ROWS = 5
"""Held-out rows' worth of belief in the default temperature: a Gaussian prior on log T…"""
PRIOR_LOG_SPREAD = np.log(4.0)
"""…with this standard deviation: a factor of 4 either way is one standard deviation."""


DEFAULT_TEMPERATURES = {
    # (modality, has examples, names): (T, none offset), for prototypes; see default_temperature
    ("image", False, True): (2.01, -2.0), ("text", False, True): (1.22, -2.0), ("fused", False, True): (0.9, -2.0),
    ("image", True, True): (2.11, -2.0), ("text", True, True): (1.42, -2.0), ("fused", True, True): (1.11, -2.0),
    ("image", True, False): (2.34, -2.0), ("text", True, False): (2.11, -2.0), ("fused", True, False): (1.28, -2.0),
}


def default_temperature(method: str, modality: str, has_examples: bool, names: bool) -> tuple[float, float]:
    """(T, none offset) for when nothing can be held out: fitted once, with prototypes, on Twemoji
    and on the animal photos, and their geometric mean kept
    (`python -m benchmarks.names_calibration --fit-defaults twemoji photos`; the README has the
    out-of-domain check, each set read with the other's temperatures). The tuxpaint stamps
    outside animals/ stay aside as an independent check; OpenMoji's own icons as the fitting set
    left every 0/1-shot row underconfident (ECE up to 0.34).
    Other methods keep their own scores (1, 0): nothing was fitted for them."""
    if method != "prototypes":
        return 1.0, 0.0
    return DEFAULT_TEMPERATURES.get((modality, has_examples, names), (1.0, 0.0))


def with_none(scores: np.ndarray) -> np.ndarray:
    """Class scores plus their "none of these" remainder as a last column."""
    scores = np.asarray(scores, np.float64)
    return np.hstack([scores, np.maximum(1.0 - scores.sum(axis=1, keepdims=True), 0.0)])


def tempered(scores: np.ndarray, temperature: float, none_offset: float = 0.0) -> np.ndarray:
    """Scores (classes, none implied) with every option's probability raised to 1/T, "none"
    multiplied by e^offset, renormalised."""
    if (temperature == 1.0 and none_offset == 0.0) or not scores.size:
        return np.asarray(scores, np.float32)
    log_p = np.log(np.maximum(with_none(scores), EPS)) / temperature
    log_p[:, -1] += none_offset
    log_p -= log_p.max(axis=1, keepdims=True)
    p = np.exp(log_p)
    return (p[:, :-1] / p.sum(axis=1, keepdims=True) * (1 - CERTAINTY_GAP)).astype(np.float32)


def fit_temperature(scores: np.ndarray, truth: np.ndarray, prior_rows: float = PRIOR_ROWS,
                    weights: np.ndarray | None = None) -> tuple[float, float]:
    """The grid (temperature, none offset) with the lowest log-loss of the true class indices
    `truth`, plus the Gaussian prior's `prior_rows` × (log T)² / 2σ² around the default T = 1.
    `weights` (one per row, finite, not all zero) weigh the rows' losses; they are scaled to sum
    to their effective number of rows, (Σw)²/Σw², so that a few heavy rows count as few against
    the prior."""
    log_p = np.log(np.maximum(with_none(scores), EPS))
    rows = np.arange(len(truth))
    weight = np.ones(len(truth)) if weights is None else np.asarray(weights, np.float64)
    if not np.isfinite(weight).all() or (weight < 0).any() or weight.sum() <= 0:
        raise ValueError("weights must be finite, non-negative and not all zero")
    weight = weight * weight.sum() / np.square(weight).sum()
    best, best_loss = (1.0, 0.0), np.inf
    for t in TEMPERATURES:
        z = log_p / t
        classes_max = z[:, :-1].max(axis=1)
        classes_sum = np.exp(z[:, :-1] - classes_max[:, None]).sum(axis=1)
        for b in NONE_OFFSETS:
            none = z[:, -1] + b
            top = np.maximum(classes_max, none)
            log_norm = top + np.log(classes_sum * np.exp(classes_max - top) + np.exp(none - top))
            loss = float((weight * (log_norm - z[rows, truth])).sum() + prior_rows * np.log(t) ** 2 / (2 * PRIOR_LOG_SPREAD ** 2))
            if loss < best_loss - 1e-9:
                best, best_loss = (float(t), float(b)), loss
    return best


SHARE_ROWS = 20_000
"""Catalog rows that estimate the categories' shares: enough for a share of 1% within ±0.15%."""


def catalog_weights(model, unlabelled, truth: np.ndarray, classes: int) -> np.ndarray | None:
    """Weights that make the held-out rows stand for the catalog instead of for the examples.

    Folds hold out about the same number of examples of every category, while a catalog is
    lopsided (a few large, easy categories, many small ones), so a temperature fitted on the
    examples answers for a balanced catalog. Each held-out row is weighted by its category's share
    of the catalog, as the model predicts it, over its share of the held-out rows (label shift,
    estimated by averaging predicted probabilities)."""
    if unlabelled is None or not len(truth):
        return None
    count = unlabelled.count
    if not count:
        return None
    sample = unlabelled if count <= SHARE_ROWS else unlabelled.take(np.arange(0, count, count // SHARE_ROWS))
    predicted = np.asarray(model.predict(sample), np.float64).mean(axis=0)
    if not predicted.sum() > 0:  # also NaN
        return None
    catalog_share = predicted / predicted.sum()
    held_out_share = np.bincount(truth, minlength=classes) / len(truth)
    weights = catalog_share[truth] / held_out_share[truth]
    return weights if np.isfinite(weights).all() and weights.sum() > 0 else None


def stratified_folds(y: np.ndarray, folds: int) -> np.ndarray:
    """Fold per example: the k-th example of a class goes to fold k mod `folds`; -1 where a class
    has a single example (it always stays in training)."""
    fold = np.full(len(y), -1, np.int64)
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        if len(members) > 1:
            fold[members] = np.arange(len(members)) % folds
    return fold


def class_index(classes: np.ndarray, labels: Sequence[Hashable]) -> np.ndarray:
    index = {c: j for j, c in enumerate(classes)}
    return np.array([index[label] for label in labels], np.int64)


def aligned(model, scores: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """`model`'s scores in the column order of `classes` (a fold's model may order them differently)."""
    out = np.zeros((len(scores), len(classes)), np.float32)
    out[:, class_index(classes, model.classes_)] = scores
    return out


class Calibrated:
    """`make()` builds the model to calibrate; `make_fold(fitted)` one to refit on each fold (it may
    reuse choices the full fit made, e.g. fusion weights, so folds stay cheap); `default` is the
    (temperature, none offset) kept when nothing can be held out (`default_temperature`).

    After `fit`: `model_`, `classes_`, `temperature_`, `fitted_` (False when nothing could be held
    out), and `held_out_` (held-out scores and true class indices: what the quality view reads).
    """

    def __init__(self, make: Callable[[], object], make_fold: Callable[[object], object] | None = None,
                 folds: int = 5, can_hold_out_singletons: bool = False, default: tuple[float, float] = (1.0, 0.0)):
        self.default = default
        self.make = make
        self.make_fold = make_fold or (lambda _fitted: make())
        self.folds = folds
        self.can_hold_out_singletons = can_hold_out_singletons

    def fit(self, support, labels: Sequence[Hashable], unlabelled=None, progress: Progress = no_progress,
            fold_unlabelled=None) -> "Calibrated":
        labels = np.asarray(list(labels), dtype=object)
        self.model_ = self.make().fit(support, labels, unlabelled=unlabelled, progress=progress)
        self.classes_ = self.model_.classes_
        (self.temperature_, self.none_offset_), self.fitted_ = self.default, False
        self.held_out_ = (np.zeros((0, len(self.classes_)), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64))
        fold = self.fold_of(labels)
        fold_count = int(fold.max(initial=-1)) + 1
        if fold_count == 0:
            return self
        parts, truths, positions = [], [], []
        for k in range(fold_count):
            train, test = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
            if not len(train):
                continue
            model = self.make_fold(self.model_).fit(
                support.take(train), labels[train],
                unlabelled=fold_unlabelled if fold_unlabelled is not None else unlabelled,
            )
            parts.append(aligned(model, model.predict(support.take(test)), self.classes_))
            truths.append(class_index(self.classes_, labels[test]))
            positions.append(test)
        if not parts:
            return self
        scores, truth, positions = np.concatenate(parts), np.concatenate(truths), np.concatenate(positions)
        self.held_out_ = (scores, truth, positions)
        kept_another = stratified_folds(labels, self.folds)[positions] >= 0
        if kept_another.any():
            truth_kept = truth[kept_another]
            catalog = fold_unlabelled if fold_unlabelled is not None else unlabelled
            weights = catalog_weights(self.model_, catalog, truth_kept, len(self.classes_))
            (self.temperature_, self.none_offset_) = fit_temperature(scores[kept_another], truth_kept, weights=weights)
            self.fitted_ = True
        return self

    def fold_of(self, labels: np.ndarray) -> np.ndarray:
        """Stratified folds; with names standing in for a class's lone example, singletons too."""
        fold = stratified_folds(labels, self.folds)
        if self.can_hold_out_singletons:
            singles = np.flatnonzero(fold < 0)
            fold[singles] = np.arange(len(singles)) % self.folds
        return fold

    def predict(self, queries) -> np.ndarray:
        return tempered(self.model_.predict(queries), self.temperature_, self.none_offset_)

    def held_out_scores(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Calibrated held-out scores, true class indices and the support positions they belong to."""
        scores, truth, positions = self.held_out_
        return tempered(scores, self.temperature_, self.none_offset_), truth, positions

    def __getattr__(self, name):
        if name.endswith("_") and "model_" in self.__dict__:
            return getattr(self.__dict__["model_"], name)  # weights_, methods_…: the wrapped model's
        raise AttributeError(name)


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """Σ_b |b|/n · |accuracy(b) − mean confidence(b)| over equal-width confidence bins."""
    confidence, correct = np.asarray(confidence, np.float64), np.asarray(correct, np.float64)
    if not len(confidence):
        return 0.0
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            total += members.sum() * abs(correct[members].mean() - confidence[members].mean())
    return total / len(confidence)


def precision_coverage(confidence: np.ndarray, correct: np.ndarray, threshold: float) -> tuple[float, float]:
    """(share of the assigned that are right, share assigned) when assigning at confidence ≥ threshold."""
    assigned = np.asarray(confidence) >= threshold
    coverage = float(assigned.mean()) if len(assigned) else 0.0
    precision = float(np.asarray(correct)[assigned].mean()) if assigned.any() else 1.0
    return precision, coverage


def expected_precision(confidence: np.ndarray, threshold: float) -> float:
    """What calibration promises for the items assigned at `threshold`: their mean confidence."""
    assigned = np.asarray(confidence)[np.asarray(confidence) >= threshold]
    return float(assigned.mean()) if len(assigned) else 1.0
