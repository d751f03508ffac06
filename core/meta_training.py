"""Meta-training on a catalog's own labelled categories, for the app.

A meta-learner's learned part depends on the categories it learned from, not on which items carry
which label, so the app meta-trains once per category set (per backbone and method) in the
background and hands the result to every refit (`make_method(..., meta_states=...)`); adding an
example to an existing category refits in milliseconds, while a new or removed category starts a
new meta-training and the refits use the previous result (or the untrained start, plain
prototypes for most) until it is done. One state per modality: image and title vectors differ.
"""
from __future__ import annotations

import numpy as np

from protoshelf.core.fusion import ModalFeatures
from protoshelf.core.methods import MetaTrained, make_meta_learner
from protoshelf.core.progress import Progress, no_progress
from protoshelf.core.store import Store
from protoshelf.core.text import TEXT_EMBEDDING


def category_set_key(backbone: str, method: str, labels: dict[int, int]) -> tuple:
    """What a cached meta-training is valid for."""
    return backbone, method, frozenset(labels.values())


def meta_train_catalog(
    store: Store, backbone: str, method: str, labels: dict[int, int], progress: Progress = no_progress
) -> tuple[MetaTrained, ...]:
    """Meta-train `method` on the labelled items, once per modality the catalog has vectors for."""
    learner = make_meta_learner(method)
    item_ids = np.array(sorted(labels), np.int64)
    vectors = {"image": store.load_embeddings(backbone), "text": store.load_embeddings(TEXT_EMBEDDING)}
    features = ModalFeatures.align(item_ids, vectors)
    modalities = features.modalities
    states = []
    for index, modality in enumerate(modalities):
        categories = [labels[int(item_ids[row])] for row in features.rows[modality]]

        def report(done: int, total: int, index: int = index) -> None:
            progress(index * total + done, len(modalities) * total)

        states.append(learner.meta_train(features.matrices[modality], categories, report))
    return tuple(states)


def states_for_fit(method: str, features: ModalFeatures, states: tuple[MetaTrained, ...] = ()) -> tuple[MetaTrained, ...]:
    """`states`, plus the untrained start (what meta-training begins from) for each modality they do
    not cover: what refits use until meta-training is done, so a refit never meta-trains itself."""
    learner = make_meta_learner(method)
    have = {state.dim for state in states}
    dims = dict.fromkeys(features.matrices[m].shape[1] for m in features.modalities)
    return tuple(states) + tuple(learner.untrained(dim) for dim in dims if dim not in have)
