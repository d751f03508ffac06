"""Exact cosine search (protoshelf.core.similar) against approximate indexes, on synthetic 1280-d vectors.

For each size it prints, per method: build time, single-query latency (median and p95 over the
queries, one query at a time as "Show similar" asks), recall@10 against the exact answer, and
how many queries the index must answer before its build time is paid back.

Two kinds of data: "random" (i.i.d. Gaussian directions, the worst case for any index, as the
nearest neighbours are barely nearer than the rest) and "clustered" (points scattered around
n/100 centres at cosine ~0.7, closer to how embeddings of product categories lie).

    python -m benchmarks.similar_search                       # 100k and 1M, random and clustered
    python -m benchmarks.similar_search --sizes 100000 --data random --hnsw-size 20000
    python -m benchmarks.similar_search --sizes --duplicates 50000   # near-duplicate grouping: cells vs all pairs

1M float32 vectors take 5.1 GB, and the faiss IVF-Flat index a second copy.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from protoshelf.core.similar import SimilaritySearch
from protoshelf.core.store import Vectors

DIM = 1280
K = 10
CHUNK = 65_536


def unit_gaussian(rng: np.random.Generator, n: int, out: np.ndarray | None = None) -> np.ndarray:
    out = np.empty((n, DIM), np.float32) if out is None else out
    for start in range(0, n, CHUNK):
        block = rng.standard_normal((min(CHUNK, n - start), DIM), dtype=np.float32)
        out[start : start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def make_data(kind: str, n: int, queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` catalog vectors and `queries` query vectors that are not in the catalog."""
    rng = np.random.default_rng(seed)
    if kind == "random":
        return unit_gaussian(rng, n), unit_gaussian(rng, queries)
    centres = unit_gaussian(rng, max(1, n // 100))

    def around(count: int, out: np.ndarray | None = None) -> np.ndarray:
        out = unit_gaussian(rng, count, out)
        for start in range(0, count, CHUNK):
            block = out[start : start + CHUNK]
            block += centres[rng.integers(0, len(centres), len(block))]
            block /= np.linalg.norm(block, axis=1, keepdims=True)
        return out

    return around(n), around(queries)


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def latencies(search_one, queries: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    times, answers = [], []
    for q in queries:
        start = time.perf_counter()
        answers.append(search_one(q))
        times.append(time.perf_counter() - start)
    return np.array(times), answers


def recall(found: list[np.ndarray], truth: list[np.ndarray]) -> float:
    return float(np.mean([len(np.intersect1d(f, t)) / len(t) for f, t in zip(found, truth)]))


def report(method: str, build_s: float, times: np.ndarray, rec: float, exact_ms: float | None) -> None:
    median, p95 = np.median(times) * 1e3, np.percentile(times, 95) * 1e3
    line = f"  {method:<24} build {build_s:8.1f} s   query median {median:8.2f} ms  p95 {p95:8.2f} ms   recall@10 {rec:.3f}"
    if exact_ms is not None:
        saved = exact_ms - median
        payback = f"{build_s * 1e3 / saved:,.0f} queries" if saved > 0 else "never"
        line += f"   {exact_ms / median:6.1f}x faster, build paid back after {payback}"
    print(line, flush=True)


def bench_exact(matrix: np.ndarray, queries: np.ndarray):
    ids = np.arange(len(matrix), dtype=np.int64)
    search, build_s = timed(SimilaritySearch, Vectors(ids, matrix))
    times, answers = latencies(lambda q: [n.item_id for n in search.nearest(q, K)[0]], queries)
    truth = [np.asarray(a) for a in answers]
    report("exact (numpy)", build_s, times, 1.0, None)
    return truth, float(np.median(times) * 1e3)


def bench_faiss_ivf(matrix: np.ndarray, queries: np.ndarray, truth, exact_ms: float, nprobes) -> None:
    import faiss

    faiss.omp_set_num_threads(os.cpu_count() or 1)
    nlist = int(4 * np.sqrt(len(matrix)))
    rng = np.random.default_rng(1)
    sample = matrix[np.sort(rng.choice(len(matrix), min(len(matrix), 20 * nlist), replace=False))]

    def build():
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(DIM), DIM, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = 10
        index.cp.min_points_per_centroid = 5
        index.train(sample)
        for start in range(0, len(matrix), CHUNK):
            index.add(matrix[start : start + CHUNK])
        return index

    index, build_s = timed(build)
    for nprobe in nprobes:
        index.nprobe = nprobe
        times, answers = latencies(lambda q: index.search(q[None], K)[1][0], queries)
        report(f"faiss IVF{nlist},Flat p{nprobe}", build_s, times, recall(answers, truth), exact_ms)
    del index


def bench_usearch_hnsw(matrix: np.ndarray, queries: np.ndarray, truth, exact_ms: float) -> None:
    try:
        from usearch.index import Index
    except ImportError:
        print("  usearch HNSW: skipped (pip install usearch)")
        return
    index = Index(ndim=DIM, metric="cos", dtype="i8")
    _, build_s = timed(lambda: index.add(np.arange(len(matrix)), matrix, threads=os.cpu_count() or 1))
    times, answers = latencies(lambda q: index.search(q, K).keys, queries)
    report("usearch HNSW i8", build_s, times, recall(answers, truth), exact_ms)


EXACT_DUPLICATES_UP_TO = 100_000
"""All pairs beyond this take too long to run as the reference."""


def with_copies(matrix: np.ndarray, share: float = 0.02, seed: int = 1) -> np.ndarray:
    """The last `share` of the rows replaced by near-copies of the first ones, at cosine 0.93-0.99
    to their original (unit rows plus Gaussian noise of the matching size)."""
    rng = np.random.default_rng(seed)
    copies = int(len(matrix) * share)
    cosine = rng.uniform(0.93, 0.99, copies).astype(np.float32)
    sigma = np.sqrt((1 / cosine**2 - 1) / DIM)
    noisy = matrix[:copies] + rng.standard_normal((copies, DIM), dtype=np.float32) * sigma[:, None]
    matrix[len(matrix) - copies :] = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
    return matrix


def bench_duplicates(n: int) -> None:
    """Near-duplicate grouping on clustered vectors with planted near-copies: the k-means-cell search
    that protoshelf.core.duplicates uses from BLOCKED_FROM_ROWS items, against all pairs where that is feasible."""
    import protoshelf.core.duplicates
    from protoshelf.core.duplicates import duplicate_groups

    matrix = with_copies(make_data("clustered", n, 1)[0])
    vectors = Vectors(np.arange(n, dtype=np.int64), matrix)
    threshold = protoshelf.core.duplicates.DEFAULT_THRESHOLD
    switch = protoshelf.core.duplicates.BLOCKED_FROM_ROWS
    protoshelf.core.duplicates.BLOCKED_FROM_ROWS = 0
    blocked, blocked_s = timed(duplicate_groups, vectors, threshold)
    print(f"duplicate_groups on {n:,} clustered vectors with {int(n * 0.02):,} planted near-copies, within "
          f"k-means cells: {blocked_s:.1f} s, {len(blocked)} groups", flush=True)
    if n > EXACT_DUPLICATES_UP_TO:
        protoshelf.core.duplicates.BLOCKED_FROM_ROWS = switch
        return
    protoshelf.core.duplicates.BLOCKED_FROM_ROWS = n + 1
    exact, exact_s = timed(duplicate_groups, vectors, threshold)
    protoshelf.core.duplicates.BLOCKED_FROM_ROWS = switch
    group_of = {i: k for k, g in enumerate(blocked) for i in g.item_ids}
    pairs = [(g.item_ids[0], i) for g in exact for i in g.item_ids[1:]]
    kept = sum(group_of.get(a, -1) == group_of.get(b, -2) for a, b in pairs)
    same = {frozenset(g.item_ids) for g in blocked} == {frozenset(g.item_ids) for g in exact}
    print(f"  all pairs: {exact_s:.1f} s ({n * (n - 1) / 2 / exact_s / 1e6:.0f}M pairs/s, {len(exact)} groups) "
          f"= {exact_s / blocked_s:.1f}x the cells' time; cells keep {kept / max(1, len(pairs)):.2%} of the "
          f"linked items together, identical groups: {same}; all pairs of 1M items would take "
          f"~{exact_s * (1e6 / n) ** 2 / 3600:.1f} h")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.similar_search", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--data", choices=["random", "clustered", "both"], default="both")
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--nprobe", type=int, nargs="+", default=[8, 32, 128])
    parser.add_argument("--hnsw-size", type=int, default=0,
                        help="also build a usearch HNSW index at this size (slow to build: keep it small)")
    parser.add_argument("--duplicates", type=int, default=0, help="time near-duplicate grouping at this size")
    args = parser.parse_args(argv)
    kinds = ["random", "clustered"] if args.data == "both" else [args.data]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{os.cpu_count()} CPU cores (load average {load} before starting), {DIM}-d float32, k={K}, "
          f"{args.queries} single queries")
    sizes = sorted(set(args.sizes + ([args.hnsw_size] if args.hnsw_size else [])))
    for kind in kinds:
        for n in sizes:
            matrix, queries = make_data(kind, n, args.queries)
            print(f"{kind}, {n:,} vectors ({matrix.nbytes / 2**30:.1f} GiB):", flush=True)
            truth, exact_ms = bench_exact(matrix, queries)
            if n in args.sizes:
                bench_faiss_ivf(matrix, queries, truth, exact_ms, args.nprobe)
            if n == args.hnsw_size:
                bench_usearch_hnsw(matrix, queries, truth, exact_ms)
            del matrix
    if args.duplicates:
        bench_duplicates(args.duplicates)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
