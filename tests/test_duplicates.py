"""Near-duplicate groups: tiled search against brute force, and real copies of real pictures."""
from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from PIL import Image
from scipy.sparse.csgraph import connected_components

import protoshelf.core.duplicates
from conftest import DEMO
from protoshelf.core.cli import main
from protoshelf.core.duplicates import DEFAULT_THRESHOLD, DuplicateGroup, duplicate_groups, export_duplicates
from protoshelf.core.embedding import embed_catalog
from protoshelf.core.images import open_image
from protoshelf.core.importer import import_images
from protoshelf.core.progress import Cancelled
from protoshelf.core.store import Store, Vectors

ORIGINALS = ("axe", "hammer", "red_apple", "green_apple")
"""Two pairs of different products that look alike: a threshold must keep each pair apart."""


def brute_force_groups(vectors: Vectors, threshold: float) -> set[frozenset[int]]:
    unit = vectors.matrix / np.linalg.norm(vectors.matrix, axis=1, keepdims=True)
    _, labels = connected_components(unit @ unit.T >= threshold, directed=False)
    groups = {}
    for item_id, label in zip(vectors.item_ids, labels):
        groups.setdefault(label, set()).add(int(item_id))
    return {frozenset(g) for g in groups.values() if len(g) > 1}


@pytest.fixture
def clustered():
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((40, 32))
    rows = [c + rng.normal(0, 0.15, (rng.integers(1, 5), 32)) for c in centres]
    matrix = np.concatenate(rows + [rng.standard_normal((60, 32))]).astype(np.float32)
    order = rng.permutation(len(matrix))
    return Vectors(np.arange(100, 100 + len(matrix), dtype=np.int64), matrix[order])


@pytest.mark.parametrize("tile_rows,tile_columns,max_pending", [(2048, 16384, 2_000_000), (7, 11, 0), (64, 5, 3)])
def test_tiled_groups_match_brute_force(clustered, monkeypatch, tile_rows, tile_columns, max_pending):
    monkeypatch.setattr(protoshelf.core.duplicates, "TILE_ROWS", tile_rows)
    monkeypatch.setattr(protoshelf.core.duplicates, "TILE_COLUMNS", tile_columns)
    monkeypatch.setattr(protoshelf.core.duplicates, "MAX_PENDING_LINKS", max_pending)
    groups = duplicate_groups(clustered, threshold=0.95)
    expected = brute_force_groups(clustered, 0.95)
    assert len(expected) > 20
    assert {frozenset(g.item_ids) for g in groups} == expected
    assert [len(g) for g in groups] == sorted((len(g) for g in groups), reverse=True)


def test_a_chain_is_one_group_and_similarities_are_to_the_first_item():
    angles = np.radians([0, 10, 20, 90, 180])
    vectors = Vectors(np.array([1, 2, 3, 4, 5]), np.stack([np.cos(angles), np.sin(angles)], 1).astype(np.float32))
    threshold = float(np.cos(np.radians(12)))
    (group,) = duplicate_groups(vectors, threshold)
    assert group.item_ids == (1, 2, 3)
    assert group.similarities == pytest.approx((1.0, np.cos(np.radians(10)), np.cos(np.radians(20))), abs=1e-4)
    assert duplicate_groups(vectors, 0.999) == []
    assert duplicate_groups(Vectors(np.array([1]), np.ones((1, 2), np.float32))) == []


def test_progress_reaches_the_end_and_cancelling_stops(clustered, monkeypatch):
    monkeypatch.setattr(protoshelf.core.duplicates, "TILE_ROWS", 16)
    seen = []
    duplicate_groups(clustered, 0.95, progress=lambda done, total: seen.append((done, total)))
    assert seen[0] == (0, len(clustered)) and seen[-1] == (len(clustered), len(clustered))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)

    def cancel(done, total):
        if done:
            raise Cancelled

    with pytest.raises(Cancelled):
        duplicate_groups(clustered, 0.95, progress=cancel)


def copies(image: Image.Image) -> dict[str, Image.Image]:
    """What a catalog collects: a resized copy, a JPEG re-encode and a slightly cropped one."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    w, h = image.size
    return {
        "small.png": image.resize((160, 160), Image.Resampling.LANCZOS),
        "jpeg.jpg": open_image(buffer.getvalue()),
        "crop.png": image.crop((8, 8, w - 8, h - 8)),
    }


@pytest.fixture(scope="module")
def shop(tmp_path_factory, extractor):
    """A catalog of 4 product pictures at 256 px and 3 copies of each, embedded."""
    folder = tmp_path_factory.mktemp("duplicates")
    expected = []
    for name in ORIGINALS:
        original = open_image(DEMO / "images" / f"{name}.png").resize((256, 256), Image.Resampling.BICUBIC)
        original.save(folder / f"{name}.png")
        paths = [folder / f"{name}.png"]
        for suffix, image in copies(original).items():
            image.save(folder / f"{name}-{suffix}")
            paths.append(folder / f"{name}-{suffix}")
        expected.append(paths)
    store = Store(folder / "catalog.sqlite")
    report = import_images(store, [p for paths in expected for p in paths])
    embed_catalog(store, extractor=extractor, workers=0)
    ids = [frozenset(report.ids_by_path[str(p.resolve())] for p in paths) for paths in expected]
    yield store, ids
    store.close()


def test_resized_reencoded_and_cropped_copies_group_with_their_original(shop):
    store, expected = shop
    groups = duplicate_groups(store.load_embeddings("efficientnet_lite0"), DEFAULT_THRESHOLD)
    assert {frozenset(g.item_ids) for g in groups} == set(expected)
    assert all(min(g.similarities) >= 0.85 for g in groups)


def test_export_and_cli_write_one_row_per_grouped_item(shop, tmp_path, capsys):
    store, expected = shop
    first = min(expected[0])
    store.set_title(first, "=HYPERLINK(\"http://x\")")
    groups = duplicate_groups(store.load_embeddings("efficientnet_lite0"))
    assert export_duplicates(store, groups, tmp_path / "groups.csv") == 16
    rows = list(csv.DictReader((tmp_path / "groups.csv").open(encoding="utf-8")))
    assert {r["group_size"] for r in rows} == {"4"} and len({r["group"] for r in rows}) == 4
    title = next(r["title"] for r in rows if r["item_id"] == str(first))
    assert title.startswith("'=")

    out = tmp_path / "cli.csv"
    assert main(["duplicates", str(out), "--threshold", "0.99999", "--db", str(store.path)]) == 0  # whole-picture input: resized copies reach 0.999
    assert "0 groups" in capsys.readouterr().out
    assert list(csv.reader(out.open())) == [["group", "group_size", "item_id", "path", "title", "similarity_to_first"]]
    assert main(["duplicates", str(out), "--db", str(store.path)]) == 0
    assert "4 groups of near-duplicates (16 of 16" in capsys.readouterr().out
    assert len(list(csv.DictReader(out.open()))) == 16


def test_duplicate_group_is_a_plain_value():
    group = DuplicateGroup((4, 9), (1.0, 0.97))
    assert len(group) == 2 and group == DuplicateGroup((4, 9), (1.0, 0.97))


def planted_copies(rows: int = 3000, dim: int = 64, seed: int = 5) -> Vectors:
    """Items in 30 loose clusters (products alike), a tenth of them with 1-3 near-copies."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((30, dim))
    items = centres[rng.integers(0, 30, rows)] + rng.normal(0, 0.6, (rows, dim))
    copies = [item + rng.normal(0, 0.05, (rng.integers(1, 4), dim)) for item in items[: rows // 10]]
    matrix = np.concatenate([items, *copies]).astype(np.float32)
    return Vectors(np.arange(1, len(matrix) + 1, dtype=np.int64), matrix[rng.permutation(len(matrix))])


def test_big_catalogs_compare_within_cells_and_find_the_same_groups(monkeypatch):
    vectors = planted_copies()
    monkeypatch.setattr(protoshelf.core.duplicates, "BLOCKED_FROM_ROWS", 1000)
    monkeypatch.setattr(protoshelf.core.duplicates, "ROWS_PER_CELL", 50)
    compared = []
    original = protoshelf.core.duplicates._links_within
    monkeypatch.setattr(protoshelf.core.duplicates, "_links_within",
                        lambda m, inv, rows, t: compared.append(len(rows)) or original(m, inv, rows, t))
    seen = []
    groups = duplicate_groups(vectors, threshold=0.95, progress=lambda done, total: seen.append((done, total)))
    expected = brute_force_groups(vectors, 0.95)
    assert len(expected) >= 250
    assert {frozenset(g.item_ids) for g in groups} == expected
    n = len(vectors)
    assert sum(c * (c + 1) // 2 for c in compared) < n * (n + 1) // 2 / 5  # far fewer pairs than all
    assert seen[-1] == (n, n)


def test_perceptual_hashes_keep_copies_and_part_look_alikes(shop):
    """With hashes confirming links, a looser cosine still finds every copy and no look-alike."""
    from protoshelf.core.duplicates import PICTURE_THRESHOLD
    from protoshelf.core.picture_hash import PictureHashes

    store, expected = shop
    vectors = store.load_embeddings("efficientnet_lite0")
    hashes = PictureHashes(store)
    groups = duplicate_groups(vectors, PICTURE_THRESHOLD, same_picture=hashes.same_picture)
    assert {frozenset(g.item_ids) for g in groups} == set(expected)
    cosine_alone = duplicate_groups(vectors, PICTURE_THRESHOLD)
    assert len(cosine_alone) < 4  # without the hashes, that cosine merges axe and hammer
