"""SIGKILL a real child process mid-import, mid-embedding, mid-classify, mid-label-change and
mid-schema-creation; the catalog must pass `PRAGMA integrity_check`, keep every committed step,
hold all-or-nothing batches, and let the rerun finish without duplicates.

The child is tests/crash_worker.py; it prints a line after each commit and waits for the test's
go-ahead before the next. The test lets it run to a random step, allows a few more, and kills it a
random moment later: inside one of those steps or, if they were quick, while the worker waits for
more, but never after it has finished, however fast or loaded the machine. PROTOSHELF_FUZZ=long
runs many more seeds.
"""
from __future__ import annotations

import os
import queue
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from conftest import add_items, raw_sql, write_image
from protoshelf.core.classify import classify_catalog
from protoshelf.core.embedding import embed_catalog
from protoshelf.core.images import file_sha256
from protoshelf.core.model_input import open_model_image
from protoshelf.core.importer import find_images, import_images
from protoshelf.core.store import Store
from crash_worker import CLASSIFY_BACKBONE, EMBED_BATCH, IMPORT_BATCH, apply_op, label_ops

pytestmark = pytest.mark.slow  # each test starts a Python process, most load torch
WORKER = Path(__file__).with_name("crash_worker.py")
LONG = os.environ.get("PROTOSHELF_FUZZ") == "long"
SEEDS = range(20) if LONG else range(3)
EMBED_SEEDS, CLASSIFY_SEEDS = (SEEDS, SEEDS) if LONG else (range(1), range(2))
"""Embedding and classify workers load torch (seconds each), so CI kills them fewer times."""


def kill_midway(scenario: str, catalog: Path, *args, after_line, extra_steps: int, jitter: float, rng,
                timeout=120.0) -> list[str]:
    """Start the worker, let it run step by step up to the first line where `after_line` is true,
    allow it `extra_steps` more, SIGKILL it up to `jitter` seconds later, and return every line it
    printed (including those after the chosen one)."""
    errors = tempfile.TemporaryFile("w+")  # a file, not a pipe: a chatty child never blocks on it
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), scenario, str(catalog), *map(str, args)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True, start_new_session=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump():
        for line in proc.stdout:
            if line.endswith("\n"):  # a kill can cut the last line short
                lines.put(line.strip())
        lines.put(None)

    def go_on(steps=1):
        try:
            proc.stdin.write("go\n" * steps)
            proc.stdin.flush()
        except BrokenPipeError:  # the worker died; the next line read says so
            pass

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    seen: list[str] = []
    try:
        while True:
            line = lines.get(timeout=timeout)
            if line is None:
                errors.seek(0)
                pytest.fail(f"worker ended before the kill point ({proc.wait()}): {errors.read()[-2000:]}")
            seen.append(line)
            if after_line(line):
                break
            go_on()
        chosen = len(seen)
        go_on(extra_steps)
        time.sleep(rng.uniform(0, jitter))  # somewhere in the steps just allowed, or after them
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        returncode = proc.wait()
        proc.stdin.close()
    while (line := lines.get(timeout=10)) is not None:
        seen.append(line)
    assert returncode == -signal.SIGKILL, f"the worker ended by itself ({returncode}): {seen[-3:]}"
    assert len(seen) <= chosen + extra_steps, f"the worker ran past the steps allowed: {seen[-3:]}"
    return seen


def assert_sound(path: Path) -> None:
    """A fresh connection (which replays the WAL a killed writer left) finds nothing wrong."""
    with closing(sqlite3.connect(path)) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert raw.execute("PRAGMA foreign_key_check").fetchall() == []


# --- import -----------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_killed_import_keeps_whole_batches_and_resumes_without_duplicates(tmp_path, seed):
    rng = np.random.default_rng(seed)
    folder = tmp_path / "photos"
    for i in range(60):
        write_image(folder / f"{i:03d}.png", colour=(4 * i, 255 - 4 * i, seed * 40), size=(40, 30))
    (folder / "030-copy.png").write_bytes((folder / "030.png").read_bytes())
    (folder / "031-broken.jpg").write_bytes(b"\xff\xd8 not really")
    catalog = tmp_path / "catalog.sqlite"
    Store(catalog).close()

    target = int(rng.integers(1, 6)) * IMPORT_BATCH
    kill_midway("import", catalog, folder, after_line=lambda l: l.startswith("batch") and int(l.split()[1]) >= target,
                extra_steps=2, jitter=0.05, rng=rng)  # at most 56 of the 62 files: never done

    assert_sound(catalog)
    files = list(find_images([folder]))
    batches = [files[i : i + IMPORT_BATCH] for i in range(0, len(files), IMPORT_BATCH)]
    good = {f: file_sha256(f) for f in files if f.name != "031-broken.jpg"}
    with Store(catalog) as store:
        with raw_sql(catalog) as db:
            stored = [sha256 for sha256, in db.execute("SELECT sha256 FROM items")]
        prefixes = [{good[f] for batch in batches[:m] for f in batch if f in good} for m in range(len(batches) + 1)]
        assert set(stored) in prefixes, "a batch was committed partly"
        before = len(stored)

        report = import_images(store, [folder])
        distinct = set(good.values())
        assert store.item_count() == len(distinct) == 60
        assert len(report.added) == len(distinct) - before
        assert [Path(p).name for p, _ in report.skipped] == ["031-broken.jpg"]
        with raw_sql(catalog) as db:
            assert db.execute("SELECT count(*) FROM items WHERE thumbnail IS NULL").fetchone() == (0,)
        assert_sound(catalog)


# --- embedding ------------------------------------------------------------------------

@pytest.mark.parametrize("seed", EMBED_SEEDS)
def test_killed_embedding_keeps_whole_batches_and_resumes_without_duplicates(tmp_path, seed, extractor):
    rng = np.random.default_rng(seed)
    catalog = tmp_path / "catalog.sqlite"
    with Store(catalog) as store:
        for i in range(16):
            write_image(tmp_path / "img" / f"{i}.png", colour=(15 * i, 90, 200 - 11 * i), size=(24, 24))
        import_images(store, [tmp_path / "img"])

    target = int(rng.integers(1, 3)) * EMBED_BATCH
    kill_midway("embed", catalog, after_line=lambda l: l.startswith("batch") and int(l.split()[1]) >= target,
                extra_steps=1, jitter=0.4, rng=rng)  # at most 12 of the 16 images: never done

    assert_sound(catalog)
    model = extractor.backbone.name
    with Store(catalog) as store:
        done = store.load_embeddings(model)
        assert len(done) % EMBED_BATCH == 0 and 0 < len(done) < 16
        paths = {i: it.path for i, it in store.items(done.item_ids.tolist()).items()}
        fresh = extractor.embed_images([open_model_image(Path(paths[i]), extractor.backbone.preprocessing) for i in done.item_ids[:4]])
        np.testing.assert_allclose(done.matrix[:4], fresh, rtol=1e-3, atol=1e-3)

        report = embed_catalog(store, extractor=extractor, workers=0, batch_size=8)
        assert report.embedded == 16 - len(done) and not report.failed
        with raw_sql(catalog) as db:
            per_item = db.execute("SELECT item_id, count(*) FROM embeddings WHERE model = ? GROUP BY item_id",
                                  (model,)).fetchall()
        assert len(per_item) == store.item_count() == 16
        assert {n for _, n in per_item} == {1}
        assert_sound(catalog)


# --- fit + classify ----------------------------------------------------------------------

@pytest.mark.parametrize("seed", CLASSIFY_SEEDS)
def test_killed_classify_leaves_one_complete_prediction_run(tmp_path, seed):
    rng = np.random.default_rng(seed)
    catalog = tmp_path / "catalog.sqlite"
    n = 2000
    with Store(catalog) as store:
        ids = add_items(store, n)
        centres = rng.normal(size=(5, 32)).astype(np.float32)
        truth = rng.integers(0, 5, n)
        store.save_embeddings(CLASSIFY_BACKBONE, ids, centres[truth] + 0.3 * rng.normal(size=(n, 32)))
        categories = [store.create_category(f"Category {k}") for k in range(5)]
        for k, category in enumerate(categories):
            store.set_labels([ids[j] for j in np.flatnonzero(truth == k)[:8]], category)
        labels = store.labels()

    first_run_saved = seed % 2 == 1  # even seeds kill the first run, odd ones the run replacing it
    kill_midway("classify", catalog, after_line=lambda l: l == ("saved" if first_run_saved else "ready"),
                extra_steps=1, jitter=1.5, rng=rng)

    assert_sound(catalog)
    with Store(catalog) as store:
        assert store.labels() == labels
        with raw_sql(catalog) as db:
            runs = db.execute("SELECT model_run_id, count(*) FROM predictions GROUP BY model_run_id").fetchall()
            latest_run, = db.execute("SELECT max(id) FROM model_runs").fetchone()
        if first_run_saved or runs:
            assert len(runs) == 1 and runs[0][1] == n, f"predictions torn across runs: {runs}"
            assert runs[0][0] == latest_run, "a model run was committed without its predictions"

        classify_catalog(store, backbone=CLASSIFY_BACKBONE)
        with raw_sql(catalog) as db:
            assert db.execute("SELECT count(DISTINCT model_run_id) FROM predictions").fetchone() == (1,)
        assert len(store.predictions()) == n
        assert_sound(catalog)


# --- label changes -----------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_killed_label_changes_lose_nothing_committed(tmp_path, seed):
    rng = np.random.default_rng(seed)
    catalog = tmp_path / "catalog.sqlite"
    with Store(catalog) as store:
        add_items(store, 300)
        for name in ("Shoes", "Pans", "Lamps", "Socks"):
            store.create_category(name)
        items = store.item_ids().tolist()
        categories = [c.id for c in store.categories()]

    target = int(rng.integers(5, 80))
    lines = kill_midway("label", catalog, seed, after_line=lambda l: l == f"acked {target}",
                        extra_steps=1000, jitter=0.05, rng=rng)

    acked = max(int(l.split()[1]) for l in lines if l.startswith("acked"))
    states = [{}]
    for op in label_ops(seed, items, categories, count=acked + 1):
        states.append(apply_op(states[-1], op))
    assert_sound(catalog)
    with Store(catalog) as store:
        assert store.labels() in (states[acked], states[acked + 1]), "a committed label change was lost"
        store.set_labels(items[:3], categories[0])
        assert_sound(catalog)


# --- first open: schema creation -----------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_killed_schema_creation_leaves_a_catalog_that_opens(tmp_path, seed):
    rng = np.random.default_rng(seed)
    catalog = tmp_path / "new.sqlite"
    target = int(rng.integers(1, 6))
    lines = kill_midway("open", catalog, after_line=lambda l: l == f"opening {target}",
                        extra_steps=1000, jitter=0.15, rng=rng)

    created = sorted(tmp_path.glob("new-*.sqlite"))
    assert len(created) >= len([l for l in lines if l.startswith("opening")]) - 1
    for path in created:
        assert_sound(path)
        with Store(path) as store:
            assert store.item_count() == 0 and store.create_category("Shoes")
        assert_sound(path)
