"""The embedding methods learn: separable data is solved, losses fall, rare classes survive, the
"none of these" remainder stays, and a progress callback can cancel a fit."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from protoshelf.core.methods import (
    METHODS, feature_method_names, is_backbone_adapter, make_method, recommended_method, resolve_method,
)
from protoshelf.core.methods.linear_probe import ONE_SHOT_PENALTY, PENALTIES, LinearProbe, train_head
from protoshelf.core.methods.meta import ProtoMAML
from protoshelf.core.methods.transductive import TransductivePrototypes
from protoshelf.core.progress import Cancelled

FAST = {name: {"episodes": 20} for name in ("meta-maml", "matching", "relation", "reptile")}


def blobs(classes=5, per_class=10, dim=32, spread=0.3, seed=0, centres=None):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim)) if centres is None else centres
    labels = np.repeat(np.arange(classes), per_class)
    return (centres[labels] + spread * rng.normal(size=(len(labels), dim))).astype(np.float32), labels, centres


@pytest.mark.parametrize("method", feature_method_names())
def test_every_method_solves_a_separable_toy_set(method):
    support, labels, centres = blobs(per_class=5)
    queries, truth, _ = blobs(per_class=40, seed=1, centres=centres)
    model = make_method(method, **FAST.get(method, {})).fit(support, [f"c{i}" for i in labels], unlabelled=queries)
    scores = model.predict(queries)
    assert scores.shape == (len(queries), 5)
    assert np.all(scores >= 0) and np.all(scores.sum(axis=1) <= 1 + 1e-5)
    assert (model.classes_[scores.argmax(axis=1)] == np.array([f"c{i}" for i in truth], dtype=object)).mean() >= 0.99


@pytest.mark.parametrize("method", feature_method_names())
def test_imbalanced_shots_do_not_collapse_onto_the_big_class(method):
    """Thirty examples of one class and two of another: the rare class must still be predicted."""
    rng = np.random.default_rng(3)
    centres = np.stack([np.ones(16), np.ones(16)]) + 0.9 * rng.normal(size=(2, 16))
    big, _, _ = blobs(1, 30, 16, spread=0.8, seed=4, centres=centres[:1])
    small, _, _ = blobs(1, 2, 16, spread=0.8, seed=5, centres=centres[1:])
    support = np.concatenate([big, small])
    labels = ["big"] * 30 + ["small"] * 2
    queries, truth, _ = blobs(2, 100, 16, spread=0.8, seed=6, centres=centres)
    model = make_method(method, **FAST.get(method, {})).fit(support, labels, unlabelled=queries)
    predicted = model.classes_[model.predict(queries).argmax(axis=1)]
    small_recall = (predicted[truth == 1] == "small").mean()
    big_recall = (predicted[truth == 0] == "big").mean()
    assert small_recall >= 0.7 and big_recall >= 0.7, (small_recall, big_recall)


@pytest.mark.parametrize("method", feature_method_names())
def test_far_away_items_keep_a_none_of_these_remainder(method):
    """Strangers live in dimensions no category uses."""
    support, labels, _ = blobs(per_class=3, dim=32)
    support = np.pad(support, ((0, 0), (0, 32)))
    stranger = np.pad(np.random.default_rng(9).normal(size=(5, 32)).astype(np.float32) * 10, ((0, 0), (32, 0)))
    model = make_method(method, **FAST.get(method, {})).fit(support, labels, unlabelled=support)
    assert model.predict(stranger).sum(axis=1).max() < 0.5
    assert model.predict(support).sum(axis=1).min() > 0.9


def test_linear_probe_loss_goes_down_and_beats_its_start_on_noisy_shots():
    rng = np.random.default_rng(0)
    x = torch.nn.functional.normalize(torch.from_numpy(rng.normal(size=(40, 16)).astype(np.float32)), dim=1)
    y = torch.arange(4).repeat(10)
    weight, bias, losses = train_head(x, y, torch.zeros(4, 16), penalty=1e-3, iterations=30)
    assert losses[-1] < 0.5 * losses[0]
    assert (torch.argmax(x @ weight.T + bias, dim=1) == y).float().mean() > 0.8


def test_linear_probe_chooses_its_penalty_on_held_out_shots():
    support, labels, _ = blobs(per_class=5)
    assert LinearProbe().fit(support, labels).penalty_ in PENALTIES
    one_shot, one_label, _ = blobs(per_class=1)
    assert LinearProbe().fit(one_shot, one_label).penalty_ == ONE_SHOT_PENALTY


def test_linear_probe_feature_augmentation_adds_noisy_copies(monkeypatch):
    support, labels, _ = blobs(per_class=2)
    pool, _, _ = blobs(per_class=20, seed=2)
    x, y = LinearProbe(augment=4).augmented(support, labels, pool, np.random.default_rng(0))
    assert len(x) == len(y) == 5 * len(support)
    np.testing.assert_array_equal(x[: len(support)], support)
    np.testing.assert_array_equal(y, np.concatenate([labels, np.repeat(labels, 4)]))
    noise = x[len(support):] - np.repeat(support, 4, axis=0)
    assert (np.linalg.norm(noise, axis=1) > 0).all()
    assert np.linalg.norm(noise, axis=1).mean() < 0.5 * np.linalg.norm(support, axis=1).mean()

    import protoshelf.core.methods.linear_probe as linear_probe

    trained_on = []
    real_train_head = linear_probe.train_head
    monkeypatch.setattr(linear_probe, "train_head", lambda x, *a, **k: trained_on.append(len(x)) or real_train_head(x, *a, **k))
    model = LinearProbe(augment=4).fit(support, labels, unlabelled=pool)
    assert trained_on[-1] == 5 * len(support)  # the final head is trained on the support and its copies
    assert len(model.losses_) and (model.classes_[model.predict(support).argmax(axis=1)] == labels).all()
    LinearProbe().fit(support, labels, unlabelled=pool)
    assert trained_on[-1] == len(support)


def ring(angles_deg, per_class, spread, seed):
    """Classes on a circle (in 8 dimensions), so a style shift can be a rotation."""
    rng = np.random.default_rng(seed)
    angles = np.deg2rad(np.repeat(angles_deg, per_class))
    x = np.zeros((len(angles), 8))
    x[:, 0], x[:, 1] = np.cos(angles), np.sin(angles)
    return (x + spread * rng.normal(size=x.shape)).astype(np.float32), np.repeat(np.arange(len(angles_deg)), per_class)


def test_transductive_refinement_follows_a_shifted_catalog():
    """Support in one "style", the catalog rotated 25° toward the next class: refined prototypes
    follow the catalog; plain prototypes put the boundary through it."""
    classes = np.arange(6) * 60.0
    support, labels = ring(classes, 1, 0.0, seed=1)
    catalog, truth = ring(classes + 25, 60, 0.1, seed=2)

    def accuracy(model):
        model.fit(support, labels, unlabelled=catalog)
        return (model.predict(catalog).argmax(axis=1) == truth).mean()

    plain = accuracy(make_method("prototypes"))
    refined = accuracy(TransductivePrototypes())
    assert plain < 0.85 and refined > 0.97, (plain, refined)


def test_recommended_method_depends_on_shots():
    few, many = recommended_method(1), recommended_method(10)
    assert {few, many} <= set(METHODS) and few != many
    picks = [recommended_method(shots) for shots in range(1, 21)]
    assert picks == sorted(picks, key=[few, many].index)  # one switch, from the few-shot method to the other
    assert resolve_method("auto", 1) == few and resolve_method("auto", 10) == many
    assert resolve_method("prototypes", 1) == resolve_method("prototypes", 10) == "prototypes"


def test_auto_never_fine_tunes_since_it_was_not_measured_to_help():
    """benchmarks/finetune_when.py found no shot count where fine-tuning first improved auto's pick."""
    assert not any(is_backbone_adapter(recommended_method(shots)) for shots in range(0, 101))
    assert not any(is_backbone_adapter(resolve_method("auto", shots)) for shots in range(0, 101))


@pytest.mark.parametrize("method", ["linear-probe", "transductive", "meta-maml", "matching", "relation", "reptile"])
def test_a_fit_can_be_cancelled_from_its_progress_callback(method):
    support, labels, _ = blobs(per_class=5)
    calls = []

    def cancel(done, total):
        calls.append(done)
        raise Cancelled

    with pytest.raises(Cancelled):
        make_method(method, **FAST.get(method, {})).fit(support, labels, unlabelled=support, progress=cancel)
    assert calls == [1]


def test_proto_maml_inner_steps_lower_the_support_loss():
    support, labels, _ = blobs(per_class=5, spread=1.5)
    x = torch.nn.functional.normalize(torch.from_numpy(support), dim=1)
    y = torch.from_numpy(labels)
    before = ProtoMAML(inner_steps=0)
    after = ProtoMAML(inner_steps=10)

    def loss(model):
        weight, bias = model.head(model.untrained(x.shape[1]).module, x, y, 5)
        return torch.nn.functional.cross_entropy(x @ weight.T + bias, y).item()

    assert loss(after) < loss(before)
