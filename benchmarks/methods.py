"""Accuracy and fit time of every adaptation method at 1, 5 and 10 shots, in and across domains.

    python -m benchmarks.methods [--episodes 20] [--finetune-episodes 3] [--json out.json]

Datasets (benchmarks/datasets.py, from npm): Twemoji subcategories and OpenMoji subcategories
(in-domain), and Twemoji support with OpenMoji queries (cross-domain: the same emoji drawn in
another style). The subcategories are split in half once, at random: methods are evaluated on one
half, and meta-learning learns from the other half only (`--meta-train`), so no evaluated category
is ever seen in meta-training. Every method sees the same episodes (same seed). Fine-tuning trains
the backbone per episode, so it runs fewer, 5-way episodes, next to prototypes on those same
episodes. Embeddings come from the evaluation cache: only the first run embeds images.

Torch runs on one thread: this CPU is shared, and tiny training steps lose more to thread
synchronisation than they gain. Fit times are per episode, on this machine.
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

from benchmarks.datasets import OPENMOJI, TWEMOJI, build_all
from core.backbones import DEFAULT_BACKBONE
from core.evaluate import (
    EvalResult,
    default_cache_path,
    embed_tree,
    evaluate_finetune,
    evaluate_trees,
    meta_train_params,
)
from core.methods import METHODS, recommended_method
from core.methods.finetune import FineTuneConfig
from core.store import Store

SHOTS = (1, 5, 10)
EMBEDDING_METHODS = ("prototypes", "linear-probe", "transductive", "meta-maml")
FINETUNE_WAYS = 5


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


def print_table(title: str, rows: dict[str, dict[int, EvalResult]], baseline: str = "prototypes") -> None:
    print(f"\n{title}")
    print(f"{'method':<14}" + "".join(f"{f'{s}-shot: acc ±95% (Δ pts) fit':>40}" for s in SHOTS))
    for method, by_shots in rows.items():
        base = rows.get(baseline, {})
        print(f"{method:<14}" + "".join(
            f"{cell(by_shots[s], None if method == baseline else base.get(s)):>40}" for s in SHOTS if s in by_shots
        ))


def run(episodes: int, finetune_episodes: int, epochs: int, seed: int, cache: Path | None = None) -> dict:
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
        store = Store(cache or default_cache_path())
        try:
            embedded = {key: embed_tree(store, path, DEFAULT_BACKBONE, "auto", lambda d, t: None)
                        for key, path in split.items()}
        finally:
            store.close()
        datasets = {
            "Twemoji (in-domain)": (TWEMOJI, None),
            "OpenMoji (in-domain)": (OPENMOJI, None),
            "Twemoji -> OpenMoji (cross-domain)": (TWEMOJI, OPENMOJI),
        }
        for title, (support_name, query_name) in datasets.items():
            support = embedded[(support_name, "eval")]
            query = embedded[(query_name, "eval")] if query_name else None
            ways = len({im.category for im in support.images})
            started = time.perf_counter()
            meta = meta_train_params("meta-maml", embedded[(support_name, "meta")], support, "image", lambda d, t: None)
            meta_seconds = time.perf_counter() - started
            rows: dict[str, dict[int, EvalResult]] = {}
            for method in EMBEDDING_METHODS:
                params = meta if method == "meta-maml" else {}
                rows[method] = {
                    s: evaluate_trees(support, query, s, episodes, method, seed, params=params) for s in SHOTS
                }
            print_table(f"{title}: {ways}-way, {episodes} episodes; meta-maml meta-trained on "
                        f"{len(meta_names)} other subcategories in {meta_seconds:.1f} s", rows)
            results[title] = {m: {s: r.to_dict() for s, r in by.items()} for m, by in rows.items()}
            if finetune_episodes and support_name == TWEMOJI:
                roots = (split[(support_name, "eval")], split[(query_name, "eval")] if query_name else None)
                config = FineTuneConfig(epochs=epochs)
                tuned = {
                    "prototypes": {s: evaluate_trees(support, query, s, finetune_episodes, "prototypes", seed,
                                                     ways=FINETUNE_WAYS) for s in SHOTS},
                    "finetune": {s: evaluate_finetune(support, query, roots, s, finetune_episodes, seed,
                                                      DEFAULT_BACKBONE, "auto", config, FINETUNE_WAYS) for s in SHOTS},
                }
                print_table(f"{title}, fine-tuning: {FINETUNE_WAYS}-way, {finetune_episodes} episodes, "
                            f"{epochs} epochs, L2-SP {config.l2sp}, then prototypes on the tuned embeddings", tuned)
                results[title + " / finetune"] = {m: {s: r.to_dict() for s, r in by.items()} for m, by in tuned.items()}
    print("\nrecommended (auto):", ", ".join(f"{s}-shot {recommended_method(s)}" for s in SHOTS))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.methods", description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--finetune-episodes", type=int, default=3, help="0 skips fine-tuning")
    parser.add_argument("--epochs", type=int, default=FineTuneConfig.epochs, help="fine-tuning epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, help="embedding cache catalog (default: the evaluation cache)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("PROTOSHELF_BENCH_THREADS", "1")))
    assert set(EMBEDDING_METHODS) <= set(METHODS)
    results = run(args.episodes, args.finetune_episodes, args.epochs, args.seed, args.cache)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
