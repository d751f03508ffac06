"""When does fine-tuning the backbone beat classifying frozen features? Shots × domain, paired episodes.

    python -m benchmarks.finetune_when [--episodes 4] [--shots 1 5 10] [--datasets twemoji photos]
                                       [--epochs 8] [--queries 8] [--device cpu] [--data DIR] [--json out.json]

Each episode draws `--ways` categories (only those with at least shots + 2 images), K support
images each and up to `--queries` query images each. On that same episode it scores:
`prototypes` and `linear-probe` on the pretrained features, `auto` (what `recommended_method`
picks for K shots), and `finetune` (core/methods/finetune.py with its default settings, early
stopping on held-out support images from 3 shots up) followed by prototypes, the linear probe and
auto's method on the fine-tuned features. Pretrained and fine-tuned vectors come through the same
`embed_images` path. Every figure is the mean per-episode accuracy ± a 95% t-interval over
episodes; "Δ" is `ft+auto` minus `auto` (what the automatic choice would gain by fine-tuning
first), paired by episode, so its interval is narrower than the two accuracies' would suggest. "kept" counts episodes where
early stopping restored the pretrained weights.

Domains: Twemoji subcategories (drawings, 64 px) and the tuxpaint animal photographs
(benchmarks/datasets.py). Torch runs on one thread by default (PROTOSHELF_BENCH_THREADS).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.datasets import PHOTOS, TWEMOJI, build_all

DATASETS = {"twemoji": ("Twemoji drawings", TWEMOJI), "photos": ("Animal photos (tuxpaint)", PHOTOS)}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}
FROZEN = ("prototypes", "linear-probe", "auto")
TUNED = ("ft+prototypes", "ft+linear-probe", "ft+auto")


def category_images(root: Path) -> dict[str, list[Path]]:
    return {
        d.name: sorted(p for p in d.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        for d in sorted(root.iterdir()) if d.is_dir()
    }


def sample(by_category: dict[str, list[Path]], shots: int, ways: int, queries: int, rng: np.random.Generator):
    """(support paths, support labels, query paths, query labels) of one episode, or None if too few categories."""
    eligible = sorted(c for c, paths in by_category.items() if len(paths) >= shots + 2)
    if len(eligible) < 2:
        return None
    chosen = sorted(rng.choice(eligible, size=min(ways, len(eligible)), replace=False))
    support, support_y, query, query_y = [], [], [], []
    for category in chosen:
        order = rng.permutation(len(by_category[category]))
        paths = [by_category[category][i] for i in order]
        support += paths[:shots]
        support_y += [category] * shots
        rest = paths[shots : shots + queries]
        query += rest
        query_y += [category] * len(rest)
    return support, support_y, query, query_y


def interval(values: list[float]) -> tuple[float, float]:
    """Mean and 95% t-interval half-width over episodes."""
    from scipy import stats

    a = np.asarray(values, float)
    if len(a) < 2:
        return float(a.mean()), float("nan")
    return float(a.mean()), float(stats.t.ppf(0.975, len(a) - 1) * a.std(ddof=1) / np.sqrt(len(a)))


def accuracy(method: str, support: np.ndarray, labels: list[str], queries: np.ndarray, truth: list[str]) -> float:
    from protoshelf.core.methods import make_method

    model = make_method(method).fit(support, labels, unlabelled=queries)
    predicted = model.classes_[model.predict(queries).argmax(axis=1)]
    return float(np.mean(predicted == np.asarray(truth)))


def run_cell(by_category, shots: int, episodes: int, ways: int, queries: int, epochs: int, seed: int,
             device: str = "cpu") -> dict:
    from protoshelf.core.backbones import DEFAULT_BACKBONE, load_backbone, resolve_device
    from protoshelf.core.embedding import FeatureExtractor
    from protoshelf.core.methods import recommended_method
    from protoshelf.core.methods.finetune import FineTuneConfig, embed_images, finetune
    from protoshelf.core.model_input import open_model_image

    base = load_backbone(DEFAULT_BACKBONE)
    frozen_extractor = FeatureExtractor(base, resolve_device(device))
    prep = base.preprocessing
    rng = np.random.default_rng(seed)
    scores: dict[str, list[float]] = {m: [] for m in FROZEN + TUNED}
    gains, kept, seconds, ways_used = [], 0, [], 0
    for _ in range(episodes):
        episode = sample(by_category, shots, ways, queries, rng)
        if episode is None:
            break
        support_paths, labels, query_paths, truth = episode
        ways_used = len(set(labels))
        support_images = [open_model_image(p, prep) for p in support_paths]
        query_images = [open_model_image(p, prep) for p in query_paths]
        s, q = embed_images(frozen_extractor, support_images), embed_images(frozen_extractor, query_images)
        scores["prototypes"].append(accuracy("prototypes", s, labels, q, truth))
        scores["linear-probe"].append(accuracy("linear-probe", s, labels, q, truth))
        scores["auto"].append(accuracy(recommended_method(shots), s, labels, q, truth))
        started = time.perf_counter()
        result = finetune(base, support_images, labels, FineTuneConfig(epochs=epochs, seed=seed), device)
        seconds.append(time.perf_counter() - started)
        kept += result.kept_pretrained
        tuned_extractor = FeatureExtractor(result.backbone, resolve_device(device))
        ts, tq = embed_images(tuned_extractor, support_images), embed_images(tuned_extractor, query_images)
        scores["ft+prototypes"].append(accuracy("prototypes", ts, labels, tq, truth))
        scores["ft+linear-probe"].append(accuracy("linear-probe", ts, labels, tq, truth))
        scores["ft+auto"].append(accuracy(recommended_method(shots), ts, labels, tq, truth))
        gains.append(scores["ft+auto"][-1] - scores["auto"][-1])
    done = len(scores["prototypes"])
    return {
        "shots": shots, "ways": ways_used, "episodes": done, "kept_pretrained": kept,
        "finetune_seconds": float(np.mean(seconds)) if seconds else None,
        "accuracy": {m: interval(v) for m, v in scores.items() if v},
        "finetune_gain": interval(gains) if gains else None,
    }


def helps(cell: dict) -> bool:
    """Fine-tuning helps in a cell when the paired gain's whole 95% interval is above zero."""
    gain = cell["finetune_gain"]
    return gain is not None and not np.isnan(gain[1]) and gain[0] - gain[1] > 0


def print_cell(title: str, cell: dict, out=None) -> None:
    def fmt(pair):
        return f"{pair[0]:6.1%} ±{pair[1]:5.1%}"

    acc = cell["accuracy"]
    gain = cell["finetune_gain"]
    print(f"{title:<26}{cell['shots']:>3}-shot {cell['ways']}-way {cell['episodes']} ep  "
          + "  ".join(f"{m} {fmt(acc[m])}" for m in FROZEN + TUNED if m in acc)
          + (f"  Δ {gain[0] * 100:+.1f} ±{gain[1] * 100:.1f} pts" if gain else "")
          + f"  kept {cell['kept_pretrained']}/{cell['episodes']}  ft {cell['finetune_seconds'] or 0:.0f} s/ep"
          + ("  HELPS" if helps(cell) else ""), file=out, flush=True)


def trees_in(data: Path | None) -> dict[str, Path]:
    """The benchmark trees: already built under `data` (e.g. carried to a GPU machine without
    network), else built (or found) in the dataset cache."""
    if data is None:
        return build_all()
    trees = {tree: Path(data) / tree for _, tree in DATASETS.values()}
    missing = [str(p) for p in trees.values() if not p.is_dir()]
    if missing:
        raise FileNotFoundError(f"no benchmark tree at {', '.join(missing)}; build them with python -m benchmarks.datasets")
    return trees


def run(trees: dict[str, Path], datasets: list[str], shots: list[int], episodes: int, ways: int = 5,
        queries: int = 8, epochs: int = 8, seed: int = 0, device: str = "cpu", out=None) -> dict:
    """Every (dataset, shots) cell, printed (to `out`, default stdout) as it finishes; the cells by "dataset/shots"."""
    out = out or sys.stdout
    results = {}
    for key in datasets:
        title, tree = DATASETS[key]
        by_category = category_images(trees[tree])
        for k in shots:
            cell = run_cell(by_category, k, episodes, ways, queries, epochs, seed, device)
            print_cell(title, cell, out)
            results[f"{key}/{k}"] = cell
    winners = [key for key, cell in results.items() if helps(cell)]
    print("fine-tuning measured to help (Δ > 0 with 95% confidence):", ", ".join(winners) or "nowhere",
          file=out, flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.finetune_when", description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5, 10])
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    parser.add_argument("--ways", type=int, default=5)
    parser.add_argument("--queries", type=int, default=8, help="query images per category and episode")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data", type=Path, help="folder holding the built trees (default: build or find them in the cache)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(int(os.environ.get("PROTOSHELF_BENCH_THREADS", "1")))
    results = run(trees_in(args.data), args.datasets, args.shots, args.episodes, args.ways, args.queries,
                  args.epochs, args.seed, args.device)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
