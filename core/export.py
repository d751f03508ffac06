"""Predictions to CSV, safe to open in a spreadsheet, written in one streaming pass.

Rows are streamed from the store in chunks into a temporary file that replaces the target only
when complete (core/safe_output.py, which also refuses to replace a catalog, another database or
anything but a plain file), so a million-row export uses little memory and never leaves half a file
behind. Text cells that a spreadsheet would run as a formula are neutralised (OWASP's CSV-injection
advice), except in the shop formats: the shop's importer reads those, and a quote before a product
id or title would make it miss the product or rename it on the live shop. There, such cells are
written exactly and counted in a note instead.
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


def formula_note(cells: int) -> str:
    return (f"Cells starting with = + - @, tab or CR ({cells}) are written exactly, as the shop needs them: "
            "upload the file as it is, since a spreadsheet would run them as formulas.")


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
    notes: list[str] | None = None,
) -> int:
    """Write one row per item (or per id in `item_ids`); returns the number of rows.

    `format` "google" or "shopify" writes what the shop imports (see core/shop_formats.py), every
    value exactly as the shop gave it; `notes` then gets a line if any cell looks like a formula."""
    out_path = Path(out_path).expanduser()
    names = {c.id: c.name for c in store.categories()}
    wanted = None if item_ids is None else sorted(set(int(i) for i in item_ids))
    total = store.item_count() if wanted is None else len(wanted)
    written = formula_cells = 0
    with replace_safely(out_path, [store.path], "utf-8-sig" if excel_bom else "utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header(top, format))
        for seen, row in enumerate(store.export_rows(wanted), start=1):
            cells = _format(row, names, top, format, include_unassigned)
            if cells is not None:
                writer.writerow(cells)
                written += 1
                if format in HEADERS:
                    formula_cells += sum(cell.startswith(FORMULA_PREFIXES) for cell in cells)
            if seen % FETCH_ROWS == 0:
                progress(seen, total)
    progress(total, total)
    if formula_cells and notes is not None:
        notes.append(formula_note(formula_cells))
    return written


def _format(row, names: dict[int, str], top: int, format: str = "protoshelf", include_unassigned: bool = False):
    item_id, path, title, labelled, predicted, score, ranking, product_id = row
    if format in HEADERS:
        cells = shop_row(format, product_id, title, labelled or predicted, include_unassigned)
        return None if cells is None else [cell or "" for cell in cells]
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
