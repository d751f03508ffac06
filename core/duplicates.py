"""Groups of near-duplicate items: the same picture resized, re-encoded or slightly cropped.

Byte-identical files occur twice in a catalog only as products of a feed that share one picture
(variants, bundles: their vectors are equal, so they group like any copy); import skips other files
whose sha256 is already there. Duplicates are found by embedding: two items are linked when the cosine similarity of
their vectors is at least a threshold, and a group is a connected component of those links. Pairs
are compared in tiles of a matrix product, so memory stays bounded; links are merged into
components as they arrive, so a loose threshold cannot pile up millions of stored pairs. All
pairs is quadratic (~10M pairs/s on 2 busy cores: hours for 1M items), so big catalogs compare
only items that share a k-means cell (see `duplicate_groups`). DEFAULT_THRESHOLD sits between resized,
re-encoded and 3%-cropped copies of the demo pictures (>= 0.95 to their original) and different
products that look alike (axe and hammer, red and green apple: <= 0.89).
"""
from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from protoshelf.core.export import neutralise
from protoshelf.core.progress import Progress, no_progress
from protoshelf.core.safe_output import replace_safely
from protoshelf.core.similar import inverse_norms, unit_rows
from protoshelf.core.store import Store, Vectors

from protoshelf.core.constants import DUPLICATE_THRESHOLD as DEFAULT_THRESHOLD, PICTURE_DUPLICATE_THRESHOLD as PICTURE_THRESHOLD
TILE_ROWS = 2048
TILE_COLUMNS = 16_384
MAX_PENDING_LINKS = 2_000_000
BLOCKED_FROM_ROWS = 50_000
"""All pairs of 50,000 items take a few minutes; from here on pairs are compared within cells."""
ROWS_PER_CELL = 1000
PROBES = 3
"""Cells each item joins (its nearest), so a pair astride a border still meets: with 2, 0.5% of the
planted near-copies among 50k items were missed; with 3, none, and 99.5% at 1M (similar_search.py)."""
KMEANS_ROUNDS = 10


@dataclass(frozen=True)
class DuplicateGroup:
    """Items judged the same product; `similarities[i]` is item i's cosine to the first item."""

    item_ids: tuple[int, ...]
    similarities: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.item_ids)


def duplicate_groups(
    vectors: Vectors, threshold: float = DEFAULT_THRESHOLD, progress: Progress = no_progress, seed: int = 0,
    same_picture: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> list[DuplicateGroup]:
    """Connected components of "cosine >= threshold" with two or more items, largest first.

    With `same_picture` (core/picture_hash.py), a link also needs both items' perceptual hashes to
    agree: the embedding finds candidates, the hash tells a copy from a look-alike product, so the
    cosine threshold can be looser (PICTURE_THRESHOLD).

    Up to BLOCKED_FROM_ROWS items every pair is compared. Beyond, items are split into spherical
    k-means cells and each joins its PROBES nearest, and only pairs sharing a cell are compared:
    near-copies are far closer to each other than to any border, so they share a cell in practice
    (benchmarks/similar_search.py --duplicates measures the recall against all pairs), and a million
    items take minutes instead of hours.
    """
    matrix = np.asarray(vectors.matrix, np.float32)
    n = len(matrix)
    if n < 2:
        return []
    inverse = inverse_norms(matrix)
    progress(0, n)
    blocks = [np.arange(n)] if n < BLOCKED_FROM_ROWS else cells(matrix, inverse, seed, progress)
    total_pairs = sum(len(b) * (len(b) + 1) // 2 for b in blocks)
    done_pairs = 0
    component = np.arange(n)
    pending: list[np.ndarray] = []
    pending_links = 0
    for block in blocks:
        for links, pairs in _links_within(matrix, inverse, block, threshold):
            if same_picture is not None:
                links = links[:, same_picture(vectors.item_ids[links[0]], vectors.item_ids[links[1]])]
            pending.append(links)
            pending_links += links.shape[1]
            if pending_links > MAX_PENDING_LINKS:
                component = _merge(component, pending)
                pending, pending_links = [], 0
            done_pairs += pairs
            progress(n * done_pairs // total_pairs, n)
    component = _merge(component, pending)
    return _groups(vectors.item_ids, matrix, inverse, component)


def _links_within(matrix: np.ndarray, inverse: np.ndarray, rows: np.ndarray, threshold: float):
    """For each band of TILE_ROWS of `rows` (ascending): its links (row a < row b, cosine >=
    threshold) to the rows after it, tile by tile so memory stays bounded, and the pairs compared."""
    for top in range(0, len(rows), TILE_ROWS):
        band = rows[top : top + TILE_ROWS]
        left_side = matrix[band] * inverse[band, None]
        found = []
        for left in range(top, len(rows), TILE_COLUMNS):
            columns = rows[left : left + TILE_COLUMNS]
            sims = left_side @ matrix[columns].T
            sims *= inverse[None, columns]
            a, b = np.nonzero(sims >= threshold)
            upper = a + top < b + left
            found.append(np.stack([band[a[upper]], columns[b[upper]]]))
        yield np.concatenate(found, axis=1), len(band) * (2 * len(rows) - 2 * top - len(band) + 1) // 2


def cells(
    matrix: np.ndarray, inverse: np.ndarray, seed: int = 0, progress: Progress = no_progress
) -> list[np.ndarray]:
    """Rows (ascending) of each spherical k-means cell, every row in the cells of its PROBES nearest
    centres; the centres are fitted on a sample. `progress` hears (0, rows) between steps, so a
    cancel lands here too."""
    rng = np.random.default_rng(seed)
    k = max(1, len(matrix) // ROWS_PER_CELL)
    sample = np.sort(rng.choice(len(matrix), min(len(matrix), 32 * k), replace=False))
    units = matrix[sample] * inverse[sample, None]
    centres = units[rng.choice(len(units), k, replace=False)]
    for _ in range(KMEANS_ROUNDS):
        nearest = np.argmax(units @ centres.T, axis=1)
        sums = np.zeros_like(centres)
        np.add.at(sums, nearest, units)
        empty = ~sums.any(axis=1)
        sums[empty] = units[rng.choice(len(units), int(empty.sum()), replace=False)]
        centres = unit_rows(sums)
        progress(0, len(matrix))
    probes = min(PROBES, k)
    assigned = np.empty((len(matrix), probes), np.int64)
    for start in range(0, len(matrix), TILE_COLUMNS):
        scores = matrix[start : start + TILE_COLUMNS] @ centres.T  # a row's scale does not change its ranking
        assigned[start : start + len(scores)] = np.argpartition(-scores, probes - 1, axis=1)[:, :probes]
        progress(0, len(matrix))
    cell_of = assigned.ravel()
    row_of = np.repeat(np.arange(len(matrix)), probes)
    order = np.lexsort((row_of, cell_of))
    bounds = np.flatnonzero(np.diff(cell_of[order])) + 1
    return [rows for rows in np.split(row_of[order], bounds) if len(rows) > 1]


def _merge(component: np.ndarray, links: list[np.ndarray]) -> np.ndarray:
    """Each row's component, named by its first row, once `links` join the graph `component` sums up."""
    if not links:
        return component
    n = len(component)
    pairs = np.concatenate([np.stack([np.arange(n), component])] + links, axis=1)
    graph = coo_matrix((np.ones(pairs.shape[1], np.int8), (pairs[0], pairs[1])), shape=(n, n))
    labels = connected_components(graph, directed=False)[1]
    _, first_member = np.unique(labels, return_index=True)
    return first_member[labels]


def _groups(item_ids: np.ndarray, matrix: np.ndarray, inverse: np.ndarray, component: np.ndarray) -> list[DuplicateGroup]:
    sizes = np.bincount(component)
    members = np.flatnonzero(sizes[component] > 1)
    order = members[np.lexsort((item_ids[members], component[members]))]
    groups = []
    for rows in np.split(order, np.flatnonzero(np.diff(component[order])) + 1):
        if len(rows) < 2:
            continue
        sims = (matrix[rows] @ matrix[rows[0]]) * inverse[rows] * inverse[rows[0]]
        sims[0] = 1.0
        groups.append(DuplicateGroup(tuple(int(i) for i in item_ids[rows]), tuple(round(float(s), 4) for s in sims)))
    groups.sort(key=lambda g: (-len(g), g.item_ids[0]))
    return groups


def export_duplicates(store: Store, groups: list[DuplicateGroup], out_path: str | Path) -> int:
    """One CSV row per grouped item; the file appears only once it is complete. Returns rows."""
    out_path = Path(out_path).expanduser()
    items = store.items([i for g in groups for i in g.item_ids])
    written = 0
    with replace_safely(out_path, [store.path]) as handle:
        writer = csv.writer(handle)
        writer.writerow(["group", "group_size", "item_id", "path", "title", "similarity_to_first"])
        for number, group in enumerate(groups, start=1):
            for item_id, similarity in zip(group.item_ids, group.similarities):
                item = items.get(item_id)
                writer.writerow([
                    number, len(group), item_id, neutralise(item.path if item else ""),
                    neutralise(item.title if item else ""), f"{similarity:.4f}",
                ])
                written += 1
    return written
