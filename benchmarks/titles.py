"""Image vs title vs fused few-shot accuracy on emoji artwork with their Unicode names as titles.

Support images come from Twemoji; queries come from Twemoji itself (within domain) and from
OpenMoji (cross domain: other artists' drawings, and titles written as CLDR annotations instead of
Unicode names). Every modality sees the same episodes (same seed, same support draws), so the
"fused - best single" column is a paired difference. Then times what fusion costs the app per
label change, on a synthetic catalog, and how fast titles embed.

    python -m benchmarks.titles [--episodes 100] [--shots 1 5 10] [--method prototypes] [--catalog 50000]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.datasets import OPENMOJI, TWEMOJI, DatasetError, build_all
from protoshelf.core.backbones import DEFAULT_BACKBONE
from protoshelf.core.classify import CatalogClassifier
from protoshelf.core.evaluate import EvalResult, default_cache_path, embed_tree, evaluate_trees, read_titles
from protoshelf.core.methods import DEFAULT_METHOD
from protoshelf.core.store import ImportedFile, Store
from protoshelf.core.text import TEXT_EMBEDDING, TitleEncoder

MODALITIES = ("image", "text", "fused")


def paired_episodes(support, query, shots, episodes, method) -> dict[str, list[EvalResult]]:
    """One result per episode and modality; episode e uses seed e, so the supports match."""
    return {
        modality: [evaluate_trees(support, query, shots, 1, method, seed, modality) for seed in range(episodes)]
        for modality in MODALITIES
    }


def accuracy_table(trees: dict[str, Path], shots: list[int], episodes: int, method: str, device: str, cache: Path) -> None:
    root = trees[TWEMOJI].parent
    titles = read_titles([root / "twemoji-titles.csv", root / "openmoji-titles.csv"])
    with Store(cache) as store:
        twemoji = embed_tree(store, trees[TWEMOJI], DEFAULT_BACKBONE, device, _quiet, titles, "fused")
        openmoji = embed_tree(store, trees[OPENMOJI], DEFAULT_BACKBONE, device, _quiet, titles, "fused")
    print(f"Accuracy %, {method}, {episodes} episodes per cell, mean ± 95% interval; fused-best is the "
          f"paired per-episode difference to the better single modality; w(image) is the mean fused "
          f"pooling weight of the image.\n")
    print(f"{'support -> queries':<22}{'ways':>5}{'shots':>6}  {'image':>10}{'text':>10}{'fused':>10}  "
          f"{'fused-best':>11}  {'w(image)':>8}")
    for setting, query in (("twemoji -> twemoji", None), ("twemoji -> openmoji", openmoji)):
        for k in shots:
            results = paired_episodes(twemoji, query, k, episodes, method)
            acc = {m: np.array([r.accuracy for r in results[m]]) for m in MODALITIES}
            best = max(("image", "text"), key=lambda m: acc[m].mean())
            weight = np.mean([r.image_weight for r in results["fused"]])
            cells = "".join(f"{_mean_ci(acc[m]):>10}" for m in MODALITIES)
            print(f"{setting:<22}{results['image'][0].ways:>5}{k:>6}  {cells}  "
                  f"{_mean_ci(acc['fused'] - acc[best], signed=True):>11}  {weight:>8.2f}", flush=True)


def refit_timing(items: int, shots: int = 5, ways: int = 20, repeats: int = 3) -> None:
    """What the app pays per label change: CatalogClassifier.run on a synthetic catalog."""
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder, Store(Path(folder) / "catalog.sqlite") as store:
        store.save_imported([ImportedFile(f"/x/{i}.png", f"{i:064x}", 1, 1, 1) for i in range(items)], {})
        ids = store.item_ids()
        store.save_embeddings(DEFAULT_BACKBONE, ids, rng.normal(size=(items, 1280)).astype(np.float32))
        store.save_embeddings(TEXT_EMBEDDING, ids, rng.normal(size=(items, 384)).astype(np.float32))
        classifier = CatalogClassifier(store)
        labels = {int(i): c for c in range(ways) for i in ids[c * shots : (c + 1) * shots]}
        print(f"\nRe-fit and score {items:,} items ({ways} categories x {shots} examples), best of {repeats}:")
        times = {}
        for modality in MODALITIES:
            runs = []
            for _ in range(repeats):
                start = time.perf_counter()
                classifier.run(labels, modality=modality)
                runs.append(time.perf_counter() - start)
            times[modality] = min(runs)
        print("  " + ", ".join(f"{m} {times[m] * 1000:.0f} ms" for m in MODALITIES)
              + f"; fused / image = {times['fused'] / times['image']:.2f}x")


def title_throughput(titles: list[str], device: str) -> None:
    """How fast the embed step turns titles into vectors here (model load excluded)."""
    encoder = TitleEncoder(device)
    encoder(titles[:32])  # warm-up
    start = time.perf_counter()
    encoder(titles)
    seconds = time.perf_counter() - start
    print(f"\nTitle embedding on {encoder.device}: {len(titles)} titles in {seconds:.2f} s "
          f"= {len(titles) / seconds:,.0f} titles/s")


def _mean_ci(values: np.ndarray, signed: bool = False) -> str:
    ci = 1.96 * values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0.0
    return f"{values.mean() * 100:{'+' if signed else ''}.1f}±{ci * 100:.1f}"


def _quiet(done: int, total: int) -> None:
    pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.titles", description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5, 10])
    parser.add_argument("--method", default=DEFAULT_METHOD)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data", type=Path, default=None, help="dataset folder (default: user cache)")
    parser.add_argument("--catalog", type=int, default=50_000,
                        help="synthetic catalog size for the re-fit timing (0: skip)")
    parser.add_argument("--cache", type=Path, default=default_cache_path(), help="embedding cache catalog")
    args = parser.parse_args(argv)
    try:
        trees = build_all(args.data)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    accuracy_table(trees, args.shots, args.episodes, args.method, args.device, args.cache)
    title_throughput(list(read_titles([trees[TWEMOJI].parent / "twemoji-titles.csv"]).values()), args.device)
    if args.catalog:
        refit_timing(args.catalog)
    return 0


if __name__ == "__main__":
    sys.exit(main())
