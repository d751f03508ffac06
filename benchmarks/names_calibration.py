"""Names as a head start and calibrated confidence: accuracy, ECE, precision and coverage at the
default threshold, for 0/1/5 shots, with and without category names, per modality, on Twemoji,
Twemoji→OpenMoji and the tuxpaint photos (build them first: python -m benchmarks.datasets).

    python -m benchmarks.names_calibration [--episodes 20] [--only twemoji photos]

One embedding pass per tree, then every setting runs on the same episodes (same seed). Each
figure is followed by ± half its 95% interval (accuracy over episodes; the rest by resampling
episodes).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import platformdirs

from protoshelf.core.backbones import DEFAULT_BACKBONE
from protoshelf.core.calibration import DEFAULT_THRESHOLD
from protoshelf.core.evaluate import default_cache_path, embed_tree, evaluate_trees, read_titles, title_encoder
from protoshelf.core.names import name_vectors
from protoshelf.core.store import Store

DATA = Path(platformdirs.user_cache_dir("protoshelf")) / "datasets"
SETS = {
    "twemoji": ("twemoji-subcategory", None, ["twemoji-titles.csv"]),
    "twemoji→openmoji": ("twemoji-subcategory", "openmoji-subcategory", ["twemoji-titles.csv", "openmoji-titles.csv"]),
    "photos": ("tuxpaint-animals", None, ["tuxpaint-animals-titles.csv"]),
}


def run(name: str, episodes: int, shots_list, modalities) -> None:
    support, query, csvs = SETS[name]
    encoder = title_encoder("cpu", required=True)
    titles = read_titles([DATA / c for c in csvs])
    store = Store(default_cache_path())
    try:
        tree = embed_tree(store, DATA / support, DEFAULT_BACKBONE, "cpu", lambda *_: None, titles, "fused", encoder)
        query_tree = embed_tree(store, DATA / query, DEFAULT_BACKBONE, "cpu", lambda *_: None, titles, "fused", encoder) if query else None
    finally:
        store.close()
    names = name_vectors({c: c for c in sorted({im.category for im in tree.images})}, encoder)
    for shots in shots_list:
        for modality in modalities:
            for with_names in (True, False):
                if shots == 0 and not with_names:
                    continue
                r = evaluate_trees(tree, query_tree, shots, episodes, "prototypes", 0, modality,
                                   names=names if with_names else None, threshold=DEFAULT_THRESHOLD)
                print(f"| {name} | {shots} | {modality} | {'yes' if with_names else 'no'} | "
                      f"{r.accuracy:.1%} ± {r.ci95:.1%} | {r.ece:.3f} ± {r.ece_ci95:.3f} | "
                      f"{r.precision_at_threshold:.0%} ± {r.precision_ci95:.0%} | "
                      f"{r.coverage_at_threshold:.0%} ± {r.coverage_ci95:.0%} | {r.calibrated_share:.0%} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--only", nargs="+", choices=list(SETS), default=list(SETS))
    parser.add_argument("--shots", type=int, nargs="+", default=[0, 1, 5])
    parser.add_argument("--modalities", nargs="+", default=["image", "text", "fused"])
    args = parser.parse_args()
    print(f"CPUs {os.cpu_count()}, load {os.getloadavg()[0]:.1f}; threshold {DEFAULT_THRESHOLD}; "
          f"{args.episodes} episodes, prototypes, all ways")
    print("| data | shots | modality | names | accuracy | ECE | precision@thr | coverage@thr | calibrated |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.only:
        run(name, args.episodes, args.shots, args.modalities)


if __name__ == "__main__":
    main()
