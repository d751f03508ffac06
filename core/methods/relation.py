"""Relation Network (Sung et al., 2018): a small learned module scores how well a query relates
to each category.

The relation score of a query q and a category's prototype p (both projected, unit length) is the
prototypes' own scaled cosine plus a small MLP on the difference and product of the two, taken in
a learned low-dimensional space (so a million items × categories stays cheap). The MLP's last
layer starts at zero, so the untrained network is plain prototypes; meta-training on the
catalog's other categories (episodes.py) teaches it which relations mean "same category".
Scores are a softmax over the relations, with the prototypes' "none of these" share like every
other method.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from protoshelf.core.methods.episodes import EpisodicMetaLearner, Task
from protoshelf.core.methods.heads import class_means
from protoshelf.core.methods.meta import ResidualProjection


class RelationModule(nn.Module):
    def __init__(self, dim: int, scale: float, width: int = 64, hidden: int = 64):
        super().__init__()
        self.projection = ResidualProjection(dim)
        self.reduce = nn.Linear(dim, width, bias=False)
        self.relation = nn.Sequential(nn.Linear(2 * width, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        nn.init.zeros_(self.relation[-1].weight)
        nn.init.zeros_(self.relation[-1].bias)
        self.log_scale = nn.Parameter(torch.tensor(math.log(scale)))

    def scores(self, z_query: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
        """Relation logits (queries × categories) of projected queries and prototypes."""
        cosine = z_query @ prototypes.T * self.log_scale.exp()
        q, p = self.reduce(z_query)[:, None, :], self.reduce(prototypes)[None, :, :]
        pairs = torch.cat([(q - p).abs(), q * p], dim=-1)
        return cosine + self.relation(pairs).squeeze(-1)


class RelationNetwork(EpisodicMetaLearner):
    name = "relation"
    description = ("A small network, trained on your other categories, judges how well an item matches "
                   "each category (Relation Network).")

    def __init__(self, *, lr: float = 3e-3, **episodic):
        super().__init__(lr=lr, **episodic)

    def new_module(self, dim: int) -> RelationModule:
        return RelationModule(dim, self.scale)

    def task_logits(self, module: RelationModule, x: torch.Tensor, task: Task, train: bool) -> torch.Tensor:
        y = torch.as_tensor(task.s_y)
        prototypes = class_means(module.projection(x[task.s_rows]), y, int(y.max()) + 1)
        return module.scores(module.projection(x[task.q_rows]), prototypes)

    def fit_head(self, module: RelationModule, x: torch.Tensor, y: torch.Tensor) -> None:
        with torch.no_grad():
            self.class_features_ = class_means(module.projection(x), y, len(self.classes_))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        module = self.meta_trained_.module
        return module.scores(module.projection(x), self.class_features_)
