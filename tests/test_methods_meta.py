"""Meta-learning from other categories: it must learn what separates categories in general (here:
which features are noise) and carry that to categories it never saw."""
from __future__ import annotations

import numpy as np
import pytest

from core.methods import make_method
from core.methods.meta import MetaPrototypes, ProtoMAML
from core.progress import Cancelled

SIGNAL, NOISE = 8, 56


def categories(count, per_class, seed):
    """Categories differ in the first SIGNAL features only; the other NOISE features are loud noise."""
    rng = np.random.default_rng(seed)
    centres = np.concatenate([rng.normal(size=(count, SIGNAL)), np.zeros((count, NOISE))], axis=1)
    labels = np.repeat(np.arange(count), per_class)
    noise = np.concatenate([0.3 * rng.normal(size=(len(labels), SIGNAL)), 1.5 * rng.normal(size=(len(labels), NOISE))], axis=1)
    return (centres[labels] + noise).astype(np.float32), labels


def one_shot_accuracy(method, params, episodes=10):
    hits = []
    for seed in range(episodes):
        x, y = categories(5, 21, seed=100 + seed)
        support_rows = np.arange(0, len(y), 21)
        query_rows = np.setdiff1d(np.arange(len(y)), support_rows)
        model = make_method(method, **params).fit(x[support_rows], y[support_rows], unlabelled=x)
        hits.append((model.classes_[model.predict(x[query_rows]).argmax(axis=1)] == y[query_rows]).mean())
    return float(np.mean(hits))


@pytest.fixture(scope="module")
def trained():
    """A meta-maml adapter meta-trained on 30 other categories."""
    x, y = categories(30, 12, seed=0)
    model = ProtoMAML(episodes=150)
    return model, model.meta_train(x, [f"other-{c}" for c in y])


def test_meta_training_learns_to_ignore_noise_features_and_it_transfers(trained):
    model, params = trained
    gain = model.adapter.projection.log_gain.exp().detach().numpy()
    assert gain[:SIGNAL].mean() > 1.2 * gain[SIGNAL:].mean()
    assert model.meta_history_[-1][1] >= model.meta_history_[0][1]
    assert max(a for _, a in model.meta_history_) > model.meta_history_[0][1]
    plain = one_shot_accuracy("prototypes", {})
    meta = one_shot_accuracy("meta-maml", params)
    assert meta > plain + 0.1, (plain, meta)


def test_meta_train_returns_state_that_fresh_copies_start_from(trained):
    model, params = trained
    copy = make_method("meta-maml", **params)
    x, y = categories(4, 3, seed=7)
    copy.fit(x, y)
    assert copy.adapter is model.adapter
    assert copy.predict(x).shape == (12, 4)


def test_without_other_categories_fit_meta_trains_on_the_support_itself():
    x, y = categories(10, 6, seed=3)
    model = ProtoMAML(episodes=30).fit(x, y)
    assert model.adapter is not None and len(model.meta_history_) >= 2


def test_one_shot_support_leaves_the_adapter_at_identity():
    x, y = categories(4, 1, seed=3)
    model = MetaPrototypes().fit(x, y)
    assert model.meta_history_ == []
    assert np.allclose(model.adapter.projection.log_gain.detach().numpy(), 0)
    plain = make_method("prototypes").fit(x, y)
    assert (model.predict(x).argmax(axis=1) == plain.predict(x).argmax(axis=1)).all()


def test_meta_training_can_be_cancelled():
    x, y = categories(10, 6, seed=3)

    def cancel(done, total):
        if done >= 3:
            raise Cancelled

    with pytest.raises(Cancelled):
        ProtoMAML(episodes=50).meta_train(x, y, progress=cancel)


def test_an_adapter_for_other_features_is_refused(trained):
    _, params = trained
    with pytest.raises(ValueError, match="dimension"):
        make_method("meta-maml", **params).fit(np.ones((2, 3), np.float32), [0, 1])
