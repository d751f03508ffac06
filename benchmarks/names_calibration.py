"""Names as a head start and calibrated confidence: accuracy, ECE, precision and coverage at the
default threshold, for 0/1/5/10 shots, with and without category names, per modality, on Twemoji,
Twemoji→OpenMoji and the tuxpaint photos (build them first: python -m benchmarks.datasets).

    python -m benchmarks.names_calibration [--episodes 20] [--only twemoji photos] [--shots 0 1]
    python -m benchmarks.names_calibration --fit-defaults

One embedding pass per tree, then every setting runs on the same episodes (same seed). Each
figure is followed by ± half its 95% interval (accuracy over episodes; the rest by resampling
episodes). `--fit-defaults` fits the temperatures used when nothing can be held out
(core/calibration.py DEFAULT_TEMPERATURES) on the tuxpaint stamps outside animals/, one folder
per category: pictures no benchmark uses.
"""
from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import numpy as np
import platformdirs

from protoshelf.core.backbones import DEFAULT_BACKBONE
from protoshelf.core.calibration import DEFAULT_THRESHOLD, class_index, fit_temperature
from protoshelf.core.evaluate import (
    calibrated_model, default_cache_path, embed_tree, evaluate_trees, read_titles, sample_episode, title_encoder,
)
from protoshelf.core.names import name_vectors
from protoshelf.core.store import Store

DATA = Path(platformdirs.user_cache_dir("protoshelf")) / "datasets"
SETS = {
    "twemoji": ("twemoji-subcategory", None, ["twemoji-titles.csv"]),
    "twemoji→openmoji": ("twemoji-subcategory", "openmoji-subcategory", ["twemoji-titles.csv", "openmoji-titles.csv"]),
    "photos": ("tuxpaint-animals", None, ["tuxpaint-animals-titles.csv"]),
}
OTHER_STAMPS = "tuxpaint-other-stamps"
STAMPS = DATA / "packages" / "tuxpaint-stamps-default" / "usr" / "share" / "tuxpaint" / "stamps"
MODALITIES = ("image", "text", "fused")


def load(support: str, query: str | None, csvs: list[str]):
    encoder = title_encoder("cpu", required=True)
    titles = read_titles([DATA / c for c in csvs])
    store = Store(default_cache_path())
    try:
        tree = embed_tree(store, DATA / support, DEFAULT_BACKBONE, "cpu", lambda *_: None, titles, "fused", encoder)
        query_tree = embed_tree(store, DATA / query, DEFAULT_BACKBONE, "cpu", lambda *_: None, titles, "fused", encoder) if query else None
    finally:
        store.close()
    names = name_vectors({c: c for c in sorted({im.category for im in tree.images})}, encoder)
    return tree, query_tree, names


def run(name: str, episodes: int, shots_list, modalities) -> None:
    tree, query_tree, names = load(*SETS[name])
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


def build_other_stamps() -> Path:
    """The tuxpaint stamps outside animals/ as a tree, one category per top folder (≥ 5 pictures),
    with their descriptions as titles."""
    out, csv_path = DATA / OTHER_STAMPS, DATA / f"{OTHER_STAMPS}-titles.csv"
    if out.is_dir() and csv_path.is_file():
        return out
    rows = []
    for folder in sorted(p for p in STAMPS.iterdir() if p.is_dir() and p.name != "animals"):
        pictures = sorted(folder.rglob("*.png"))
        if len(pictures) < 5:
            continue
        category = {"naturalforces": "natural-forces"}.get(folder.name, folder.name)
        (out / category).mkdir(parents=True, exist_ok=True)
        for png in pictures:
            shutil.copyfile(png, out / category / png.name)
            about = png.with_suffix(".txt")
            text = about.read_text(encoding="utf-8", errors="replace").strip() if about.is_file() else ""
            rows.append((f"{OTHER_STAMPS}/{category}/{png.name}", text.splitlines()[0] if text else png.stem.replace("_", " ")))
    import csv

    with csv_path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("path", "title"), *rows])
    return out


def fit_defaults(episodes: int = 4) -> None:
    """Print the temperatures that fit the other stamps' raw prototype scores best, where nothing
    can be held out: names alone, and one example per category with and without names."""
    build_other_stamps()
    tree, _, names = load(OTHER_STAMPS, None, [f"{OTHER_STAMPS}-titles.csv"])
    for modality in MODALITIES:
        for shots, with_names in ((0, True), (1, True), (1, False)):
            only, rng, raws, truths = tree.only(modality), np.random.default_rng(0), [], []
            for _ in range(episodes if shots else 1):
                support, queries = sample_episode(only, None, shots, rng)
                features = only.features
                model = calibrated_model("prototypes", {}, names if with_names else None, features, shots > 0).fit(
                    features.take([im.row for im in support]), [im.category for im in support], unlabelled=features
                )
                raws.append(model.model_.predict(features.take([im.row for im in queries])))
                truths.append(class_index(model.classes_, [im.category for im in queries]))
            t, b = fit_temperature(np.concatenate(raws), np.concatenate(truths), prior_rows=0)
            print(f'("{modality}", {shots > 0}, {with_names}): ({t:.2f}, {b:.1f}),', flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--only", nargs="+", choices=list(SETS), default=list(SETS))
    parser.add_argument("--shots", type=int, nargs="+", default=[0, 1, 5, 10])
    parser.add_argument("--modalities", nargs="+", choices=MODALITIES, default=list(MODALITIES))
    parser.add_argument("--fit-defaults", action="store_true", help="fit the no-hold-out temperatures and stop")
    args = parser.parse_args()
    if args.fit_defaults:
        fit_defaults()
        return
    print(f"CPUs {os.cpu_count()}, load {os.getloadavg()[0]:.1f}; threshold {DEFAULT_THRESHOLD}; "
          f"{args.episodes} episodes, prototypes, all ways")
    print("| data | shots | modality | names | accuracy | ECE | precision@thr | coverage@thr | calibrated |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.only:
        run(name, args.episodes, args.shots, args.modalities)


if __name__ == "__main__":
    main()
