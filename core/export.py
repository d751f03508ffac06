"""Predictions to CSV, safe to open in a spreadsheet, written in one streaming pass.

Rows are streamed from SQLite in chunks into a temporary file that replaces the target only when
complete, so a million-row export uses little memory and never leaves half a file behind. Text
cells that a spreadsheet would run as a formula are neutralised (OWASP's CSV-injection advice).
"""
from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from core.progress import Progress, no_progress
from core.shop_formats import HEADERS, shop_row
from core.store import Store

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
FETCH_ROWS = 5000

_QUERY = """
SELECT items.id, items.path, items.title, labelled.name, predicted.name,
       predictions.score, predictions.ranking, items.product_id
FROM items
LEFT JOIN labels ON labels.item_id = items.id
LEFT JOIN categories AS labelled ON labelled.id = labels.category_id
LEFT JOIN predictions ON predictions.item_id = items.id
LEFT JOIN categories AS predicted ON predicted.id = predictions.category_id
{where}
ORDER BY items.id
"""


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
    fd, tmp_name = tempfile.mkstemp(prefix=".export-", suffix=".csv", dir=out_path.parent)
    written = 0
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8-sig" if excel_bom else "utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header(top, format))
            for seen, row in enumerate(_rows(store, wanted), start=1):
                cells = _format(row, names, top, format, include_unassigned)
                if cells is not None:
                    writer.writerow(cells)
                    written += 1
                if seen % FETCH_ROWS == 0:
                    progress(seen, total)
        os.replace(tmp_name, out_path)
    except BaseException:
        os.unlink(tmp_name)
        raise
    progress(total, total)
    return written


def _rows(store: Store, wanted: list[int] | None):
    with store.engine.connect() as conn:
        raw = conn.connection.driver_connection
        if wanted is None:
            yield from _fetch(raw.execute(_QUERY.format(where="")))
            return
        conn.exec_driver_sql("CREATE TEMP TABLE IF NOT EXISTS export_ids (id INTEGER PRIMARY KEY)")
        raw.execute("DELETE FROM export_ids")
        raw.executemany("INSERT INTO export_ids VALUES (?)", ((i,) for i in wanted))
        yield from _fetch(raw.execute(_QUERY.format(where="WHERE items.id IN (SELECT id FROM export_ids)")))
        raw.execute("DROP TABLE export_ids")


def _fetch(cursor):
    while batch := cursor.fetchmany(FETCH_ROWS):
        yield from batch


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
