"""A million-item catalog: opening it with its embeddings in memory, and re-scoring every item.

Builds a fake catalog in a temporary folder (1M items x 1280-d float32 vectors: about 5.7 GB of
SQLite plus 5.1 GB of vector cache, deleted afterwards), then measures, each figure with its
baseline and the bound it runs into:

- cold load: `Store.load_embeddings` reading SQLite (what every load cost before the vector
  cache; it also writes the cache), in a fresh process;
- warm open: a fresh process opens the catalog and maps the cache, then reads every page once,
  so the matrix is really in memory (from the OS page cache: the file was just written);
- scores: `PrototypeClassifier.predict` over every row (from the catalog's centred bfloat16 copy,
  made by the first fit after a load), against the float32 path, the float32 cosine before
  issue 6, and one bare read pass over the float32 matrix (its memory-bandwidth floor);

with peak memory: the resident high-water mark a load adds to its process (Linux VmHWM, reset
before the load; file pages of the mapped cache count, though the OS can drop them at will), and
tracemalloc for the scoring's own allocations.

    python -m benchmarks.rescoring [--items 1000000] [--categories 10] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from benchmarks import report

from protoshelf.core import vector_cache
from protoshelf.core.backbones import DEFAULT_BACKBONE
from protoshelf.core.store import Store

MODEL = DEFAULT_BACKBONE
SHOTS = 5


def make_catalog(path: Path, items: int, dim: int, categories: int, seed: int = 0) -> np.ndarray:
    """Rows straight into SQLite, one transaction, no journal (a throwaway file); returns labels."""
    Store(path).close()
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, categories, items)
    centres = rng.normal(size=(categories, dim)).astype(np.float32) + 2.0
    noise = rng.normal(size=(20_000, dim)).astype(np.float32)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO items (id, path, sha256, width, height, file_size, added_at)"
            " VALUES (?, ?, ?, 1000, 1000, 100000, '2024-01-01 00:00:00')",
            ((i + 1, f"/catalog/item{i:07d}.jpg", f"{i:064x}") for i in range(items)),
        )
        for start in range(0, items, len(noise)):
            block = slice(start, min(items, start + len(noise)))
            vectors = centres[truth[block]] + np.roll(noise, start // len(noise), axis=1)[: block.stop - start]
            conn.executemany(
                "INSERT INTO embeddings (model, item_id, vector) VALUES (?, ?, ?)",
                ((MODEL, start + r + 1, v.astype("<f4").tobytes()) for r, v in enumerate(vectors)),
            )
        conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode = WAL")
    finally:
        conn.close()
    return truth


def memory_gib(field: str) -> float:
    """VmRSS or VmHWM (its high-water mark) from /proc; ru_maxrss where there is no /proc."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def reset_peak() -> float:
    """Restart the high-water mark at the current RSS (Linux) and return that RSS: figures are
    what the work adds to an interpreter that has already imported everything."""
    clear_refs = Path("/proc/self/clear_refs")
    if clear_refs.exists():
        clear_refs.write_text("5")
    return memory_gib("VmRSS")


def in_fresh_process(task: str, catalog: Path, categories: int = 0, repeats: int = 0) -> dict:
    """Each measurement in its own interpreter: nothing cached in-process, peak memory its own.
    Python's start and imports are left out: clocks start when the catalog is opened."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.rescoring", "--child", task, "--catalog", str(catalog),
         "--categories", str(categories), "--repeats", str(repeats)],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parent.parent,
    )
    return json.loads(out.stdout)


def child(task: str, catalog: Path, categories: int, repeats: int) -> dict:
    """`sqlite`: load without the vector cache; `first`: load and write the cache; `warm`: open the
    cached catalog, read every page of the matrix, then score."""
    if task == "sqlite":
        vector_cache.MIN_ROWS = 2**62
    before = reset_peak()
    started = time.perf_counter()
    store = Store(catalog)
    vectors = store.load_embeddings(MODEL)
    loaded = time.perf_counter()
    vectors.matrix.sum(axis=0)  # every page read once: the matrix is in memory, not just mapped
    figures = {
        "rows": len(vectors), "open_s": loaded - started, "in_memory_s": time.perf_counter() - started,
        "mapped": not vectors.matrix.flags.owndata, "peak_rss_gib": memory_gib("VmHWM") - before,
    }
    if task == "warm":
        truth = np.load(catalog.with_suffix(".truth.npy"))
        figures["scoring"] = scoring(vectors.matrix, truth, categories, repeats)
        figures["scoring"]["peak_rss_after_scoring_gib"] = round(memory_gib("VmHWM") - before, 2)
    store.close()
    return figures


def cosine_before_issue_6(queries: np.ndarray, prototypes: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """The scoring this benchmark replaced: 64k-row chunks, three passes each (norms, centre, classes)."""
    out = np.empty((len(queries), len(prototypes)), np.float32)
    centre_dot = prototypes @ centre
    centre_sq = float(centre @ centre)
    for start in range(0, len(queries), 65_536):
        q = np.asarray(queries[start : start + 65_536], np.float32)
        sq = np.einsum("ij,ij->i", q, q) - 2 * (q @ centre) + centre_sq
        out[start : start + len(q)] = (q @ prototypes.T - centre_dot) / np.sqrt(np.maximum(sq, 1e-12))[:, None]
    return out


def timed(repeats: int, work) -> tuple[list[float], object]:
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - started)
    return times, result


def best_of(repeats: int, work) -> tuple[float, object]:
    times, result = timed(repeats, work)
    return min(times), result


def scoring(matrix: np.ndarray, truth: np.ndarray, categories: int, repeats: int) -> dict:
    from protoshelf.core.methods.centred_rows import CentredRows  # after the load's peak: it brings torch
    from protoshelf.core.methods.prototypes import PrototypeClassifier, scores_with_rejection

    support_rows = np.concatenate([np.flatnonzero(truth == c)[:SHOTS] for c in range(categories)])
    started = time.perf_counter()
    model = PrototypeClassifier().fit(matrix[support_rows], truth[support_rows], unlabelled=matrix)
    first_fit_s = time.perf_counter() - started  # makes the catalog's centred bfloat16 copy, once per load
    prepared = CentredRows.of(matrix)
    read_pass_s, _ = best_of(repeats, lambda: matrix.sum(axis=0))
    before_s, before = best_of(repeats, lambda: cosine_before_issue_6(matrix, model.prototypes_, model.centre_))
    cosine_s, cosine = best_of(repeats, lambda: model.cosine(matrix))
    float32_s, exact = best_of(
        repeats, lambda: scores_with_rejection(model.cosine(matrix), model.temperature, model.reject_similarity_)
    )
    fit_s, _ = best_of(repeats, lambda: PrototypeClassifier().fit(
        matrix[support_rows], truth[support_rows], unlabelled=matrix))
    score_times, scores = timed(repeats, lambda: model.predict(matrix))
    scores_s = min(score_times)
    tracemalloc.start()
    model.predict(matrix)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    accuracy = float((model.classes_[scores.argmax(axis=1)] == truth).mean())
    return {
        "categories": categories,
        "scores_s": round(scores_s, 3),
        "scores_median_s": round(float(np.median(score_times)), 3),
        "scores_path": "bfloat16 copy" if prepared is not None else "float32",
        "refit_s": round(fit_s, 3),
        "first_fit_with_copy_s": round(first_fit_s, 2),
        "copy_gib": round(prepared.unit.nbytes / 2**30, 2) if prepared is not None else 0.0,
        "scores_float32_s": round(float32_s, 3),
        "scores_speedup_vs_float32": round(float32_s / scores_s, 2),
        "max_abs_score_diff_vs_float32": float(np.abs(scores - exact).max()),
        "top1_agreement_vs_float32": float((scores.argmax(axis=1) == exact.argmax(axis=1)).mean()),
        "cosine_s": round(cosine_s, 3),
        "cosine_before_s": round(before_s, 3),
        "cosine_speedup": round(before_s / cosine_s, 2),
        "read_pass_s": round(read_pass_s, 3),
        "cosine_vs_read_pass": round(cosine_s / read_pass_s, 2),
        "max_abs_diff_vs_before": float(np.abs(cosine - before).max()),
        "top1_accuracy": round(accuracy, 4),
        "scoring_traced_peak_mib": round(traced_peak / 2**20, 1),
    }


def run(items: int = 1_000_000, dim: int = 1280, categories: int = 10, repeats: int = 3,
        keep: Path | None = None) -> dict:
    folder = keep or Path(tempfile.mkdtemp(prefix="protoshelf-rescoring-"))
    folder.mkdir(parents=True, exist_ok=True)
    catalog = folder / "million.sqlite"
    try:
        started = time.perf_counter()
        truth = catalog.with_suffix(".truth.npy")
        if not (catalog.exists() and truth.exists()):  # --keep reuses the catalog it built
            np.save(truth, make_catalog(catalog, items, dim, categories))
        shutil.rmtree(vector_cache.folder(catalog), ignore_errors=True)  # the first load writes it afresh
        build_s = time.perf_counter() - started
        sqlite = in_fresh_process("sqlite", catalog)
        first = in_fresh_process("first", catalog)
        warm = in_fresh_process("warm", catalog, categories, repeats)
    finally:
        if keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    return {
        "items": items, "dim": dim, "build_s": round(build_s, 1),
        "sqlite_load_s": round(sqlite["in_memory_s"], 2),
        "sqlite_peak_rss_gib": round(sqlite["peak_rss_gib"], 2),
        "first_load_with_cache_write_s": round(first["in_memory_s"], 2),
        "warm_open_s": round(warm["open_s"], 3),
        "warm_in_memory_s": round(warm["in_memory_s"], 2),
        "warm_peak_rss_gib": round(warm["peak_rss_gib"], 2),
        "warm_mapped": warm["mapped"],
        "load_speedup": round(sqlite["in_memory_s"] / warm["in_memory_s"], 1),
        **warm["scoring"],
        "load_average": round(os.getloadavg()[0], 1),
    }


def print_figures(f: dict) -> None:
    print(f"{f['items']:,} items x {f['dim']} float32 (catalog built in {f['build_s']} s), "
          f"{os.cpu_count()} CPUs, load average {f['load_average']}")
    print(f"  load from SQLite        {f['sqlite_load_s']:7.2f} s   peak RSS {f['sqlite_peak_rss_gib']:.2f} GiB  (baseline)")
    print(f"  first load + cache      {f['first_load_with_cache_write_s']:7.2f} s   (once per change to the vectors)")
    print(f"  open + in memory        {f['warm_in_memory_s']:7.2f} s   peak RSS {f['warm_peak_rss_gib']:.2f} GiB  "
          f"= {f['load_speedup']}x faster (mapping alone {f['warm_open_s']} s)")
    print(f"  scores, {f['categories']} categories  {f['scores_s']:7.3f} s   (median {f['scores_median_s']:.3f} s; "
          f"{f['scores_path']}) = "
          f"{f['scores_speedup_vs_float32']}x the float32 path ({f['scores_float32_s']:.3f} s), max |score diff| "
          f"{f['max_abs_score_diff_vs_float32']:.1e}, top-1 agreement {f['top1_agreement_vs_float32']:.2%}")
    print(f"  refit {f['refit_s']:.3f} s; first fit after a load {f['first_fit_with_copy_s']:.2f} s "
          f"(makes the {f['copy_gib']:.2f} GiB bfloat16 copy)")
    print(f"  float32 cosine {f['cosine_s']:.3f} s = {f['cosine_speedup']}x faster than before issue 6 "
          f"({f['cosine_before_s']:.3f} s), {f['cosine_vs_read_pass']}x one bare read pass ({f['read_pass_s']:.3f} s)")
    print(f"  scoring allocates {f['scoring_traced_peak_mib']} MiB at peak (peak RSS {f['peak_rss_after_scoring_gib']:.2f} GiB); "
          f"max |diff| vs before {f['max_abs_diff_vs_before']:.1e}; top-1 accuracy {f['top1_accuracy']:.1%}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--categories", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="build the catalog in this folder and leave it there")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--catalog", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.catalog, args.categories, args.repeats)))
        return 0
    figures = run(args.items, args.dim, args.categories, args.repeats, args.keep)
    return report(figures, args.json, print_figures)


if __name__ == "__main__":
    raise SystemExit(main())
