"""Accuracy and fit time of every registered method at 1, 5 and 10 shots, in and across domains.

    python -m benchmarks.methods [--episodes 20] [--adapter-episodes 3] [--datasets ...] [--json out.json]

Datasets (benchmarks/datasets.py, from npm and Debian): Twemoji subcategories and OpenMoji
subcategories (in-domain), Twemoji support with OpenMoji queries (cross-domain: the same emoji
drawn in another style), and photographs of 13 kinds of animal (tuxpaint-stamps-default). The emoji
subcategories are split in half once, at random: methods are evaluated on one half, and
meta-learners learn from the other half only (`--meta-train`), so no evaluated category is ever
seen in meta-training. The photo tree is too small to split (13 kinds, 3–20 photos each), so its
meta-learners learn from every Twemoji subcategory: other categories, from another domain, which is
all a new catalog of photos could offer. Every method sees the same episodes (same seed).
Backbone adapters (fine-tuning) train the backbone per episode, so they run fewer, 5-way episodes
on Twemoji, next to prototypes on those same episodes. Embeddings come from the evaluation cache:
only the first run embeds images. Every method in protoshelf.core.methods' registry is measured.

Torch runs on one thread: this CPU is shared, and tiny training steps lose more to thread
synchronisation than they gain. Fit times are per episode, on this machine; a meta-learner's
meta-training time is printed with its table.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.datasets import OPENMOJI, PHOTOS, TWEMOJI, build_all
from protoshelf.core.backbones import DEFAULT_BACKBONE
from protoshelf.core.evaluate import (
    EmbeddedTree,
    EvalResult,
    default_cache_path,
    embed_tree,
    evaluate_adapter,
    evaluate_trees,
    meta_train_params,
)
from protoshelf.core.methods import (
    DEFAULT_METHOD,
    METHODS,
    BackboneAdapter,
    feature_method_names,
    is_meta_learner,
    make_adapter,
    recommended_method,
)
from protoshelf.core.store import Store

SHOTS = (1, 5, 10)
ADAPTER_WAYS = 5
DATASETS = {
    "twemoji": ("Twemoji (in-domain)", TWEMOJI, None),
    "openmoji": ("OpenMoji (in-domain)", OPENMOJI, None),
    "cross": ("Twemoji -> OpenMoji (cross-domain)", TWEMOJI, OPENMOJI),
    "photos": ("Animal photos (tuxpaint stamps)", PHOTOS, None),
}
def quiet(done: int, total: int) -> None:
    """No progress output: the tables are the output."""


def split_categories(tree: Path, seed: int = 0) -> tuple[list[str], list[str]]:
    """Half the subcategories for meta-training, half for evaluation."""
    names = sorted(p.name for p in tree.iterdir() if p.is_dir())
    order = np.random.default_rng(seed).permutation(len(names))
    half = len(names) // 2
    return sorted(names[i] for i in order[:half]), sorted(names[i] for i in order[half:])


def linked_tree(source: Path, categories: list[str], target: Path) -> Path:
    """An ImageFolder of symbolic links to some of `source`'s category folders."""
    target.mkdir(parents=True, exist_ok=True)
    for name in categories:
        (target / name).symlink_to((source / name).resolve(), target_is_directory=True)
    return target


def cell(result: EvalResult, baseline: EvalResult | None) -> str:
    delta = "" if baseline is None else f" ({(result.accuracy - baseline.accuracy) * 100:+.1f})"
    return f"{result.accuracy:6.1%} ±{result.ci95:5.1%}{delta:>8} {result.fit_seconds * 1000:7.0f} ms"


def print_table(title: str, rows: dict[str, dict[int, EvalResult]], baseline: str = DEFAULT_METHOD) -> None:
    print(f"\n{title}")
    print(f"{'method':<14}" + "".join(f"{f'{s}-shot: acc ±95% (Δ pts) fit':>40}" for s in SHOTS))
    for method, by_shots in rows.items():
        base = rows.get(baseline, {})
        print(f"{method:<14}" + "".join(
            f"{cell(by_shots[s], None if method == baseline else base.get(s)):>40}" for s in SHOTS if s in by_shots
        ), flush=True)


def method_rows(
    support: EmbeddedTree,
    query: EmbeddedTree | None,
    meta_tree: EmbeddedTree | None,
    episodes: int,
    seed: int,
    methods: list[str] | None = None,
) -> tuple[dict[str, dict[int, EvalResult]], dict[str, float]]:
    """Every feature method (default: all registered, the default first) at every shot count, and
    each meta-learner's meta-training seconds (on `meta_tree`; without one it learns per episode)."""
    names = methods or sorted(feature_method_names(), key=lambda name: name != DEFAULT_METHOD)
    rows, meta_seconds = {}, {}
    for name in names:
        params = {}
        if meta_tree is not None and is_meta_learner(name):
            started = time.perf_counter()
            params = meta_train_params(name, meta_tree, support, "image", quiet)
            meta_seconds[name] = time.perf_counter() - started
        rows[name] = {s: evaluate_trees(support, query, s, episodes, name, seed, params=params) for s in SHOTS}
    return rows, meta_seconds


def run(episodes: int, adapter_episodes: int, seed: int, datasets: list[str], cache: Path | None = None) -> dict:
    trees = build_all()
    meta_names, eval_names = split_categories(trees[TWEMOJI], seed)
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        split = {
            (name, part): linked_tree(trees[name], names, tmp / f"{name}-{part}")
            for name in (TWEMOJI, OPENMOJI)
            for part, names in (("meta", meta_names), ("eval", eval_names))
        }
        split[(PHOTOS, "eval")] = trees[PHOTOS]
        split[(PHOTOS, "meta")] = trees[TWEMOJI]
        store = Store(cache or default_cache_path())
        try:
            embedded = {key: embed_tree(store, path, DEFAULT_BACKBONE, "auto", quiet) for key, path in split.items()}
        finally:
            store.close()
        for key in datasets:
            title, support_name, query_name = DATASETS[key]
            support = embedded[(support_name, "eval")]
            query = embedded[(query_name, "eval")] if query_name else None
            ways = len({im.category for im in support.images})
            rows, meta_seconds = method_rows(support, query, embedded[(support_name, "meta")], episodes, seed)
            meta_note = ", ".join(f"{m} {s:.0f} s" for m, s in meta_seconds.items())
            meta_ways = len({im.category for im in embedded[(support_name, "meta")].images})
            print_table(f"{title}: {ways}-way, {episodes} episodes; meta-learners meta-trained on "
                        f"{meta_ways} other categories ({meta_note})", rows)
            results[title] = {m: {s: r.to_dict() for s, r in by.items()} for m, by in rows.items()}
            if adapter_episodes and support_name == TWEMOJI:
                roots = (split[(support_name, "eval")], split[(query_name, "eval")] if query_name else None)
                tuned = {DEFAULT_METHOD: {s: evaluate_trees(support, query, s, adapter_episodes, DEFAULT_METHOD, seed,
                                                            ways=ADAPTER_WAYS) for s in SHOTS}}
                for name, cls in METHODS.items():
                    if issubclass(cls, BackboneAdapter):
                        tuned[name] = {s: evaluate_adapter(support, query, roots, s, adapter_episodes, seed,
                                                           DEFAULT_BACKBONE, "auto", make_adapter(name),
                                                           ADAPTER_WAYS) for s in SHOTS}
                print_table(f"{title}, backbone adapters: {ADAPTER_WAYS}-way, {adapter_episodes} episodes, "
                            "then prototypes on the new embeddings", tuned)
                results[title + " / backbone adapters"] = {
                    m: {s: r.to_dict() for s, r in by.items()} for m, by in tuned.items()
                }
    print("\nrecommended (auto):", ", ".join(f"{s}-shot {recommended_method(s)}" for s in SHOTS))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.methods", description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--adapter-episodes", type=int, default=3, help="0 skips backbone adapters (fine-tuning)")
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, help="embedding cache catalog (default: the evaluation cache)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("PROTOSHELF_BENCH_THREADS", "1")))
    results = run(args.episodes, args.adapter_episodes, args.seed, args.datasets, args.cache)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
