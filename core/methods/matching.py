"""Matching Networks (Vinyals et al., 2016): attention over every support example.

A query's class distribution is the softmax of its scaled cosine similarity to each support
example, summed per class; here each class's sum is divided by its number of examples, so a
category with fifty examples does not outvote one with two (the catalog is rarely balanced).
Full-context embeddings, simplified: each support example is shifted by a learned per-feature
share of what the other support examples attend to (a set-aware transformation, started at zero),
and queries and support share a learned per-feature gain; both, and the similarity scale, are
meta-trained on other categories. Untrained, it is a nearest-neighbour kernel on the support.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from protoshelf.core.methods.episodes import EpisodicMetaLearner, Task
from protoshelf.core.methods.meta import ResidualProjection


class MatchingModule(nn.Module):
    def __init__(self, dim: int, scale: float):
        super().__init__()
        self.projection = ResidualProjection(dim)
        self.context_share = nn.Parameter(torch.zeros(dim))
        self.log_scale = nn.Parameter(torch.tensor(math.log(scale)))

    def support(self, x: torch.Tensor) -> torch.Tensor:
        """Support embeddings that depend on the whole support set."""
        z = self.projection(x)
        attention = torch.softmax(z @ z.T * self.log_scale.exp(), dim=1)
        return F.normalize(z + self.context_share * (attention @ z), dim=-1)

    def logits(self, z_query: torch.Tensor, z_support: torch.Tensor, y: torch.Tensor, classes: int) -> torch.Tensor:
        """log Σ_{j in class} exp(s·cos(q, s_j)) − log n_class: balanced attention, as logits."""
        similarity = self.projection(z_query) @ z_support.T * self.log_scale.exp()
        members = F.one_hot(y, classes).to(similarity.dtype)
        shift = similarity.max(dim=1, keepdim=True).values.detach()
        return torch.log(torch.exp(similarity - shift) @ members + 1e-30) + shift - torch.log(members.sum(dim=0))


class MatchingNetworks(EpisodicMetaLearner):
    name = "matching"
    description = ("Compares an item with every example, not with category averages (Matching Networks); "
                   "can help when a category's examples look unlike each other.")

    def new_module(self, dim: int) -> MatchingModule:
        return MatchingModule(dim, self.scale)

    def task_logits(self, module: MatchingModule, x: torch.Tensor, task: Task, train: bool) -> torch.Tensor:
        y = torch.as_tensor(task.s_y)
        return module.logits(x[task.q_rows], module.support(x[task.s_rows]), y, int(y.max()) + 1)

    def fit_head(self, module: MatchingModule, x: torch.Tensor, y: torch.Tensor) -> None:
        with torch.no_grad():
            self.support_, self.support_y_ = module.support(x), y

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.meta_trained_.module.logits(x, self.support_, self.support_y_, len(self.classes_))
