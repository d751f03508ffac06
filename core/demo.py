"""The demo catalog: product-like Twemoji from resources/demo, a few labelled, the rest to predict.

It is built once in the user's data folder and reused afterwards. Only a handful of examples per
category are labelled (always the same ones), so what a first-time user sees is the product's
point: the app embedding the catalog in the background and then predicting everything else.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import platformdirs

from protoshelf.core.importer import import_with_titles, read_titles_csv
from protoshelf.core.store import Store

DEMO_DIR = Path(__file__).resolve().parent.parent / "resources" / "demo"
EXAMPLES_PER_CATEGORY = 3


def demo_catalog_path() -> Path:
    return Path(platformdirs.user_data_dir("protoshelf")) / "demo.sqlite"


def intended_categories(source: Path = DEMO_DIR) -> dict[str, str]:
    """The category each demo image was chosen for, by resolved path, in the CSV's order."""
    return {path: name.capitalize() for path, name in read_titles_csv(source / "categories.csv").categories.items()}


def build_demo_catalog(
    path: str | Path | None = None, source: Path = DEMO_DIR, examples: int = EXAMPLES_PER_CATEGORY
) -> Path:
    """Create the demo catalog at `path` unless it is already complete; returns its path.

    Every step is idempotent (imports skip known files, categories are ensured), so a build that
    was interrupted is simply finished the next time.
    """
    path = Path(path) if path else demo_catalog_path()
    if not (source / "images").is_dir():
        raise FileNotFoundError(f"The demo images are missing: {source / 'images'} does not exist.")
    with Store(path) as store:
        if store.item_count() and store.categories():
            return path
        report, _ = import_with_titles(store, [source / "images"], source / "titles.csv")
        examples_of: dict[str, list[int]] = defaultdict(list)
        for image_path, category in intended_categories(source).items():
            item_id = report.ids_by_path.get(image_path)
            if item_id is not None and len(examples_of[category]) < examples:
                examples_of[category].append(item_id)
        for category, item_ids in examples_of.items():
            store.set_labels(item_ids, store.ensure_category(category))
    return path
