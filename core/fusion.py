"""Images and titles as two opinions: one few-shot method per modality, fused late.

Each modality gets its own fitted method (any FewShotMethod, on its own features, which the method
normalises its own way), so fusion works with every method and needs nothing from it but scores.
Scores, with the "none of these" remainder as one more option, are pooled log-linearly:
log p ∝ Σ w_m·log p_m / Σ w_m over the modalities an item has. That is a weighted product of
experts: an item without a title (or without a readable image) gets exactly the other modality's
scores, and where both modalities agree the fused confidence equals theirs, so the "unassigned"
threshold keeps its meaning. Since log p_m is the method's logits up to a constant, a weight acts
as a per-modality temperature.

The weights come in two steps. Each modality's log-scores are divided by their spread over the
classes on the catalog (z-score normalisation, the usual step before a sum rule in score-level
fusion), so a modality does not dominate only because its method is sharper. The balance between
the normalised modalities is then chosen on the support set alone: each example of a class is held
out in turn (one per class per fold, at most `folds` folds), both methods are refitted on the rest,
and the balance with the lowest held-out log-loss wins. With one example per class nothing can be
held out, and the normalised modalities weigh equally, except "concept": without names it is only
a projection of the image features (core/names.py), so it stays out until held-out examples say
it helps. Three modalities ("image", "concept", "text") search the same grid over the simplex.

Category names (`names`) join the name-space modalities (titles and ImageNet concepts, both in
the title model's space; core/names.py) as k pseudo-examples per class, in every fit and every
fold, so a name's share of its class is k/(k+n) with n examples: it fades as examples come in.
A class with no example is then still scored there, which is how a new category predicts. k is
chosen per modality on held-out examples (the lowest held-out log-loss over `NAME_WEIGHTS`),
holding out only examples whose class keeps another one: a class reduced to its bare name would
favour a large k whatever the name is worth. Where no class has two examples, k = 1.
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from protoshelf.core.calibration import class_index, stratified_folds
from protoshelf.core.methods import DEFAULT_METHOD, FewShotMethod, make_method
from protoshelf.core.methods.base import encode_labels
from protoshelf.core.names import NAME_SPACES
from protoshelf.core.progress import Progress, no_progress
from protoshelf.core.store import Vectors

MODALITIES = ("image", "concept", "text")
USES = {"image": ("image", "concept"), "text": ("text",), "fused": MODALITIES}
"""What each choice of the app's modality setting scores with: "image" is everything read from the
pictures, their ImageNet concepts included (core/names.py)."""
WEIGHT_GRID = tuple(round(w, 2) for w in np.linspace(0.0, 1.0, 11))
NAME_WEIGHTS = (1.0, 0.5, 2.0, 0.25, 4.0, 0.125, 8.0)
"""How many examples a category's name counts as; one first, so that ties keep it."""
CHOICE_TEMPERATURES = tuple(np.exp(np.linspace(np.log(0.25), np.log(8.0), 11)))
CHOICE_PRIOR = 2.0
"""Nats of held-out log-loss a choice must save to move all the way from its default (k = 1,
balanced weights): with two categories of three examples, six held-out rows once put all the
weight on names and concepts, and socks became a musical instrument."""
MIN_WEIGHT = 1e-6
"""A modality weighted 0 still scores the items that have nothing else."""
CV_UNLABELLED = 4096
"""Folds only choose a weight; a sample of the catalog is enough to centre their fits."""
EPS = 1e-12
NO_ROWS = np.empty(0, np.int64)


@dataclass(frozen=True)
class ModalFeatures:
    """Vectors of `count` items by modality: items at positions `rows[m]` have `matrices[m]`.

    An item may lack a modality (no title, no readable image); it is then absent from that
    modality's rows rather than padded with a made-up vector.
    """

    count: int
    matrices: Mapping[str, np.ndarray]
    rows: Mapping[str, np.ndarray]

    @classmethod
    def of(cls, **matrices: np.ndarray) -> "ModalFeatures":
        """Every item has every given modality: `ModalFeatures.of(image=a, text=b)`."""
        count = len(next(iter(matrices.values())))
        return cls(count, matrices, {m: np.arange(count) for m in matrices})

    @classmethod
    def align(cls, item_ids: np.ndarray, vectors: Mapping[str, Vectors]) -> "ModalFeatures":
        """Features of `item_ids` (repeats allowed) from per-modality Vectors sorted by item id, as
        the store loads them; a matrix is shared, not copied, when the items are exactly its rows."""
        item_ids = np.asarray(item_ids, np.int64)
        matrices, rows = {}, {}
        for modality, vec in vectors.items():
            if not len(vec) or not len(item_ids):
                continue
            where = np.minimum(np.searchsorted(vec.item_ids, item_ids), len(vec) - 1)
            hit = vec.item_ids[where] == item_ids
            picked = where[hit]
            same = len(picked) == len(vec) and np.array_equal(picked, np.arange(len(vec)))
            matrices[modality] = vec.matrix if same else vec.matrix[picked]
            rows[modality] = np.flatnonzero(hit)
        return cls(len(item_ids), matrices, rows)

    @property
    def modalities(self) -> list[str]:
        return [m for m in self.matrices if len(self.rows[m])]

    def user_modality(self) -> str:
        """The user's modality setting these features answer: titles, pictures, or both (a catalog
        without titles has no text features, whatever was asked for)."""
        has = set(self.modalities)
        return "fused" if "text" in has and has - {"text"} else "text" if "text" in has else "image"

    def has(self, modality: str) -> np.ndarray:
        mask = np.zeros(self.count, bool)
        if modality in self.rows:
            mask[self.rows[modality]] = True
        return mask

    def present(self) -> np.ndarray:
        """Which items have at least one modality."""
        mask = np.zeros(self.count, bool)
        for rows in self.rows.values():
            mask[rows] = True
        return mask

    def take(self, positions: Sequence[int] | np.ndarray) -> "ModalFeatures":
        """The items at `positions` (distinct), in that order."""
        positions = np.asarray(positions, np.int64)
        new_position = np.full(self.count, -1, np.int64)
        new_position[positions] = np.arange(len(positions))
        matrices, rows = {}, {}
        for modality, matrix in self.matrices.items():
            moved = new_position[self.rows[modality]]
            keep = moved >= 0
            matrices[modality] = matrix[keep]
            rows[modality] = moved[keep]
        return ModalFeatures(len(positions), matrices, rows)

    def only(self, modalities: Sequence[str]) -> "ModalFeatures":
        keep = [m for m in modalities if m in self.matrices]
        return ModalFeatures(self.count, {m: self.matrices[m] for m in keep}, {m: self.rows[m] for m in keep})


def log_scores(method: FewShotMethod, queries: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Log-probabilities over `classes` plus a last "none" column, whatever order the method keeps."""
    scores = method.predict(queries)
    out = np.full((len(queries), len(classes) + 1), EPS, np.float32)
    column = {c: j for j, c in enumerate(classes)}
    out[:, [column[c] for c in method.classes_]] = scores
    out[:, -1] = 1.0 - scores.sum(axis=1)
    return np.log(np.maximum(out, EPS))


def pool(log_probs: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """Weighted log-linear pool of per-modality log-probabilities (all for the same items), as
    probabilities with the "none" column last."""
    logits = sum(w * lp for w, lp in zip(weights, log_probs)) / sum(weights)
    return softmax(logits)


def sharpness_free_loss(logits: np.ndarray, truth: np.ndarray) -> float:
    """Held-out log-loss at the best of a few temperatures. Calibration sets the temperature
    afterwards, so a choice must not win by sharpness alone: on Twemoji, mixing in a flat
    modality lowered the plain log-loss while it cost 3 points of accuracy."""
    rows = np.arange(len(truth))
    best = np.inf
    for temperature in CHOICE_TEMPERATURES:
        z = logits / temperature
        top = z.max(axis=1)
        log_norm = top + np.log(np.exp(z - top[:, None]).sum(axis=1))
        best = min(best, float((log_norm - z[rows, truth]).mean()))
    return best


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def balances(modalities: Sequence[str]) -> list[dict[str, float]]:
    """The weight grid, balanced weights first so that ties go to them."""
    if len(modalities) == 1:
        return [{modalities[0]: 1.0}]
    if len(modalities) == 2:
        first, second = modalities
        grid = sorted(WEIGHT_GRID, key=lambda w: abs(w - 0.5))
        return [{first: w, second: round(1.0 - w, 2)} for w in grid]
    steps = len(WEIGHT_GRID) - 1
    points = [p for p in np.ndindex(*(steps + 1,) * (len(modalities) - 1)) if sum(p) <= steps]
    grid = [(*p, steps - sum(p)) for p in points]
    grid.sort(key=lambda p: np.ptp(p))
    return [{m: round(k / steps, 2) for m, k in zip(modalities, p)} for p in grid]


def log_score_spread(method: FewShotMethod, queries: np.ndarray, classes: np.ndarray) -> float:
    """How far apart a modality's per-class log-scores typically lie on these queries."""
    spread = log_scores(method, queries, classes)[:, :-1].std(axis=1).mean()
    return max(float(spread), EPS)


def normalised(balance: Mapping[str, float], spreads: Mapping[str, float]) -> dict[str, float]:
    """Pooling weights giving each modality `balance` of the say once its scale is divided out,
    summing to one so that agreeing modalities keep their confidence."""
    raw = {m: balance[m] / spreads[m] for m in balance}
    total = sum(raw.values()) or 1.0
    return {m: w / total for m, w in raw.items()}


class LateFusion:
    """Fit `method` once per modality and pool the scores; see the module docstring.

    After `fit`: `methods_` per modality, `spreads_`, the chosen `balance_`, `weights_`, the
    pooling weights that `predict` uses, and `name_weights_`, how many examples each name counts
    as per name-space modality. `weights` and `name_weights` fix them instead of choosing.
    `names` (class → unit text vector of its name) joins every name-space modality ("text",
    "concept") as pseudo-examples of its class: a class with no example at all is still scored,
    and the name's share k/(k+n) shrinks as examples come in.
    """

    def __init__(
        self,
        method: str = DEFAULT_METHOD,
        weights: Mapping[str, float] | None = None,
        folds: int = 5,
        seed: int = 0,
        names: Mapping[Hashable, np.ndarray] | None = None,
        name_weights: Mapping[str, float] | None = None,
        **params,
    ):
        self.method = method
        self.params = params
        self.fixed_weights = dict(weights) if weights else None
        self.fixed_name_weights = dict(name_weights) if name_weights else None
        self.folds = folds
        self.seed = seed
        self.names = dict(names or {})

    def fixed(self) -> "LateFusion":
        """An unfitted copy that keeps this fit's choices (pooling and name weights): what the
        calibration folds refit, at one fit per modality."""
        return LateFusion(self.method, self.weights_, self.folds, self.seed, self.names, self.name_weights_, **self.params)

    def name_share(self, modality: str, examples: int) -> float | None:
        """The share k/(k+n) of a class's evidence in `modality` that is its name, given n examples."""
        k = getattr(self, "name_weights_", {}).get(modality)
        return None if k is None else k / (k + examples)

    def _fit_one(self, matrix, labels, unlabelled, modality: str, progress: Progress = no_progress,
                 name_weight: float | None = None) -> FewShotMethod:
        labels = list(labels)
        if self.names and modality in NAME_SPACES:
            k = self.name_weights_.get(modality, 1.0) if name_weight is None else name_weight
            names_times, examples_times = (round(k), 1) if k >= 1 else (1, round(1 / k))
            matrix = np.asarray(matrix, np.float32).reshape(-1, self._name_matrix.shape[1])
            matrix = np.vstack([np.tile(matrix, (examples_times, 1)), np.tile(self._name_matrix, (names_times, 1))])
            labels = labels * examples_times + list(self.names) * names_times
        return make_method(self.method, **self.params).fit(
            matrix, labels, unlabelled=unlabelled, progress=progress
        )

    def _name_spaces(self, support: ModalFeatures, unlabelled: ModalFeatures | None) -> list[str]:
        """Modalities that get the names as examples: name spaces the support or catalog has."""
        if not self.names:
            return []
        have = set(support.matrices) | set(unlabelled.modalities if unlabelled is not None else ())
        return [m for m in NAME_SPACES if m in have]

    def fit(
        self,
        support: ModalFeatures,
        labels: Sequence[Hashable],
        unlabelled: ModalFeatures | None = None,
        progress: Progress = no_progress,
    ) -> "LateFusion":
        labels = np.asarray(list(labels), dtype=object)
        self.classes_, _ = encode_labels([*labels, *self.names])
        self._name_matrix = np.array([np.asarray(v, np.float32) for v in self.names.values()]) if self.names else None
        every_class = set(self.classes_)
        named = self._name_spaces(support, unlabelled)
        # A modality whose examples (and names) miss a category cannot score it; another one must do.
        self.modalities_ = [
            m for m in dict.fromkeys([*support.modalities, *named])
            if set(labels[support.rows.get(m, NO_ROWS)]) | (set(self.names) if m in named else set()) == every_class
        ]
        if not self.modalities_:
            raise ValueError("no modality has an example of every category")
        rng = np.random.default_rng(self.seed)
        pools, samples = {}, {}
        for m in self.modalities_:
            pools[m] = None if unlabelled is None or m not in unlabelled.modalities else unlabelled.matrices[m]
            samples[m] = _sample(pools[m], CV_UNLABELLED, rng)
        self.name_weights_ = {}
        self.name_weights_ = (
            {m: self.fixed_name_weights.get(m, 1.0) for m in named if m in self.modalities_}
            if self.fixed_name_weights is not None
            else {m: self._choose_name_weight(support, labels, samples[m], m) for m in named if m in self.modalities_}
        )
        self.methods_ = {
            m: self._fit_one(
                support.matrices.get(m, np.empty((0, 0), np.float32)), labels[support.rows.get(m, NO_ROWS)],
                pools[m], m, progress,
            )
            for m in self.modalities_
        }
        if self.fixed_weights is not None:
            self.weights_ = normalised({m: self.fixed_weights.get(m, 0.0) for m in self.modalities_},
                                       dict.fromkeys(self.modalities_, 1.0))
            return self
        self.spreads_ = {
            m: log_score_spread(self.methods_[m], self._spread_queries(support, m, samples[m]), self.classes_)
            for m in self.modalities_
        }
        self.balance_ = self._choose_balance(support, labels, samples, progress)
        self.weights_ = normalised(self.balance_, self.spreads_)
        progress(1, 1)
        return self

    def _spread_queries(self, support: ModalFeatures, modality: str, sample: np.ndarray | None) -> np.ndarray:
        if sample is not None:
            return sample
        if modality in support.modalities:
            return support.matrices[modality]
        return self._name_matrix

    def _choose_name_weight(self, support: ModalFeatures, labels: np.ndarray, sample, modality: str) -> float:
        """The number of examples a name counts as in `modality` with the lowest held-out log-loss;
        only examples whose class keeps another one in training are held out (module docstring)."""
        if modality not in support.modalities:
            return NAME_WEIGHTS[0]
        matrix, y = support.matrices[modality], labels[support.rows[modality]]
        fold = stratified_folds(y, self.folds)
        fold_count = int(fold.max(initial=-1)) + 1
        if fold_count == 0:
            return NAME_WEIGHTS[0]
        truth = class_index(self.classes_, y[np.concatenate([np.flatnonzero(fold == k) for k in range(fold_count)])])
        losses = []
        for weight in NAME_WEIGHTS:
            held_out = []
            for k in range(fold_count):
                train, test = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
                fitted = self._fit_one(matrix[train], y[train], sample, modality, name_weight=weight)
                held_out.append(log_scores(fitted, matrix[test], self.classes_))
            deviation = abs(np.log2(weight)) / np.log2(max(NAME_WEIGHTS))
            losses.append(len(truth) * sharpness_free_loss(np.concatenate(held_out), truth) + CHOICE_PRIOR * deviation)
        return NAME_WEIGHTS[int(np.argmin(losses))]

    def _choose_balance(self, support, labels, samples, progress) -> dict[str, float]:
        candidates = balances(self.modalities_)
        complete = np.flatnonzero(np.logical_and.reduce([support.has(m) for m in self.modalities_]))
        fold = stratified_folds(labels[complete], self.folds)
        fold_count = int(fold.max(initial=-1)) + 1
        if len(candidates) == 1:
            return candidates[0]
        if fold_count == 0:
            return self._default_balance(candidates)
        both, y = support.take(complete), labels[complete]
        held_out, log_probs = [], {m: [] for m in self.modalities_}
        for k in range(fold_count):
            train, test = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
            held_out.append(test)
            for m in self.modalities_:
                row = _position_to_row(both, m)
                fitted = self._fit_one(both.matrices[m][row[train]], y[train], samples[m], m)
                log_probs[m].append(log_scores(fitted, both.matrices[m][row[test]], self.classes_))
            progress(k + 1, fold_count + 1)
        truth = class_index(self.classes_, y[np.concatenate(held_out)])
        stacked = [np.concatenate(log_probs[m]) for m in self.modalities_]
        losses, default = [], self._default_balance(candidates)
        for balance in candidates:
            weights = normalised(balance, self.spreads_)
            logits = sum(weights[m] * lp for m, lp in zip(self.modalities_, stacked))
            deviation = sum(abs(balance[m] - default[m]) for m in self.modalities_) / 2
            losses.append(len(truth) * sharpness_free_loss(logits, truth) + CHOICE_PRIOR * deviation)
        return candidates[int(np.argmin(losses))]

    def _default_balance(self, candidates: list[dict[str, float]]) -> dict[str, float]:
        """Balanced, but without names the concepts (a projection of the image features) stay out."""
        if self.names or "concept" not in self.modalities_:
            return candidates[0]
        others = [m for m in self.modalities_ if m != "concept"]
        return {m: (0.0 if m == "concept" else 1.0 / len(others)) for m in self.modalities_}

    def predict(self, queries: ModalFeatures) -> np.ndarray:
        """Scores of shape (queries, classes); rows of items with no fitted modality are zeros."""
        if len(self.methods_) == 1:
            return self._predict_one(queries)
        total = np.zeros((queries.count, len(self.classes_) + 1), np.float32)
        weight = np.zeros(queries.count, np.float32)
        for m, method in self.methods_.items():
            if m not in queries.modalities:
                continue
            w = max(self.weights_[m], MIN_WEIGHT)
            rows = queries.rows[m]
            total[rows] += w * log_scores(method, queries.matrices[m], self.classes_)
            weight[rows] += w
        scored = weight > 0
        scores = np.zeros((queries.count, len(self.classes_)), np.float32)
        scores[scored] = softmax(total[scored] / weight[scored, None])[:, :-1]
        return scores

    def _predict_one(self, queries: ModalFeatures) -> np.ndarray:
        """A lone modality's own scores: what pooling them with themselves gives, without the log
        and softmax passes over every item (a third of a re-score at a million items)."""
        (modality, method), = self.methods_.items()
        if modality not in queries.modalities:
            return np.zeros((queries.count, len(self.classes_)), np.float32)
        column = {c: j for j, c in enumerate(self.classes_)}
        columns = [column[c] for c in method.classes_]
        rows = queries.rows[modality]
        own = np.asarray(method.predict(queries.matrices[modality]), np.float32)
        if len(rows) == queries.count and columns == list(range(len(columns))):
            return own
        scores = np.zeros((queries.count, len(self.classes_)), np.float32)
        scores[np.ix_(rows, columns)] = own
        return scores


def _sample(matrix: np.ndarray | None, size: int, rng: np.random.Generator) -> np.ndarray | None:
    if matrix is None or len(matrix) <= size:
        return matrix
    return matrix[np.sort(rng.choice(len(matrix), size, replace=False))]


def _position_to_row(features: ModalFeatures, modality: str) -> np.ndarray:
    row = np.full(features.count, -1, np.int64)
    row[features.rows[modality]] = np.arange(len(features.rows[modality]))
    return row
