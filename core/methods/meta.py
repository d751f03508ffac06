"""Proto-MAML: a projection and a prototype head's adaptation step, meta-learned from the
catalog's own labelled categories.

`meta_train` (the shared loop of episodes.py) trains a projection of the centred, unit-length
features, a per-feature gain plus an optional low-rank residual, so that classifying each task's
queries works after the adaptation step: the linear head starts at the prototypes in the projected
space and takes a few gradient steps on the support set; the projection and that step size are
meta-learned through those steps (second-order MAML, written plainly with `torch.autograd.grad`).
Plain `MetaPrototypes` (no inner steps) is not registered as a method: on benchmarks/methods.py it
never beat prototypes beyond noise, and neither did a low-rank residual.

Without an adopted meta-trained state, `fit` meta-trains on the support set itself (the
categories with two or more examples); `protoshelf evaluate --meta-train FOLDER` instead
meta-trains once on other categories, and the app once per category set.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from protoshelf.core.methods.episodes import EpisodicMetaLearner, Task
from protoshelf.core.methods.heads import balanced_class_weights, class_means


class ResidualProjection(nn.Module):
    """(g ⊙ x) + B·A·x, unit length: a per-feature gain and a low-rank residual.

    The gain starts at one and B at zero, so the projection starts as the identity.
    """

    def __init__(self, dim: int, rank: int = 0, dropout: float = 0.1):
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


class MetaPrototypes(EpisodicMetaLearner):
    name = "meta-protonet"
    description = "Prototypes in a feature space learned from your other categories."
    default_inner_steps = 0

    def __init__(
        self,
        rank: int = 0,
        inner_steps: int | None = None,
        inner_lr: float = 100.0,
        dropout: float = 0.1,
        **episodic,
    ):
        super().__init__(**episodic)
        self.rank = rank
        self.inner_steps = self.default_inner_steps if inner_steps is None else inner_steps
        self.inner_lr = inner_lr
        self.dropout = dropout

    def new_module(self, dim: int) -> MetaAdapter:
        return MetaAdapter(dim, self.rank, self.dropout, self.inner_lr)

    def head(
        self, adapter: MetaAdapter, z_support: torch.Tensor, y: torch.Tensor, classes: int, train: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A linear head started at the prototypes, then `inner_steps` balanced CE steps on the support."""
        weight = class_means(z_support, y, classes) * self.scale
        bias = torch.zeros(classes, requires_grad=True)
        if not self.inner_steps:
            return weight, bias
        if not weight.requires_grad:
            weight = weight.detach().requires_grad_(True)
        class_weights = balanced_class_weights(y, classes)
        step = adapter.log_inner_lr.exp()
        with torch.enable_grad():
            for _ in range(self.inner_steps):
                loss = F.cross_entropy(z_support @ weight.T + bias, y, weight=class_weights)
                g_weight, g_bias = torch.autograd.grad(loss, [weight, bias], create_graph=train)
                weight, bias = weight - step * g_weight, bias - step * g_bias
        return weight, bias

    def task_logits(self, module: MetaAdapter, x: torch.Tensor, task: Task, train: bool) -> torch.Tensor:
        z_support, z_query = module(x[task.s_rows]), module(x[task.q_rows])
        y = torch.as_tensor(task.s_y)
        weight, bias = self.head(module, z_support, y, int(y.max()) + 1, train)
        return z_query @ weight.T + bias

    def fit_head(self, module: MetaAdapter, x: torch.Tensor, y: torch.Tensor) -> None:
        with torch.no_grad():
            z = module(x)
        weight, bias = self.head(module, z, y, len(self.classes_))
        self.weight_, self.bias_ = weight.detach(), bias.detach()

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.meta_trained_.module(x) @ self.weight_.T + self.bias_


class ProtoMAML(MetaPrototypes):
    name = "meta-maml"
    description = ("Learns from your other categories which features tell products apart, then adapts "
                   "a head to each category's examples (Proto-MAML).")
    default_inner_steps = 10
