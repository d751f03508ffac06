"""Episode sampling and an end-to-end evaluation on a small ImageFolder tree."""
from __future__ import annotations

import numpy as np

from conftest import write_image
from protoshelf.core.evaluate import EmbeddedTree, Image, evaluate_folder, sample_episode


def tree(categories: dict[str, int]) -> EmbeddedTree:
    images = [Image(c, f"{c}/{i}.png", row) for row, (c, i) in
              enumerate((c, i) for c, n in categories.items() for i in range(n))]
    return EmbeddedTree(images, np.zeros((len(images), 4), np.float32))


def test_support_items_are_never_queries():
    support_tree = tree({"a": 6, "b": 4, "c": 9})
    rng = np.random.default_rng(0)
    for _ in range(50):
        support, queries = sample_episode(support_tree, None, 3, rng)
        assert {im.category for im in support} == {"a", "b", "c"}
        assert all(sum(im.category == c for im in support) == 3 for c in "abc")
        assert not {im.relative for im in support} & {im.relative for im in queries}
        assert len(support) + len(queries) == 19


def test_query_tree_excludes_support_paths_and_unknown_categories():
    support_tree = tree({"a": 4, "b": 4})
    query_tree = tree({"a": 4, "b": 4, "z": 3})
    support, queries = sample_episode(support_tree, query_tree, 2, np.random.default_rng(1))
    assert len(queries) == 4
    assert not {im.relative for im in support} & {im.relative for im in queries}
    assert {im.category for im in queries} <= {"a", "b"}


def test_episodes_differ_but_a_seed_reproduces_them():
    support_tree = tree({"a": 10, "b": 10})
    draw = lambda seed: [im.relative for im in sample_episode(support_tree, None, 2, np.random.default_rng(seed))[0]]  # noqa: E731
    assert draw(5) == draw(5)
    assert draw(5) != draw(6)


def test_evaluate_separates_distinct_categories(tmp_path):
    colours = {"reds": (220, 30, 30), "greens": (30, 200, 40), "blues": (30, 40, 220)}
    for name, colour in colours.items():
        for i in range(5):
            shade = tuple(max(0, c - 15 * i) for c in colour)
            write_image(tmp_path / "tree" / name / f"{i}.png", colour=shade, size=(48, 48))
    result = evaluate_folder(tmp_path / "tree", shots=1, episodes=5, cache=tmp_path / "cache.sqlite", device="cpu")
    assert result.ways == 3 and result.shots == 1 and result.episodes == 5
    assert result.accuracy > 0.9
    assert set(result.per_category) == set(colours)
    again = evaluate_folder(tmp_path / "tree", shots=1, episodes=5, cache=tmp_path / "cache.sqlite", device="cpu")
    assert again == result
