"""Peak memory of the two big moments of a large catalog: loading every embedding into the matrix
the app classifies from (`Store.load_embeddings`), and fitting each method on 2,000 examples.

Each measurement runs in a fresh child interpreter, and its figure is the peak resident memory
(Linux VmHWM, reset after imports and inputs) above the resident memory just before the work, so
it counts SQLite, numpy and torch alike. The bound this shows: loading N d-dimensional vectors
peaks at about the matrix itself, N x d x 4 bytes (4.8 GiB for 1M x 1280), where the loader
before issue 7 (fetch every row, join, then view) peaked at more than twice that.

    python -m benchmarks.memory                                  # 1M x 1280: ~5 GB file, ~5 GB RAM
    python -m benchmarks.memory --items 200000 --compare-old     # also the old loader (2.2x RAM)
    python -m benchmarks.memory --catalog /tmp/big.sqlite --keep # build once, measure again later
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

import numpy as np

MODEL = "efficientnet_lite0"
GIB = 2**30
MIB = 2**20

CHILD = r"""
import json, sys, time
from pathlib import Path
import numpy as np

def kib(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024

def measure(work):
    Path("/proc/self/clear_refs").write_text("5")
    before = kib("VmRSS")
    started = time.perf_counter()
    result = work()
    return result, time.perf_counter() - started, kib("VmHWM") - before

task, catalog, model = sys.argv[1], sys.argv[2], sys.argv[3]
from protoshelf.core.store import Store
if task.startswith("load"):
    store = Store(catalog)
if task == "load":
    vectors, seconds, peak = measure(lambda: store.load_embeddings(model))
    out = {"rows": len(vectors), "matrix": vectors.matrix.nbytes + vectors.item_ids.nbytes}
elif task == "load-old":
    from benchmarks.memory import load_embeddings_before_issue_7
    (ids, matrix), seconds, peak = measure(lambda: load_embeddings_before_issue_7(store, model))
    out = {"rows": len(ids), "matrix": matrix.nbytes + ids.nbytes}
else:
    from protoshelf.core.methods import make_method
    support_n, unlabelled_n, dim = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((20, dim), dtype=np.float32)
    labels = np.arange(support_n) % 20
    support = centres[labels] + rng.standard_normal((support_n, dim), dtype=np.float32)
    unlabelled = centres[rng.integers(0, 20, unlabelled_n)] + rng.standard_normal((unlabelled_n, dim), dtype=np.float32)
    labels = labels.tolist()
    name = task.removeprefix("fit:")
    make_method(name).fit(support[:40], labels[:40], unlabelled=unlabelled[:1000])  # lazy imports, warm-up
    _, seconds, peak = measure(lambda: make_method(name).fit(support, labels, unlabelled=unlabelled))
    out = {"rows": support_n, "matrix": support.nbytes + unlabelled.nbytes}
print(json.dumps({**out, "seconds": seconds, "peak": peak}))
"""


def load_embeddings_before_issue_7(store, model: str):
    """The loader this benchmark replaced, kept to show the difference: every row, then one join."""
    with closing(sqlite3.connect(store.path)) as db:
        rows = db.execute("SELECT item_id, vector FROM embeddings WHERE model = ? ORDER BY item_id", (model,)).fetchall()
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    return ids, np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), -1)


def build_catalog(path: Path, items: int, dim: int) -> None:
    """A catalog of `items` fake items with clustered random unit vectors, written in big chunks."""
    from protoshelf.core.store import Store

    Store(path).close()
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((20, dim), dtype=np.float32)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode = WAL")
        chunk = 20_000
        for start in range(0, items, chunk):
            ids = range(start + 1, min(items, start + chunk) + 1)
            db.executemany(
                "INSERT INTO items (id, path, sha256, width, height, file_size, added_at) "
                "VALUES (?, ?, ?, 1, 1, 1, '2024-01-01 00:00:00')",
                ((i, f"/shop/{i}.jpg", f"{i:064x}") for i in ids),
            )
            block = centres[rng.integers(0, 20, len(ids))] + rng.standard_normal((len(ids), dim), dtype=np.float32)
            block /= np.linalg.norm(block, axis=1, keepdims=True)
            db.executemany(
                "INSERT INTO embeddings (model, item_id, vector) VALUES (?, ?, ?)",
                ((MODEL, i, row.astype("<f4").tobytes()) for i, row in zip(ids, block)),
            )
            db.commit()


def child(task: str, catalog: Path, *args) -> dict:
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", CHILD, task, str(catalog), MODEL, *map(str, args)],
                          capture_output=True, text=True, cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(label: str, result: dict) -> None:
    print(f"{label}: {result['seconds']:.2f} s, peak +{result['peak'] / MIB:,.0f} MiB "
          f"= {result['peak'] / result['matrix']:.2f}x its {result['matrix'] / MIB:,.0f} MiB of vectors")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--support", type=int, default=2000, help="examples in the fit")
    parser.add_argument("--fit-unlabelled", type=int, default=100_000, help="catalog vectors the fit sees")
    parser.add_argument("--compare-old", action="store_true", help="also measure the loader before issue 7")
    parser.add_argument("--catalog", type=Path, help="reuse or create this catalog file")
    parser.add_argument("--keep", action="store_true", help="keep the catalog file")
    args = parser.parse_args()
    if not sys.platform.startswith("linux"):
        raise SystemExit("reads peak memory from /proc/self: Linux only")

    catalog = args.catalog or Path(tempfile.mkdtemp(prefix="protoshelf-memory-")) / "catalog.sqlite"
    try:
        if not catalog.exists():
            started = time.perf_counter()
            build_catalog(catalog, args.items, args.dim)
            print(f"built {args.items:,} items x {args.dim}-d in {time.perf_counter() - started:.0f} s: "
                  f"{catalog.stat().st_size / GIB:.2f} GiB file")
        report("load_embeddings", child("load", catalog))
        if args.compare_old:
            report("loader before issue 7", child("load-old", catalog))
        from protoshelf.core.methods import feature_method_names

        for name in feature_method_names():
            report(f"fit {name} on {args.support:,} examples (+{args.fit_unlabelled:,} unlabelled)",
                   child(f"fit:{name}", catalog, args.support, args.fit_unlabelled, args.dim))
    finally:
        if not args.keep and not args.catalog:
            shutil.rmtree(catalog.parent)  # the catalog, its WAL and its vector cache


if __name__ == "__main__":
    main()
