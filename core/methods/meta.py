"""Meta-learning from the catalog's own labelled categories.

A catalog that already has many labelled categories shows which directions of the backbone's
features separate products and which are noise. `meta_train` learns that, episodically: it samples
N-way K-shot tasks (K varying from 1 to 10) from those categories and trains a projection of the
centred, unit-length features, a per-feature gain plus an optional low-rank residual, so that
classifying each task's queries works (a prototypical network head). The projection starts as the
identity, i.e. as plain prototypes, and the state kept is the one that did best on validation tasks
drawn from held-out categories, so meta-training cannot make things worse than the start on
categories it did not see.

`meta-maml` (Proto-MAML) adds the adaptation step: the linear head starts at the prototypes in the
projected space and takes a few gradient steps on the support set; the projection and that step
size are meta-learned through those steps (second-order MAML, written plainly with
`torch.autograd.grad`). Plain `MetaPrototypes` (no inner steps) is not registered as a method: on
benchmarks/methods.py it never beat prototypes beyond noise, and neither did a low-rank residual.

`fit` without a meta-trained adapter meta-trains on the support set itself (the categories with two
or more examples): in the app that is every labelled category of the catalog; `protoshelf evaluate
--meta-train FOLDER` instead meta-trains once on other categories and passes the adapter to each
fit. Rejection comes from the prototypes in the backbone's space.
"""
from __future__ import annotations

import copy
from collections.abc import Hashable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.methods.base import FewShotMethod, encode_labels
from core.methods.heads import balanced_class_weights, class_means, single_threaded, softmax, with_rejection
from core.methods.prototypes import CHUNK_ROWS, PrototypeClassifier, l2_normalise
from core.progress import Progress, no_progress

VALIDATION_SHARE = 0.25
VALIDATION_EPISODES = 20
VALIDATE_EVERY = 25


class ResidualProjection(nn.Module):
    """(g ⊙ x) + B·A·x, unit length: a per-feature gain and a low-rank residual.

    The gain starts at one and B at zero, so the projection starts as the identity.
    """

    def __init__(self, dim: int, rank: int, dropout: float = 0.1):
        super().__init__()
        self.log_gain = nn.Parameter(torch.zeros(dim))
        self.low_rank = None
        if rank:
            self.low_rank = nn.Sequential(
                nn.Linear(dim, rank, bias=False), nn.Dropout(dropout), nn.Linear(rank, dim, bias=False)
            )
            nn.init.zeros_(self.low_rank[-1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x * self.log_gain.exp()
        if self.low_rank is not None:
            z = z + self.low_rank(x)
        return F.normalize(z, dim=-1)


class MetaAdapter(nn.Module):
    """What meta-training learns: the projection, and Proto-MAML's inner step size."""

    def __init__(self, dim: int, rank: int, dropout: float, inner_lr: float):
        super().__init__()
        self.projection = ResidualProjection(dim, rank, dropout)
        self.log_inner_lr = nn.Parameter(torch.tensor(float(np.log(inner_lr))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(x)


def sample_task(
    by_class: list[np.ndarray], ways: int, max_shots: int, queries: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows and task-local labels of an N-way K-shot task; K varies so one head serves 1 to max_shots."""
    chosen = rng.choice(len(by_class), size=min(ways, len(by_class)), replace=False)
    smallest = min(len(by_class[c]) for c in chosen)
    shots = int(rng.integers(1, min(max_shots, smallest - 1) + 1))
    s_rows, s_y, q_rows, q_y = [], [], [], []
    for label, c in enumerate(chosen):
        rows = rng.permutation(by_class[c])
        s_rows.extend(rows[:shots])
        s_y.extend([label] * shots)
        picked = rows[shots : shots + queries]
        q_rows.extend(picked)
        q_y.extend([label] * len(picked))
    return np.array(s_rows), np.array(s_y), np.array(q_rows), np.array(q_y)


class MetaPrototypes(FewShotMethod):
    name = "meta-protonet"
    default_inner_steps = 0

    def __init__(
        self,
        rank: int = 0,
        episodes: int = 100,
        ways: int = 20,
        max_shots: int = 10,
        queries: int = 5,
        lr: float = 1e-2,
        inner_steps: int | None = None,
        inner_lr: float = 100.0,
        dropout: float = 0.1,
        temperature: float = 0.1,
        reject_similarity: float | None = None,
        seed: int = 0,
        adapter: MetaAdapter | None = None,
    ):
        self.rank = rank
        self.episodes = episodes
        self.ways = ways
        self.max_shots = max_shots
        self.queries = queries
        self.lr = lr
        self.inner_steps = self.default_inner_steps if inner_steps is None else inner_steps
        self.inner_lr = inner_lr
        self.dropout = dropout
        self.temperature = temperature
        self.reject_similarity = reject_similarity
        self.seed = seed
        self.adapter = adapter
        self.meta_history_: list[tuple[int, float]] = []

    @property
    def scale(self) -> float:
        return 2 / self.temperature

    def head(
        self, z_support: torch.Tensor, y: torch.Tensor, classes: int, train: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A linear head started at the prototypes, then `inner_steps` balanced CE steps on the support."""
        weight = class_means(z_support, y, classes) * self.scale
        bias = torch.zeros(classes, requires_grad=True)
        if not self.inner_steps:
            return weight, bias
        if not weight.requires_grad:
            weight = weight.detach().requires_grad_(True)
        class_weights = balanced_class_weights(y, classes)
        step = self.adapter.log_inner_lr.exp()
        with torch.enable_grad():
            for _ in range(self.inner_steps):
                loss = F.cross_entropy(z_support @ weight.T + bias, y, weight=class_weights)
                g_weight, g_bias = torch.autograd.grad(loss, [weight, bias], create_graph=train)
                weight, bias = weight - step * g_weight, bias - step * g_bias
        return weight, bias

    def task_logits(
        self, x: torch.Tensor, s_rows, s_y, q_rows, train: bool
    ) -> torch.Tensor:
        z_support, z_query = self.adapter(x[s_rows]), self.adapter(x[q_rows])
        y = torch.as_tensor(s_y)
        weight, bias = self.head(z_support, y, int(y.max()) + 1, train)
        return z_query @ weight.T + bias

    def meta_train(
        self, embeddings: np.ndarray, labels: Sequence[Hashable], progress: Progress = no_progress
    ) -> dict:
        """Learn the adapter from labelled categories other than the new ones.

        Returns the learned state as constructor parameters, so that fresh copies (one per episode,
        one per modality) start from it: `make_method(name, **method.meta_train(x, y))`.
        """
        with single_threaded():
            return self._meta_train(embeddings, labels, progress)

    def _meta_train(self, embeddings: np.ndarray, labels: Sequence[Hashable], progress: Progress) -> dict:
        rng = np.random.default_rng(self.seed)
        torch.manual_seed(self.seed)
        embeddings = np.asarray(embeddings, np.float32)
        _, y = encode_labels(labels)
        x = torch.from_numpy(l2_normalise(embeddings - embeddings.mean(axis=0)))
        by_class = [rows for rows in (np.flatnonzero(y == c) for c in range(y.max() + 1)) if len(rows) >= 2]
        self.adapter = MetaAdapter(x.shape[1], self.rank, self.dropout, self.inner_lr)
        self.meta_history_ = []
        if len(by_class) < 2:
            progress(1, 1)
            return {"adapter": self.adapter.eval()}
        order = rng.permutation(len(by_class))
        held = max(2, int(len(by_class) * VALIDATION_SHARE)) if len(by_class) >= 8 else 0
        validation = [by_class[i] for i in order[:held]]
        training = [by_class[i] for i in order[held:]]
        tasks = [sample_task(validation, self.ways, self.max_shots, self.queries, rng)
                 for _ in range(VALIDATION_EPISODES if validation else 0)]
        optimiser = torch.optim.Adam(self.adapter.parameters(), lr=self.lr)
        best = (self.validation_accuracy(x, tasks), copy.deepcopy(self.adapter.state_dict()))
        self.meta_history_.append((0, best[0]))
        for episode in range(1, self.episodes + 1):
            self.adapter.train()
            s_rows, s_y, q_rows, q_y = sample_task(training, self.ways, self.max_shots, self.queries, rng)
            logits = self.task_logits(x, s_rows, s_y, q_rows, train=True)
            loss = F.cross_entropy(logits, torch.as_tensor(q_y))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if tasks and (episode % VALIDATE_EVERY == 0 or episode == self.episodes):
                accuracy = self.validation_accuracy(x, tasks)
                self.meta_history_.append((episode, accuracy))
                if accuracy > best[0]:
                    best = (accuracy, copy.deepcopy(self.adapter.state_dict()))
            progress(episode, self.episodes)
        if tasks:
            self.adapter.load_state_dict(best[1])
        self.adapter.requires_grad_(False)
        return {"adapter": self.adapter.eval()}

    def validation_accuracy(self, x: torch.Tensor, tasks) -> float:
        if not tasks:
            return 0.0
        self.adapter.eval()
        hits = total = 0
        with torch.no_grad():
            for s_rows, s_y, q_rows, q_y in tasks:
                predicted = self.task_logits(x, s_rows, s_y, q_rows, train=False).argmax(dim=1).numpy()
                hits += int((predicted == q_y).sum())
                total += len(q_y)
        return hits / max(total, 1)

    def fit(
        self,
        support: np.ndarray,
        labels: Sequence[Hashable],
        unlabelled: np.ndarray | None = None,
        progress: Progress = no_progress,
    ) -> "MetaPrototypes":
        self.prototypes = PrototypeClassifier(self.temperature, self.reject_similarity)
        self.prototypes.fit(support, labels, unlabelled)
        self.classes_ = self.prototypes.classes_
        if self.adapter is None:
            self.meta_train(support, labels, progress)
        elif self.adapter.projection.log_gain.shape[0] != np.shape(support)[1]:
            raise ValueError("this adapter was meta-trained on features of another dimension")
        _, y = encode_labels(labels)
        with torch.no_grad():
            z = self.adapter(torch.from_numpy(self.features(support)))
        weight, bias = self.head(z, torch.from_numpy(y), len(self.classes_))
        self.weight_, self.bias_ = weight.detach(), bias.detach()
        progress(1, 1)
        return self

    def features(self, vectors: np.ndarray) -> np.ndarray:
        return l2_normalise(np.asarray(vectors, np.float32) - self.prototypes.centre_)

    def predict(self, queries: np.ndarray) -> np.ndarray:
        out = np.empty((len(queries), len(self.classes_)), np.float32)
        with torch.no_grad():
            for start in range(0, len(queries), CHUNK_ROWS):
                chunk = queries[start : start + CHUNK_ROWS]
                z = self.adapter(torch.from_numpy(self.features(chunk)))
                out[start : start + len(chunk)] = softmax(z @ self.weight_.T + self.bias_)
        return with_rejection(out, self.prototypes.predict(queries))


class ProtoMAML(MetaPrototypes):
    name = "meta-maml"
    default_inner_steps = 10
