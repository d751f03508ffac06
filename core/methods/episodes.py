"""Episodic meta-training: one loop that every meta-learner shares.

A catalog that already has many labelled categories shows which directions of the features
separate products and which are noise. The loop samples N-way K-shot tasks (K varying from 1 to
`max_shots`, so one module serves any number of examples) from those categories and takes one
meta-step per task; each method says only what its module is, how it scores a task's queries, and
(Reptile) how it steps. A quarter of the categories (when there are eight or more) are held out:
validation tasks drawn from them are scored every `VALIDATE_EVERY` episodes, and the module kept is
the one with the lowest loss on them (then the best accuracy), the untrained start included, so
meta-training cannot make things worse than the start on categories it did not see. (Choosing by
accuracy instead kept relation modules whose 20-task accuracy ticked up by chance while their loss
rose: 1.8–5 points below prototypes on benchmarks/methods.py; by loss they stay at the start.) Every method's module starts as plain
prototypes (or close to them), so an untrained module is a sensible default while training runs.

Progress is reported once per episode: a cancelling callback stops the loop there.
"""
from __future__ import annotations

import copy
from abc import abstractmethod
from collections.abc import Hashable, Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from protoshelf.core.methods.base import MetaLearner, MetaTrained, encode_labels
from protoshelf.core.methods.heads import HeadOnPrototypes, single_threaded
from protoshelf.core.methods.prototypes import l2_normalise
from protoshelf.core.progress import Progress, no_progress

VALIDATION_SHARE = 0.25
VALIDATION_EPISODES = 20
VALIDATE_EVERY = 25


class Task(NamedTuple):
    """Rows of an N-way K-shot task and their task-local labels (0..N-1)."""

    s_rows: np.ndarray
    s_y: np.ndarray
    q_rows: np.ndarray
    q_y: np.ndarray


def sample_task(by_class: list[np.ndarray], ways: int, max_shots: int, queries: int, rng: np.random.Generator) -> Task:
    """An N-way K-shot task; K varies so one head serves 1 to max_shots."""
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
    return Task(np.array(s_rows), np.array(s_y), np.array(q_rows), np.array(q_y))


class EpisodicMetaLearner(HeadOnPrototypes, MetaLearner):
    """A meta-learner trained on episodes; its head is fitted on the support in the module's space."""

    def __init__(
        self,
        episodes: int = 100,
        ways: int = 20,
        max_shots: int = 10,
        queries: int = 5,
        lr: float = 1e-2,
        temperature: float = 0.1,
        reject_similarity: float | None = None,
        seed: int = 0,
    ):
        """Settings of the episodic loop and of the head every meta-learner shares."""
        self.episodes = episodes
        self.ways = ways
        self.max_shots = max_shots
        self.queries = queries
        self.lr = lr
        self.temperature = temperature
        self.reject_similarity = reject_similarity
        self.seed = seed

    @abstractmethod
    def new_module(self, dim: int) -> nn.Module:
        """The module meta-training learns, at its untrained start."""

    @abstractmethod
    def task_logits(self, module: nn.Module, x: torch.Tensor, task: Task, train: bool) -> torch.Tensor:
        """Logits of the task's queries over its classes, from its support."""

    @abstractmethod
    def fit_head(self, module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
        """Fit on the support's features (labels 0..n-1) with a meta-trained module."""

    def meta_step(self, module: nn.Module, x: torch.Tensor, task: Task, optimiser: torch.optim.Optimizer) -> float:
        """One step on one task: back-propagate the queries' cross-entropy."""
        module.train()
        loss = F.cross_entropy(self.task_logits(module, x, task, train=True), torch.as_tensor(task.q_y))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        return loss.item()

    def untrained(self, dim: int) -> MetaTrained:
        torch.manual_seed(self.seed)
        return MetaTrained(self.name, dim, self.new_module(dim).eval().requires_grad_(False))

    def meta_train(
        self, embeddings: np.ndarray, labels: Sequence[Hashable], progress: Progress = no_progress
    ) -> MetaTrained:
        with single_threaded():
            return self._meta_train(embeddings, labels, progress)

    def _meta_train(self, embeddings: np.ndarray, labels: Sequence[Hashable], progress: Progress) -> MetaTrained:
        rng = np.random.default_rng(self.seed)
        torch.manual_seed(self.seed)
        embeddings = np.asarray(embeddings, np.float32)
        _, y = encode_labels(labels)
        x = torch.from_numpy(l2_normalise(embeddings - embeddings.mean(axis=0)))
        by_class = [rows for rows in (np.flatnonzero(y == c) for c in range(y.max() + 1)) if len(rows) >= 2]
        module = self.new_module(x.shape[1])
        history: list[tuple[int, float, float]] = []
        if len(by_class) < 2:
            progress(1, 1)
            return MetaTrained(self.name, x.shape[1], module.eval().requires_grad_(False), history)
        order = rng.permutation(len(by_class))
        held = max(2, int(len(by_class) * VALIDATION_SHARE)) if len(by_class) >= 8 else 0
        validation = [by_class[i] for i in order[:held]]
        training = [by_class[i] for i in order[held:]]
        tasks = [sample_task(validation, self.ways, self.max_shots, self.queries, rng)
                 for _ in range(VALIDATION_EPISODES if validation else 0)]
        optimiser = torch.optim.Adam(module.parameters(), lr=self.lr)
        accuracy, loss = self.validate(module, x, tasks)
        history.append((0, accuracy, loss))
        best = ((-loss, accuracy), copy.deepcopy(module.state_dict()))
        for episode in range(1, self.episodes + 1):
            self.meta_step(module, x, sample_task(training, self.ways, self.max_shots, self.queries, rng), optimiser)
            if tasks and (episode % VALIDATE_EVERY == 0 or episode == self.episodes):
                accuracy, loss = self.validate(module, x, tasks)
                history.append((episode, accuracy, loss))
                if (-loss, accuracy) > best[0]:
                    best = ((-loss, accuracy), copy.deepcopy(module.state_dict()))
            progress(episode, self.episodes)
        if tasks:
            module.load_state_dict(best[1])
        return MetaTrained(self.name, x.shape[1], module.eval().requires_grad_(False), history)

    def validate(self, module: nn.Module, x: torch.Tensor, tasks: list[Task]) -> tuple[float, float]:
        """Accuracy and mean cross-entropy on held-out tasks."""
        if not tasks:
            return 0.0, 0.0
        module.eval()
        hits = total = 0
        losses = []
        with torch.no_grad():
            for task in tasks:
                logits = self.task_logits(module, x, task, train=False)
                hits += int((logits.argmax(dim=1).numpy() == task.q_y).sum())
                total += len(task.q_y)
                losses.append(float(F.cross_entropy(logits, torch.as_tensor(task.q_y))))
        return hits / max(total, 1), float(np.mean(losses))

    def learn(self, support: np.ndarray, y: np.ndarray, unlabelled: np.ndarray | None, progress: Progress) -> None:
        self.fit_prototypes(support, y, unlabelled)
        self.meta_trained_ = self.meta_state_for(support, y, progress)
        self.fit_head(self.meta_trained_.module, torch.from_numpy(self.features(support)), torch.from_numpy(y))
        progress(1, 1)
