"""Label-next ranking: uncertainty maths on hand-made scores, near-copy skipping, the CLI."""
from __future__ import annotations

import numpy as np
import pytest

from protoshelf.core.classify import CatalogPredictions
from protoshelf.core.cli import main
from protoshelf.core.importer import import_images
from protoshelf.core.store import Vectors
from protoshelf.core.suggest import (
    BLOCK_FACTOR,
    Suggestion,
    distinct_picks,
    entropy_uncertainty,
    margin_uncertainty,
    rank_for_labelling,
    suggest,
    suggest_for_catalog,
    uncertainty,
)
from conftest import write_image


def unit(*rows) -> np.ndarray:
    matrix = np.array(rows, np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def test_margin_is_one_minus_the_gap_between_the_two_best_scores():
    scores = np.array([
        [0.90, 0.05, 0.01],   # sure
        [0.45, 0.44, 0.01],   # close call
        [0.10, 0.05, 0.02],   # stranger: nearer to "none" than to any category
        [0.30, 0.60, 0.05],   # best is not in the first column
    ])
    np.testing.assert_allclose(margin_uncertainty(scores), [0.15, 0.99, 0.95, 0.70], atol=1e-6)
    assert list(np.argsort(-margin_uncertainty(scores))) == [1, 2, 3, 0]


def test_margin_with_one_category_uses_its_score():
    np.testing.assert_allclose(margin_uncertainty(np.array([[0.9], [0.2]])), [0.1, 0.8])


def test_entropy_counts_the_none_remainder_and_is_scaled_to_one():
    scores = np.array([
        [1.0, 0.0, 0.0],          # certain
        [0.25, 0.25, 0.25],       # uniform over three categories and "none"
        [0.0, 0.0, 0.0],          # certainly none of these
        [0.5, 0.5, 0.0],          # two-way tie: log 2 / log 4
    ])
    np.testing.assert_allclose(entropy_uncertainty(scores), [0.0, 1.0, 0.0, 0.5], atol=1e-6)


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="margin"):
        uncertainty(np.zeros((1, 2)), "least-confidence")


def test_distinct_picks_skips_near_copies_of_picks_and_of_labelled_items():
    vectors = unit([1, 0, 0], [1, 0.05, 0], [0, 1, 0], [0, 0, 1], [0.02, 0, 1])
    assert distinct_picks(vectors, 5, near_copy=0.9) == [0, 2, 3]
    assert distinct_picks(vectors, 2, near_copy=0.9) == [0, 2]
    labelled = unit([0, 1, 0.01])
    assert distinct_picks(vectors, 5, near_copy=0.9, seen=labelled) == [0, 3]


def test_rank_for_labelling_orders_by_uncertainty_and_skips_excluded_rows():
    scores = np.array([[0.9, 0.1], [0.5, 0.49], [0.6, 0.3], [0.51, 0.48]])
    matrix = np.eye(4, dtype=np.float32)
    assert rank_for_labelling(scores, lambda rows: matrix[rows], 4) == [1, 3, 2, 0]
    excluded = np.array([False, True, False, False])
    assert rank_for_labelling(scores, lambda rows: matrix[rows], 2, excluded) == [3, 2]


def test_rank_for_labelling_replaces_near_copies_from_further_down():
    scores = np.array([[0.5, 0.5], [0.5, 0.49], [0.6, 0.3], [0.9, 0.1]])
    matrix = unit([1, 0], [1, 0.01], [0, 1], [1, 1])
    assert rank_for_labelling(scores, lambda rows: matrix[rows], 2, near_copy=0.95) == [0, 2]
    assert rank_for_labelling(scores, lambda rows: matrix[rows], 2, near_copy=None) == [0, 1]


def test_rank_for_labelling_fetches_vectors_of_candidates_only():
    rng = np.random.default_rng(0)
    scores = rng.dirichlet(np.ones(3), size=1000)
    matrix = rng.standard_normal((1000, 8)).astype(np.float32)
    fetched = []

    def vectors_of(rows):
        fetched.append(len(rows))
        return matrix[rows]

    picks = rank_for_labelling(scores, vectors_of, 2)
    assert picks == list(np.argsort(-margin_uncertainty(scores), kind="stable")[:2])
    assert fetched == [2 * BLOCK_FACTOR]


def hand_made(item_ids, scores, classes=(10, 20)) -> CatalogPredictions:
    scores = np.asarray(scores, np.float32)
    return CatalogPredictions(
        np.asarray(item_ids, np.int64), np.empty(0), np.empty(0), scores, np.asarray(classes, np.int64), "prototypes"
    )


def test_suggest_returns_items_with_reasons_and_leaves_labelled_items_out():
    predictions = hand_made([5, 6, 7, 8], [[0.9, 0.05], [0.46, 0.44], [0.05, 0.02], [0.3, 0.6]])
    vectors = Vectors(np.array([5, 6, 7, 8]), np.eye(4, dtype=np.float32))
    picked = suggest(predictions, vectors, n=3, labelled=[6])
    assert [s.item_id for s in picked] == [7, 8, 5]
    names = {10: "Shoes", 20: "Boots"}
    assert picked[0].unfamiliar
    assert picked[0].reason(names) == "unlike every category (closest: Shoes 5%)"
    assert picked[1] == Suggestion(8, 20, pytest.approx(0.6), 10, pytest.approx(0.3), pytest.approx(0.1), 0.7)
    assert picked[1].reason(names) == "torn between Boots 60% and Shoes 30%"


def test_suggest_skips_a_near_copy_of_a_labelled_item_and_tolerates_items_without_vectors():
    predictions = hand_made([1, 2, 3, 4], [[0.5, 0.5], [0.45, 0.44], [0.6, 0.3], [0.8, 0.1]])
    # item 1 looks like labelled item 9; item 3 has no image vector (say, a title-only item)
    vectors = Vectors(np.array([1, 2, 4, 9]), unit([1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0.01, 0]))
    assert [s.item_id for s in suggest(predictions, vectors, n=3, labelled=[9])] == [2, 3, 4]
    assert [s.item_id for s in suggest(predictions, vectors, n=2, labelled=[9], near_copy=None)] == [1, 2]


def test_suggest_for_catalog_and_cli_on_a_real_store(store, tmp_path, capsys):
    paths = [write_image(tmp_path / f"p{i}.png", colour=(40 * i, 90, 200 - 30 * i)) for i in range(6)]
    item_ids = import_images(store, paths).item_ids
    rng = np.random.default_rng(0)
    store.save_embeddings("toy", item_ids, rng.standard_normal((6, 16)).astype(np.float32))
    shoes, boots = store.create_category("Shoes"), store.create_category("Boots")
    store.set_labels(item_ids[:1], shoes)
    store.set_labels(item_ids[1:2], boots)

    picked = suggest_for_catalog(store, "toy", n=10)
    assert sorted(s.item_id for s in picked) == sorted(item_ids[2:])
    assert all(s.category_id in (shoes, boots) for s in picked)

    assert main(["suggest", "-n", "2", "--backbone", "toy", "--db", str(store.path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("rank") and len(lines) == 3
    assert str(picked[0].item_id) in lines[1] and ("torn between" in lines[1] or "unlike every" in lines[1])


def test_cli_suggest_without_labels_says_what_to_do(store, capsys):
    assert main(["suggest", "--db", str(store.path)]) == 1
    assert "label a few" in capsys.readouterr().err
