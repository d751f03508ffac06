"""A reader thread shaped like the GUI and a writer thread shaped like the background worker hammer
one catalog file at once; neither may ever see "database is locked" (or any other error).

Each thread runs a fixed number of steps and all of them start every step together, so reads
overlap writes on a loaded machine as on an idle one, and nothing is counted against the clock.
"""
from __future__ import annotations

import threading
import traceback

import numpy as np
import pytest

from conftest import add_items, write_image
from protoshelf.core.importer import import_images
from protoshelf.core.store import Store

MODEL = "hammer"


def hammer(*tasks, steps: int) -> tuple[list[str], list[int]]:
    """Run `task(step)` for `steps` steps, one thread per task, the threads meeting at a barrier
    before each step; returns (errors, steps each thread completed)."""
    start_together = threading.Barrier(len(tasks))
    errors: list[str] = []
    done = [0] * len(tasks)

    def loop(index, task):
        try:
            for step in range(steps):
                start_together.wait()
                task(step)
                done[index] += 1
        except threading.BrokenBarrierError:  # another thread failed: its error is the finding
            pass
        except Exception:  # noqa: BLE001 - every failure is the finding
            errors.append(traceback.format_exc())
            start_together.abort()

    threads = [threading.Thread(target=loop, args=(i, t)) for i, t in enumerate(tasks)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)  # a hang bound, not a speed bound: a deadlock fails on the step counts
    return errors, done


@pytest.mark.slow
def test_gui_reads_while_worker_writes_never_lock(tmp_path):
    path = tmp_path / "catalog.sqlite"
    store = Store(path)
    rng = np.random.default_rng(0)
    images = [write_image(tmp_path / "in" / f"{i}.png", colour=(i, 255 - i, 50), size=(16, 16)) for i in range(200)]
    categories = [store.create_category(name) for name in ("Shoes", "Pans", "Lamps")]
    import_images(store, images[:20])

    def worker(step):
        ids = store.item_ids()
        match step % 4:
            case 0:
                batch = images[20 + 3 * step % 180 : 20 + 3 * step % 180 + 3]
                import_images(store, batch, workers=1)
            case 1:
                store.set_labels(rng.choice(ids, 5).tolist(), int(rng.choice(categories)))
            case 2:
                store.save_embeddings(MODEL, ids, rng.normal(size=(len(ids), 64)))
            case 3:
                store.save_predictions(
                    "prototypes", MODEL, {}, ids, [categories[0]] * len(ids), [0.5] * len(ids),
                    [[(categories[0], 0.5)]] * len(ids),
                )

    def gui(step):
        store.item_count()
        store.items(store.item_ids()[:50].tolist())
        store.categories()
        store.labels()
        vectors = store.load_embeddings(MODEL)
        assert vectors.matrix.shape in {(0, 0), (len(vectors), 64)}
        store.predictions()
        if step % 25 == 0:  # the app reopening the catalog, e.g. a second window
            Store(path).close()

    try:
        errors, done = hammer(worker, gui, gui, steps=40)
    finally:
        store.close()
    assert not errors, errors[0]
    assert done == [40, 40, 40]
    with Store(path) as check:
        assert check.integrity_check() == "ok"


def test_two_writers_and_a_reader_never_lock(tmp_path):
    """Two workers (say an import and a label change from the GUI) queue on the write lock."""
    store = Store(tmp_path / "catalog.sqlite")
    ids = np.asarray(add_items(store, 500))
    shoes = store.create_category("Shoes")
    rng = np.random.default_rng(1)

    def labeller(step):
        store.set_labels(rng.choice(ids, 20).tolist(), shoes if step % 3 else None)

    def embedder(step):
        chunk = ids[(step * 50) % 500 :][:50]
        store.save_embeddings(MODEL, chunk, np.full((len(chunk), 8), step, np.float32))

    def reader(step):
        store.labels()
        store.load_embeddings(MODEL)
        store.categories()

    try:
        errors, done = hammer(labeller, embedder, reader, steps=30)
    finally:
        store.close()
    assert not errors, errors[0]
    assert done == [30, 30, 30]


def test_two_catalog_handles_labelling_into_one_new_name_at_once_share_its_category(tmp_path):
    """`label NAME …` from two processes at once: one of them used to be refused, "a category
    named NAME already exists", because the name was looked up before the write lock was taken."""
    path = tmp_path / "c.sqlite"
    Store(path).close()
    stores = [Store(path) for _ in range(2)]
    names = [spelling for n in range(40) for spelling in (f"Exact{n}", f"exact{n}")]  # the second means the first
    results: list[list[int]] = [[], []]
    errors: list[str] = []

    def label(which: int) -> None:
        try:
            for name in names:
                barrier.wait()
                results[which].append(stores[which].ensure_category(name))
        except Exception:  # noqa: BLE001 - reported below
            errors.append(traceback.format_exc())
            barrier.abort()

    barrier = threading.Barrier(2)
    threads = [threading.Thread(target=label, args=(which,)) for which in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for store in stores:
        store.close()
    assert not errors, errors[0]
    assert results[0] == results[1]
    with Store(path) as store:
        assert len(store.categories()) == 40
