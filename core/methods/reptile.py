"""Reptile (Nichol et al., 2018): first-order meta-learning of Proto-MAML's projection.

The same module, head and adaptation step as `meta-maml` and the same meta-training loop; only
the meta-step differs. Instead of back-propagating through the inner steps (second order), each
task trains a copy of the projection with a few plain SGD steps on the task, and the projection
then moves toward where that copy ended: cheaper per episode, and no graph through the head.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from protoshelf.core.methods.episodes import Task
from protoshelf.core.methods.meta import MetaAdapter, ProtoMAML


class Reptile(ProtoMAML):
    name = "reptile"
    description = ("Like meta-maml, learns from your other categories which features tell products apart, "
                   "with a cheaper first-order training (Reptile).")
    task_steps = 5
    task_lr = 0.1

    def meta_step(self, module: MetaAdapter, x: torch.Tensor, task: Task, optimiser: torch.optim.Optimizer) -> float:
        """SGD on a copy of the task's loss, then an Adam step along (adapted − start)."""
        start = [p.detach().clone() for p in module.parameters()]
        inner = torch.optim.SGD(module.parameters(), lr=self.task_lr)
        module.train()
        for _ in range(self.task_steps):
            loss = F.cross_entropy(self.task_logits(module, x, task, train=False), torch.as_tensor(task.q_y))
            inner.zero_grad()
            loss.backward()
            inner.step()
        with torch.no_grad():
            for p, s in zip(module.parameters(), start):
                p.grad = s - p
                p.copy_(s)
        optimiser.step()
        return loss.item()
