"""Embedding throughput, end to end, against the backbone's own ceiling on this machine.

Three figures in images/s, measured in one run, at one batch size:

- forward: uint8 batches already in memory through `FeatureExtractor` (the ceiling: no files);
- end_to_end: `embed_catalog` on a fresh catalog: file -> decode -> resize -> backbone -> stored;
- naive: what a first script does: full PIL decode, a torchvision transform per image, one image at
  a time through the backbone, one commit per image.

Rounds alternate forward and end-to-end runs so both see the same machine load; the best round of
each counts, and the median of the per-round ratios shows how much a shared machine moved them. CPU time per image (decoding threads included) is reported too: on a shared machine
it moves less than wall time, and on an idle one whose cores both runs keep busy, the ratio of
throughputs is the inverse ratio of CPU times. The photos are synthetic product shots: an object
on a white page as a 1000 px JPEG (about 100 KB), and a cut-out as a 300 px PNG with alpha. CPU
time per image of each stage (decode, resize, batch, forward, store), measured one after the
other in this process, says where the difference goes.

    python -m benchmarks.embedding_throughput [--kinds jpeg png] [--images 192] [--command-images 1000 [--command-runs 3]]
"""
from __future__ import annotations

import protoshelf.core  # noqa: F401  - first: it sets how OpenMP waits, which torch reads when it loads
import argparse
import io
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

from benchmarks import report
from protoshelf.core.backbones import DEFAULT_BACKBONE, load_backbone
from protoshelf.core.embedding import FeatureExtractor, default_batch_size, embed_catalog
from protoshelf.core.model_input import collate, open_model_image, to_model_input
from protoshelf.core.images import file_sha256
from protoshelf.core.store import ImportedFile, Store


def product_photo(seed: int, side: int = 1000) -> bytes:
    """A JPEG like a catalog shot: a shaded, textured object on a white background."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (side, side), (250, 250, 250))
    draw = ImageDraw.Draw(image)
    for _ in range(3):
        colour = tuple(int(c) for c in rng.integers(20, 230, 3))
        box = sorted(rng.integers(side // 8, side - side // 8, 2)), sorted(rng.integers(side // 8, side - side // 8, 2))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((box[0][0], box[1][0], box[0][1] + side // 10, box[1][1] + side // 10), fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(2))
    pixels = np.asarray(image, np.float32) + rng.normal(0, 3, (side, side, 3))
    out = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(out, "JPEG", quality=90)
    return out.getvalue()


def cut_out(seed: int, side: int = 300) -> bytes:
    """A PNG like a product cut-out: the object of `product_photo` on a transparent background."""
    rgb = np.asarray(Image.open(io.BytesIO(product_photo(seed, side))).convert("RGB"))
    alpha = np.where(rgb.min(axis=2) > 235, 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(out, "PNG")
    return out.getvalue()


KINDS = {"jpeg": (product_photo, 1000, "jpg"), "png": (cut_out, 300, "png")}


def write_photos(folder: Path, count: int, side: int, kind: str = "jpeg") -> list[Path]:
    make, _, suffix = KINDS[kind]
    paths = []
    for i in range(count):
        path = folder / f"photo{i:05d}.{suffix}"
        path.write_bytes(make(i, side))
        paths.append(path)
    return paths


def new_catalog(path: Path, photos: list[Path]) -> Store:
    store = Store(path)
    store.save_imported([ImportedFile(str(p), file_sha256(p), file_size=p.stat().st_size) for p in photos], {})
    return store


class Clock:
    """Wall and CPU seconds of a block, all threads, and finished child processes (the command run)."""

    def __enter__(self) -> "Clock":
        self.wall, self.cpu = time.perf_counter(), self._cpu()
        return self

    def __exit__(self, *exc_info) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, self._cpu() - self.cpu

    @staticmethod
    def _cpu() -> float:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + children.ru_utime + children.ru_stime


def forward_only(extractor: FeatureExtractor, batches: list[torch.Tensor]) -> tuple[Clock, np.ndarray]:
    extractor(batches[0])  # the ceiling is the steady state: memory and kernels warmed first
    with Clock() as clock:
        features = np.concatenate([extractor(batch) for batch in batches])
    return clock, features


def end_to_end(folder: Path, photos: list[Path], extractor, batch_size: int, workers: int | None, run: int):
    store = new_catalog(folder / f"e2e{run}.sqlite", photos)
    try:
        with Clock() as clock:
            report = embed_catalog(store, DEFAULT_BACKBONE, batch_size=batch_size, workers=workers, extractor=extractor)
        assert report.embedded == len(photos) and not report.failed, report
        return clock, store.load_embeddings(DEFAULT_BACKBONE).matrix
    finally:
        store.close()


def stage_costs(photos: list[Path], extractor: FeatureExtractor, batch_size: int, folder: Path) -> dict:
    """CPU ms per image of each stage, run one after the other in this process."""
    prep = extractor.backbone.preprocessing
    spent: dict[str, float] = {}

    def timed(stage, work):
        started = time.process_time()
        result = work()
        spent[stage] = spent.get(stage, 0.0) + time.process_time() - started
        return result

    images = [timed("decode", lambda: open_model_image(p, prep)) for p in photos]
    pixels = [timed("resize", lambda: to_model_input(image, prep)) for image in images]
    samples = [(i, "", t, "") for i, t in enumerate(pixels)]
    batches = [timed("batch", lambda: collate(samples[i : i + batch_size])) for i in range(0, len(samples), batch_size)]
    extractor(batches[0][1])
    features = [timed("forward", lambda: extractor(tensors)) for _, tensors, _ in batches]
    store = new_catalog(folder / "stages.sqlite", photos)
    try:
        ids = store.item_ids()
        for (positions, _, _), vectors in zip(batches, features):
            timed("store", lambda: store.save_embeddings(DEFAULT_BACKBONE, [int(ids[i]) for i in positions], vectors))
    finally:
        store.close()
    return {stage: round(seconds / len(photos) * 1000, 2) for stage, seconds in spent.items()}


def naive(folder: Path, photos: list[Path]) -> float:
    """Full decode, torchvision transform and a batch of one, committed image by image."""
    from torchvision import transforms

    backbone = load_backbone()
    prep = backbone.preprocessing
    transform = transforms.Compose([
        transforms.Resize((prep.size, prep.size)),
        transforms.ToTensor(), transforms.Normalize(prep.mean, prep.std),
    ])
    store = new_catalog(folder / "naive.sqlite", photos)
    try:
        ids = store.item_ids()
        started = time.perf_counter()
        with torch.no_grad():
            for item_id, path in zip(ids, photos):
                x = transform(Image.open(path).convert("RGB")).unsqueeze(0)
                store.save_embeddings(DEFAULT_BACKBONE, [int(item_id)], backbone.features(x).numpy())
        return time.perf_counter() - started
    finally:
        store.close()


def run(images: int = 192, batch_size: int | None = None, side: int | None = None, rounds: int = 4,
        workers: int | None = None, naive_images: int = 32, kind: str = "jpeg", device: str = "cpu",
        unfolded: bool = False) -> dict:
    """`batch_size` None: what `embed_catalog` picks on this device; `side` None: the kind's own;
    `naive_images` 0: no naive loop (it runs on the CPU only); `unfolded`: the backbone with its
    batch norms as separate operations, as before they were folded (for comparison)."""
    side = side or KINDS[kind][1]
    folder = Path(tempfile.mkdtemp(prefix="protoshelf-embed-bench-"))
    try:
        photos = write_photos(folder, images, side, kind)
        extractor = FeatureExtractor(load_backbone(), torch.device(device))
        if unfolded:
            extractor.features = extractor.backbone.features
        batch_size = batch_size or default_batch_size(extractor.device)
        prep = extractor.backbone.preprocessing
        decoded = [to_model_input(open_model_image(p, prep), prep) for p in photos]
        batches = [collate([(0, "", t, "") for t in decoded[i : i + batch_size]])[1]
                   for i in range(0, images, batch_size)]
        stages = stage_costs(photos, extractor, batch_size, folder)
        forward, e2e = [], []
        for r in range(rounds):
            clock, reference = forward_only(extractor, batches)
            forward.append(clock)
            clock, stored = end_to_end(folder, photos, extractor, batch_size, workers, r)
            e2e.append(clock)
        naive_count = min(naive_images, images)
        naive_rate = naive_count / naive(folder, photos[:naive_count]) if naive_count else None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    forward_rate = images / min(c.wall for c in forward)
    e2e_rate = images / min(c.wall for c in e2e)
    forward_cpu = min(c.cpu for c in forward) / images * 1000
    e2e_cpu = min(c.cpu for c in e2e) / images * 1000
    return {
        "kind": kind, "images": images, "side": side, "batch_size": batch_size,
        "workers": workers, "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(), "unfolded": unfolded,
        "forward_images_per_s": round(forward_rate, 2),
        "end_to_end_images_per_s": round(e2e_rate, 2),
        "naive_images_per_s": naive_rate and round(naive_rate, 2),
        "end_to_end_vs_forward": round(e2e_rate / forward_rate, 3),
        "end_to_end_vs_forward_median_round": round(
            float(np.median([f.wall / e.wall for f, e in zip(forward, e2e)])), 3),
        "end_to_end_vs_naive": naive_rate and round(e2e_rate / naive_rate, 2),
        "naive_vs_forward": naive_rate and round(naive_rate / forward_rate, 3),
        "forward_cpu_ms_per_image": round(forward_cpu, 1),
        "end_to_end_cpu_ms_per_image": round(e2e_cpu, 1),
        "forward_vs_end_to_end_cpu": round(forward_cpu / e2e_cpu, 3),
        "max_abs_diff_stored_vs_forward": float(np.abs(stored - reference).max()),
        "min_cosine_stored_vs_forward": round(float(min_cosine(stored, reference)), 5),
        "device": str(extractor.device),
        "rounds_forward_s": [round(c.wall, 2) for c in forward],
        "rounds_end_to_end_s": [round(c.wall, 2) for c in e2e],
        "stages_cpu_ms_per_image": stages,
        "load_average": round(os.getloadavg()[0], 1),
    }


def command_run(images: int, kind: str, runs: int = 3) -> dict:
    """`protoshelf embed` as a user runs it (a fresh interpreter, a catalog of `images` files),
    against its floor: images / forward-only rate + the import of torch, each measured here.
    Each of `runs` rounds imports torch, then embeds a fresh copy of the catalog; the medians
    count (one import alone moved between 1.1 and 1.9 s from run to run)."""
    folder = Path(tempfile.mkdtemp(prefix="protoshelf-embed-cli-"))
    try:
        catalog = folder / "catalog.sqlite"
        new_catalog(catalog, write_photos(folder, images, KINDS[kind][1], kind)).close()
        extractor = FeatureExtractor(load_backbone(), torch.device("cpu"))
        batch = torch.zeros(default_batch_size(extractor.device), 3, 224, 224, dtype=torch.uint8)
        rates, imports, embeds = [_rate(extractor, batch)], [], []
        for run in range(runs):
            with Clock() as torch_import:
                subprocess.run([sys.executable, "-c", "import protoshelf.core, torch"], check=True)
            imports.append(torch_import.wall)
            fresh = folder / f"run{run}.sqlite"
            shutil.copyfile(catalog, fresh)
            command = [sys.executable, "-m", "protoshelf.core.cli", "embed", "--db", str(fresh), "--device", "cpu", "--no-titles"]
            with Clock() as embed:
                subprocess.run(command, check=True, capture_output=True)
            embeds.append(embed.wall)
            rates.append(_rate(extractor, batch))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    rate, torch_s, embed_s = (float(np.median(values)) for values in (rates, imports, embeds))
    floor = images / rate + torch_s
    return {"kind": kind, "images": images, "runs": runs, "embed_s": round(embed_s, 1),
            "embed_s_range": [round(min(embeds), 1), round(max(embeds), 1)], "torch_import_s": round(torch_s, 1),
            "forward_images_per_s": round(rate, 1), "floor_s": round(floor, 1), "embed_vs_floor": round(embed_s / floor, 3),
            "load_average": round(os.getloadavg()[0], 1)}


def _rate(extractor: FeatureExtractor, batch: torch.Tensor, seconds: float = 5.0) -> float:
    extractor(batch)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        extractor(batch)
        count += len(batch)
    return count / (time.perf_counter() - started)


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """The worst agreement between two sets of vectors, row by row (GPU decoding resamples differently)."""
    return float(((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))).min())


def print_figures(f: dict) -> None:
    print(f"embedding {f['images']} {f['kind']} images of {f['side']} px on {f['device']}, batch {f['batch_size']}, {f['cpus']} CPUs, "
          f"{f['torch_threads']} torch threads, load average {f['load_average']}"
          + (", batch norms unfolded" if f["unfolded"] else ""))
    print(f"  forward only  {f['forward_images_per_s']:7.1f} images/s  {f['forward_cpu_ms_per_image']:6.1f} CPU ms/image  (ceiling)")
    print(f"  end to end    {f['end_to_end_images_per_s']:7.1f} images/s  {f['end_to_end_cpu_ms_per_image']:6.1f} CPU ms/image  "
          f"= {f['end_to_end_vs_forward']:.0%} of forward (median of rounds {f['end_to_end_vs_forward_median_round']:.0%}, "
          f"{f['forward_vs_end_to_end_cpu']:.0%} by CPU time)")
    if f["naive_images_per_s"]:
        print(f"  naive         {f['naive_images_per_s']:7.1f} images/s  = {f['naive_vs_forward']:.0%} of forward, "
              f"end to end is {f['end_to_end_vs_naive']:.1f}x naive")
    print("  CPU ms/image by stage: " + ", ".join(f"{k} {v}" for k, v in f["stages_cpu_ms_per_image"].items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=192)
    parser.add_argument("--batch-size", type=int, default=None, help="default: embed_catalog's for the CPU")
    parser.add_argument("--kinds", nargs="+", choices=sorted(KINDS), default=list(KINDS),
                        help="jpeg: 1000 px photos; png: 300 px cut-outs with alpha")
    parser.add_argument("--side", type=int, default=None, help="default: the kind's (jpeg 1000, png 300)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--workers", type=int, default=None, help="decoding threads (default: embed_catalog's)")
    parser.add_argument("--naive-images", type=int, default=32, help="the naive loop is slow: it sees fewer")
    parser.add_argument("--command-images", type=int, default=0,
                        help="also time `protoshelf embed` of this many images per kind against its floor (0: skip)")
    parser.add_argument("--command-runs", type=int, default=3, help="rounds of the command's timing; medians count")
    parser.add_argument("--unfolded", action="store_true", help="batch norms not folded into the convolutions")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.unfolded and args.command_images:
        parser.error("--unfolded applies to this process's rounds; `protoshelf embed` always folds")
    figures = {kind: run(args.images, args.batch_size, args.side, args.rounds, args.workers, args.naive_images, kind,
                         unfolded=args.unfolded) for kind in args.kinds}
    if args.command_images:
        figures["command"] = {kind: command_run(args.command_images, kind, args.command_runs) for kind in args.kinds}
    return report(figures, args.json, print_all)


def print_all(figures: dict) -> None:
    for kind in KINDS:
        if kind in figures:
            print_figures(figures[kind])
    for f in figures.get("command", {}).values():
        print(f"protoshelf embed of {f['images']} {f['kind']} images: {f['embed_s']} s (median of {f['runs']}, "
              f"{f['embed_s_range'][0]}-{f['embed_s_range'][1]}); floor {f['floor_s']} s "
              f"({f['images']} / {f['forward_images_per_s']} images/s forward + {f['torch_import_s']} s torch import, medians) "
              f"= {f['embed_vs_floor']:.2f}x the floor, load average {f['load_average']}")


if __name__ == "__main__":
    raise SystemExit(main())
