"""Does labelling the suggested items teach the classifier faster than labelling random ones?

A simulated merchandiser starts with one labelled image per category of the Twemoji subcategory
tree (benchmarks/datasets.py), then in each round labels N more items with their true category:
either the N that protoshelf.core.suggest ranks first, or N random ones. After each round the default
method is refitted and its accuracy measured on a held-out 30% of the tree that is never
labelled, and on the catalog as the merchandiser sees it (the other 70%: labelled items count as
right, the rest as predicted). Curves are averaged over several seeds (splits, first labels).

Strategies: "random"; "margin" (most uncertain first, no diversity); "suggest" (what the app
and `protoshelf suggest` do: margin without near-copies); "entropy" (entropy, no near-copies);
"margin+MMR" (maximal marginal relevance trading margin for novelty, weight 0.3, kept here
as the alternative that was measured and rejected).

    python -m benchmarks.label_next [--rounds 10] [--per-round 20] [--seeds 10]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from protoshelf.core.backbones import DEFAULT_BACKBONE
from protoshelf.core.evaluate import default_cache_path, embed_tree
from protoshelf.core.methods import DEFAULT_METHOD, make_method
from protoshelf.core.store import Store
from protoshelf.core.similar import unit_rows
from protoshelf.core.suggest import NEAR_COPY, rank_for_labelling, uncertainty

STRATEGIES = ("random", "margin", "suggest", "entropy", "margin+MMR")
MMR_WEIGHT = 0.3


def load_tree(root: Path, backbone: str, device: str) -> tuple[np.ndarray, np.ndarray]:
    """Image embeddings (from the evaluation cache) and category names of an ImageFolder tree."""
    with Store(default_cache_path()) as store:
        tree = embed_tree(store, root, backbone, device, lambda done, total: None)
    features = tree.features
    matrix = np.empty((features.count, features.matrices["image"].shape[1]), np.float32)
    matrix[features.rows["image"]] = features.matrices["image"]
    order = [image.row for image in tree.images]
    return matrix[order], np.array([image.category for image in tree.images])


def split(labels: np.ndarray, test_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A stratified held-out mask, and one starting label per category outside it."""
    test = np.zeros(len(labels), bool)
    start = []
    for category in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == category))
        held = max(1, round(test_fraction * len(rows)))
        test[rows[:held]] = True
        start.append(rows[held])
    return test, np.array(start)


def mmr_picks(scores: np.ndarray, matrix: np.ndarray, n: int, unavailable: np.ndarray, labelled: np.ndarray) -> list[int]:
    """Greedy maximal marginal relevance among the 10·n most uncertain rows."""
    value = uncertainty(scores)
    pool = np.flatnonzero(~unavailable)
    pool = pool[np.argsort(-value[pool], kind="stable")[: 10 * n]]
    unit = unit_rows(matrix[pool])
    nearest = np.clip((unit @ unit_rows(matrix[labelled]).T).max(axis=1), 0, 1)
    picks = []
    for _ in range(min(n, len(pool))):
        gain = (1 - MMR_WEIGHT) * value[pool] + MMR_WEIGHT * (1 - nearest)
        gain[picks] = -np.inf
        best = int(np.argmax(gain))
        picks.append(best)
        nearest = np.maximum(nearest, unit @ unit[best])
    return [int(pool[p]) for p in picks]


def pick(strategy: str, scores, matrix, n, unavailable, labelled, rng) -> list[int]:
    if strategy == "random":
        return list(rng.choice(np.flatnonzero(~unavailable), n, replace=False))
    if strategy == "margin+MMR":
        return mmr_picks(scores, matrix, n, unavailable, labelled)
    measure = "entropy" if strategy == "entropy" else "margin"
    near_copy = None if strategy == "margin" else NEAR_COPY
    return rank_for_labelling(
        scores, lambda rows: matrix[rows], n, unavailable, measure, near_copy, seen=matrix[labelled]
    )


def curve(
    matrix: np.ndarray, labels: np.ndarray, test: np.ndarray, start: np.ndarray, strategy: str,
    rounds: int, per_round: int, rng: np.random.Generator,
) -> tuple[list[float], list[float]]:
    """Held-out accuracy and catalog accuracy after each round (round 0: the starting labels)."""
    labelled = np.zeros(len(labels), bool)
    labelled[start] = True
    held_out, catalog = [], []
    for round_number in range(rounds + 1):
        model = make_method(DEFAULT_METHOD).fit(matrix[labelled], labels[labelled], unlabelled=matrix)
        scores = model.predict(matrix)
        right = model.classes_[scores.argmax(axis=1)] == labels
        held_out.append(float(right[test].mean()))
        catalog.append(float((right | labelled)[~test].mean()))
        if round_number == rounds:
            break
        labelled[pick(strategy, scores, matrix, per_round, labelled | test, np.flatnonzero(labelled), rng)] = True
    return held_out, catalog


def print_table(title: str, table: dict[str, np.ndarray], categories: int, per_round: int) -> None:
    print(title)
    print(f"{'labels':>6}  " + "  ".join(f"{name:>15}" for name in STRATEGIES))
    for r in range(table["random"].shape[1]):
        cells = [f"{table[n][:, r].mean():6.1%} ± {table[n][:, r].std():4.1%}" for n in STRATEGIES]
        print(f"{categories + r * per_round:>6}  " + "  ".join(f"{c:>15}" for c in cells))
    for name in STRATEGIES[1:]:
        gain = (table[name] - table["random"]) * 100
        reached = np.flatnonzero(table[name].mean(axis=0) >= table["random"][:, -1].mean())
        when = f"{categories + reached[0] * per_round} labels" if len(reached) else "not within the run"
        print(f"  {name}: {gain[:, -1].mean():+.1f} ± {gain[:, -1].std() / np.sqrt(len(gain)):.1f} points "
              f"over random at the end (± standard error), {gain.mean():+.1f} averaged over the curve; "
              f"reaches random's final accuracy with {when}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.label_next", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, help="ImageFolder tree (default: build the Twemoji subcategory tree)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--test-fraction", type=float, default=0.3)
    parser.add_argument("--backbone", default=DEFAULT_BACKBONE)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    if args.tree is None:
        from benchmarks.datasets import TWEMOJI, DatasetError, build_twemoji, default_cache_dir, fetch_package

        try:
            args.tree = build_twemoji(fetch_package("emoji-datasource-twitter"), default_cache_dir())
        except DatasetError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        assert args.tree.name == TWEMOJI
    matrix, labels = load_tree(args.tree, args.backbone, args.device)
    categories = len(np.unique(labels))
    print(f"{args.tree.name}: {len(labels)} images, {categories} categories, {args.backbone}, "
          f"{DEFAULT_METHOD}; held-out {args.test_fraction:.0%}; mean ± sd over {args.seeds} seeds")
    held_out = {name: [] for name in STRATEGIES}
    catalog = {name: [] for name in STRATEGIES}
    for seed in range(args.seeds):
        test, start = split(labels, args.test_fraction, np.random.default_rng(seed))
        for name in STRATEGIES:
            h, c = curve(matrix, labels, test, start, name, args.rounds, args.per_round, np.random.default_rng(seed))
            held_out[name].append(h)
            catalog[name].append(c)
    print_table("Accuracy on the held-out images:", {n: np.array(v) for n, v in held_out.items()},
                categories, args.per_round)
    print_table("Catalog accuracy (labelled count as right):", {n: np.array(v) for n, v in catalog.items()},
                categories, args.per_round)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
