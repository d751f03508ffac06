"""Learning from the catalog's own labels on the `jobs` lane: what meta-learners learn per set of
categories, and the one-off backbone adapters (fine-tuning).

A meta-learner's state depends on which categories it learned from, not on which items carry
them (core/meta_training.py), so it is trained once per category set and kept: more examples in
existing categories refit in milliseconds, a new or removed category starts a new meta-training,
and until it finishes the refits use the last state learned (or none: the untrained start).
"""
from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from protoshelf.gui import jobs
from protoshelf.gui.workers import Task, TaskKind

if TYPE_CHECKING:
    from protoshelf.core.methods import MetaTrained
    from protoshelf.gui.session import CatalogSession


class Training:
    def __init__(self, session: CatalogSession):
        self.session = session
        self._meta_states: dict[tuple, tuple[MetaTrained, ...]] = {}
        """By category_set_key, and the latest per ("latest", backbone, method)."""

    def latest(self, backbone: str, method: str) -> tuple[MetaTrained, ...]:
        """The meta-learner's state learned last for this catalog (empty: untrained)."""
        return self._meta_states.get(("latest", backbone, method), ())

    def meta_states_for_fit(self) -> tuple[MetaTrained, ...]:
        """The session's meta-learner's state for the current category set, training it in the
        background when missing; until then the latest one."""
        from protoshelf.core.meta_training import category_set_key

        session = self.session
        key = category_set_key(session.backbone, session.method, session.labels)
        if key in self._meta_states or not session.labels:
            return self._meta_states.get(key, ())
        running = (t for t in session.jobs.pending if t.kind == TaskKind.META_TRAIN and not t.cancel_requested)
        if not any(category_set_key(*t.args) == key for t in running):
            session.jobs.cancel(TaskKind.META_TRAIN)
            backbone, method, labels = session.backbone, session.method, dict(session.labels)
            session.jobs.run(
                "Learning from your categories", jobs.meta_train, backbone, method, labels, kind=TaskKind.META_TRAIN,
                on_success=partial(self._meta_trained, key, backbone, method), failure_title="Meta-training failed",
                on_cancel=partial(self._meta_training_cancelled, key, backbone, method),
            )
        return self.latest(session.backbone, session.method)

    def _meta_training_cancelled(self, key: tuple, backbone: str, method: str) -> None:
        from protoshelf.core.meta_training import category_set_key

        session = self.session
        if key == category_set_key(session.backbone, session.method, session.labels):
            self._meta_states[key] = self.latest(backbone, method)
            session.notice.emit(f"{method}: learning from your categories cancelled; it starts again when they change.")

    def _meta_trained(self, key: tuple, backbone: str, method: str, states: tuple[MetaTrained, ...]) -> None:
        self._meta_states[key] = self._meta_states[("latest", backbone, method)] = states
        if (backbone, method) == (self.session.backbone, self.session.method):
            self.session.schedule_fit(now=True)

    def adapt_backbone(self, method: str) -> Task | None:
        """Train the current backbone on the labels with a backbone adapter, then classify with the
        result; the pretrained embeddings stay, so choosing that backbone again switches back."""
        session = self.session
        if not session.labels:
            session.notice.emit(f"Label a few examples before running {method}.")
            return None
        return session.jobs.run(
            f"Training the backbone ({method})", jobs.adapt_backbone, method, session.backbone, session.device,
            kind=TaskKind.BACKBONE, on_success=partial(self._backbone_adapted, method), failure_title=f"{method} failed",
            on_cancel=partial(session.notice.emit, f"{method} cancelled; the classifier keeps its backbone."),
        )

    def _backbone_adapted(self, method: str, backbone: str) -> None:
        session = self.session
        if backbone == session.backbone:
            session.notice.emit(f"{method} did not beat the pretrained weights on held-out examples; keeping {backbone}.")
            return
        session.backbone = backbone
        session.backbone_changed.emit(backbone)
        session.notice.emit(f"{method}: now classifying with {backbone}.")
        session.schedule_fit(now=True)
