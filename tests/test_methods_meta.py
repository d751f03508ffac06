"""Meta-learning from other categories: each meta-learner must learn what separates categories in
general (here: which features are noise), lower the loss on held-out categories' episodes, and
carry that to categories it never saw."""
from __future__ import annotations

import numpy as np
import pytest

from protoshelf.core.methods import METHODS, MetaLearner, MetaTrained, make_method
from protoshelf.core.methods.meta import MetaPrototypes, ProtoMAML
from protoshelf.core.progress import Cancelled

SIGNAL, NOISE = 8, 56
META_LEARNERS = sorted(name for name, cls in METHODS.items() if issubclass(cls, MetaLearner))


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
    """Each meta-learner meta-trained on 30 other categories."""
    x, y = categories(30, 12, seed=0)
    return {name: make_method(name, episodes=150).meta_train(x, [f"other-{c}" for c in y]) for name in META_LEARNERS}


def test_the_registry_has_the_meta_learners_of_the_literature():
    assert {"meta-maml", "matching", "relation", "reptile"} <= set(META_LEARNERS)


@pytest.mark.slow
@pytest.mark.parametrize("method", META_LEARNERS)
def test_meta_training_lowers_held_out_episode_loss_and_it_transfers(trained, method):
    state = trained[method]
    start_loss, best_loss = state.history[0][2], min(loss for _, _, loss in state.history)
    assert best_loss < 0.9 * start_loss, state.history
    plain = one_shot_accuracy("prototypes", {})
    meta = one_shot_accuracy(method, {"meta_states": (state,)})
    assert meta > plain + 0.05, (plain, meta)


@pytest.mark.slow
def test_proto_maml_learns_to_ignore_noise_features(trained):
    gain = trained["meta-maml"].module.projection.log_gain.exp().numpy()
    assert gain[:SIGNAL].mean() > 1.2 * gain[SIGNAL:].mean()


@pytest.mark.slow
@pytest.mark.parametrize("method", META_LEARNERS)
def test_fresh_copies_start_from_the_adopted_state_and_a_refit_keeps_it(trained, method):
    state = trained[method]
    model = make_method(method, meta_states=(state,))
    x, y = categories(4, 3, seed=7)
    model.fit(x, y)
    assert model.meta_trained_ is state and model.predict(x).shape == (12, 4)
    model.fit(*categories(3, 2, seed=8))
    assert model.meta_trained_ is state


def test_without_an_adopted_state_each_fit_meta_trains_on_its_own_support():
    """The old smuggled adapter: a second fit on other data must not reuse the first fit's learning."""
    model = ProtoMAML(episodes=30)
    first = model.fit(*categories(10, 6, seed=3)).meta_trained_
    assert len(first.history) >= 2
    second = model.fit(*categories(10, 6, seed=4)).meta_trained_
    assert second is not first


@pytest.mark.parametrize("method", META_LEARNERS)
def test_untrained_start_is_nearly_as_good_as_prototypes(method):
    """What the app scores with while meta-training runs: no worse than a little below prototypes."""
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(6, 32))
    x = (np.repeat(centres, 4, axis=0) + 0.5 * rng.normal(size=(24, 32))).astype(np.float32)
    truth = np.repeat(np.arange(6), 30)
    queries = (centres[truth] + 0.5 * rng.normal(size=(len(truth), 32))).astype(np.float32)
    model = make_method(method)
    model.adopt(model.untrained(x.shape[1])).fit(x, np.repeat(np.arange(6), 4), unlabelled=queries)
    plain = make_method("prototypes").fit(x, np.repeat(np.arange(6), 4), unlabelled=queries)
    accuracy = (model.predict(queries).argmax(axis=1) == truth).mean()
    assert accuracy >= (plain.predict(queries).argmax(axis=1) == truth).mean() - 0.05 and accuracy > 0.9


def test_one_shot_support_leaves_the_adapter_at_identity():
    x, y = categories(4, 1, seed=3)
    model = MetaPrototypes().fit(x, y)
    assert model.meta_trained_.history == []
    assert np.allclose(model.meta_trained_.module.projection.log_gain.numpy(), 0)
    plain = make_method("prototypes").fit(x, y)
    assert (model.predict(x).argmax(axis=1) == plain.predict(x).argmax(axis=1)).all()


@pytest.mark.parametrize("method", META_LEARNERS)
def test_meta_training_reports_progress_and_can_be_cancelled(method):
    x, y = categories(10, 6, seed=3)
    seen = []

    def cancel(done, total):
        seen.append((done, total))
        if done >= 3:
            raise Cancelled

    with pytest.raises(Cancelled):
        make_method(method, episodes=50).meta_train(x, y, progress=cancel)
    assert seen == [(1, 50), (2, 50), (3, 50)]


@pytest.mark.slow
def test_a_state_for_other_features_or_another_method_is_refused(trained):
    with pytest.raises(ValueError, match="dimension"):
        make_method("meta-maml", meta_states=(trained["meta-maml"],)).fit(np.ones((2, 3), np.float32), [0, 1])
    with pytest.raises(ValueError, match="cannot use"):
        make_method("relation", meta_states=(trained["matching"],))
    assert isinstance(trained["relation"], MetaTrained)
