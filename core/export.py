"""Predictions to CSV, safe to open in a spreadsheet, written in one streaming pass.

Rows are streamed from the store in chunks into a temporary file that replaces the target only
when complete (core/safe_output.py, which also refuses to replace a catalog, another database or
anything but a plain file), so a million-row export uses little memory and never leaves half a file
behind. Text cells that a spreadsheet would run as a formula are neutralised (OWASP's CSV-injection
advice).
"""
from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path

from protoshelf.core.progress import Progress, no_progress
from protoshelf.core.safe_output import replace_safely
from protoshelf.core.shop_formats import HEADERS, shop_row
from protoshelf.core.store import Store

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
FETCH_ROWS = 5000


def neutralise(cell: str | None) -> str:
    """Prefix a quote to text a spreadsheet would evaluate, e.g. '=HYPERLINK(…)'."""
    if not cell:
        return ""
    return "'" + cell if cell.startswith(FORMULA_PREFIXES) else cell


def header(top: int, format: str = "protoshelf") -> list[str]:
    if format in HEADERS:
        return HEADERS[format]
    columns = ["product_id", "item_id", "path", "title", "labelled_category", "predicted_category", "confidence"]
    for k in range(1, top + 1):
        columns += [f"top{k}_category", f"top{k}_score"]
    return columns


def export_csv(
    store: Store,
    out_path: str | Path,
    top: int = 3,
    excel_bom: bool = False,
    item_ids: Iterable[int] | None = None,
    progress: Progress = no_progress,
    format: str = "protoshelf",
    include_unassigned: bool = False,
) -> int:
    """Write one row per item (or per id in `item_ids`); returns the number of rows.

    `format` "google" or "shopify" writes what the shop imports (see core/shop_formats.py)."""
    out_path = Path(out_path).expanduser()
    names = {c.id: c.name for c in store.categories()}
    wanted = None if item_ids is None else sorted(set(int(i) for i in item_ids))
    total = store.item_count() if wanted is None else len(wanted)
    written = 0
    with replace_safely(out_path, [store.path], "utf-8-sig" if excel_bom else "utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header(top, format))
        for seen, row in enumerate(store.export_rows(wanted), start=1):
            cells = _format(row, names, top, format, include_unassigned)
            if cells is not None:
                writer.writerow(cells)
                written += 1
            if seen % FETCH_ROWS == 0:
                progress(seen, total)
    progress(total, total)
    return written


def _format(row, names: dict[int, str], top: int, format: str = "protoshelf", include_unassigned: bool = False):
    item_id, path, title, labelled, predicted, score, ranking, product_id = row
    if format in HEADERS:
        cells = shop_row(format, product_id, title, labelled or predicted, include_unassigned)
        return None if cells is None else [neutralise(c) for c in cells]
    cells = [
        neutralise(product_id), item_id, neutralise(path), neutralise(title), neutralise(labelled), neutralise(predicted),
        "" if score is None else f"{score:.4f}",
    ]
    ranked = json.loads(ranking) if ranking else []
    for k in range(top):
        if k < len(ranked):
            category_id, value = ranked[k]
            cells += [neutralise(names.get(category_id, "")), f"{value:.4f}"]
        else:
            cells += ["", ""]
    return cells
