"""A child process for tests/test_crash_safety.py: real catalog work, to be SIGKILLed mid-way.

    python tests/crash_worker.py SCENARIO CATALOG [ARG]

It prints one line per committed step (flushed), then waits for a line on stdin before the next
step: the test, not the clock, decides how far the worker gets, so it always kills a live worker
within the steps it allowed, and afterwards knows exactly which steps had committed. Scenarios:

    import FOLDER   import a folder in small batches          -> "batch DONE TOTAL"
    embed           embed with the real backbone, batch of 4   -> "batch DONE TOTAL"
    classify        fit + score + save predictions, forever    -> "ready", then "saved" each time
    label SEED      the label changes of label_ops(SEED)       -> "ready", then "acked K"
    open            create fresh catalogs (schema migrations)  -> "opening N" before each
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

IMPORT_BATCH = 8
EMBED_BATCH = 4
CLASSIFY_BACKBONE = "random-vectors"


def say(*words) -> None:
    """Report a step, then wait until the test lets the worker take the next one."""
    sys.stdout.write(" ".join(map(str, words)) + "\n")
    sys.stdout.flush()
    sys.stdin.readline()


def label_ops(seed: int, item_ids: list[int], category_ids: list[int], count: int = 10_000):
    """A reproducible stream of label changes: (items, category or None for "unlabel")."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        items = rng.choice(item_ids, size=int(rng.integers(1, 40)), replace=False).tolist()
        category = int(rng.choice(category_ids)) if rng.random() < 0.8 else None
        yield items, category


def apply_op(labels: dict[int, int], op) -> dict[int, int]:
    """The labels after one change, as Store.set_labels makes it."""
    items, category = op
    gone = set(items)
    out = {i: c for i, c in labels.items() if i not in gone}
    if category is not None:
        out.update(dict.fromkeys(items, category))
    return out


def run_import(catalog: Path, folder: str) -> None:
    import protoshelf.core.importer as importer
    from protoshelf.core.store import Store

    importer.BATCH_SIZE = IMPORT_BATCH
    with Store(catalog) as store:
        importer.import_images(store, [folder], progress=lambda d, t: say("batch", d, t), workers=2)
    say("finished")


def run_embed(catalog: Path) -> None:
    from protoshelf.core.embedding import embed_catalog
    from protoshelf.core.store import Store

    with Store(catalog) as store:
        embed_catalog(store, device="cpu", batch_size=EMBED_BATCH, workers=0,
                      progress=lambda d, t: say("batch", d, t))
    say("finished")


def run_classify(catalog: Path) -> None:
    from protoshelf.core.classify import classify_catalog
    from protoshelf.core.store import Store

    with Store(catalog) as store:
        say("ready")
        while True:
            classify_catalog(store, backbone=CLASSIFY_BACKBONE, top=3)
            say("saved")


def run_label(catalog: Path, seed: int) -> None:
    from protoshelf.core.store import Store

    with Store(catalog) as store:
        items = store.item_ids().tolist()
        categories = [c.id for c in store.categories()]
        say("ready")
        for k, (ids, category) in enumerate(label_ops(seed, items, categories), start=1):
            store.set_labels(ids, category)
            say("acked", k)


def run_open(catalog: Path) -> None:
    from protoshelf.core.store import Store

    for n in range(10_000):
        path = catalog.with_name(f"{catalog.stem}-{n}.sqlite")
        say("opening", n)
        Store(path).close()


def main(argv: list[str]) -> None:
    scenario, catalog, *rest = argv
    catalog = Path(catalog)
    if scenario == "import":
        run_import(catalog, rest[0])
    elif scenario == "embed":
        run_embed(catalog)
    elif scenario == "classify":
        run_classify(catalog)
    elif scenario == "label":
        run_label(catalog, int(rest[0]))
    elif scenario == "open":
        run_open(catalog)
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
