"""The `protoshelf` command: the desktop app by default, and headless subcommands.

Every subcommand takes `--db` (default: the catalog in the user's data folder). Work is committed
batch by batch, so Ctrl-C stops at once and the catalog stays consistent; rerunning continues.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.backbones import DEFAULT_BACKBONE, BackboneError
from core.progress import Progress
from core.store import Store, StoreError, default_catalog_path


@contextmanager
def progress_bar(description: str) -> Iterator[Progress]:
    """A tqdm bar on stderr driven by the core's progress(done, total) callbacks."""
    from tqdm import tqdm

    bar = tqdm(desc=description, unit="img", disable=None, file=sys.stderr, leave=False)

    def update(done: int, total: int) -> None:
        if bar.total != total:
            bar.reset(total=total)
        bar.n = done
        bar.refresh()

    try:
        yield update
    finally:
        bar.close()


def cmd_gui(args) -> int:
    try:
        from gui.app import run_app
    except ImportError as exc:
        print(f"The desktop app cannot start: {exc}", file=sys.stderr)
        return 1
    return run_app(args.db if args.db_given else None, demo=args.demo)


def cmd_import(args) -> int:
    from core.importer import import_with_titles

    with Store(args.db) as store, progress_bar("import") as bar:
        report, problems = import_with_titles(store, args.sources, args.titles, bar)
    for path, reason in report.skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"Import: {report.summary()}.")
    return 0


def cmd_embed(args) -> int:
    from core.embedding import embed_catalog

    with Store(args.db) as store, progress_bar("embed") as bar:
        report = embed_catalog(
            store, args.backbone, device=args.device, batch_size=args.batch_size,
            workers=args.workers, progress=bar,
        )
    for path, reason in report.failed:
        print(f"failed {path}: {reason}", file=sys.stderr)
    print(f"Embedded {report.embedded} items with {report.backbone} on {report.device}; "
          f"{len(report.failed)} failed.")
    return 0


def cmd_label(args) -> int:
    from core.importer import import_images

    with Store(args.db) as store:
        category_id = store.ensure_category(args.category)
        report = import_images(store, args.images)
        store.set_labels(report.item_ids, category_id)
    for path, reason in report.skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    print(f"Labelled {len(report.item_ids)} items as {args.category!r} ({len(report.added)} newly imported).")
    return 0


def cmd_categories(args) -> int:
    with Store(args.db) as store:
        rows = store.categories()
    if not rows:
        print("No categories yet: create one with `protoshelf label CATEGORY IMAGE...`.")
        return 0
    width = max(len(r.name) for r in rows)
    print(f"{'category':<{width}}  examples  predicted")
    for r in rows:
        print(f"{r.name:<{width}}  {r.examples:>8}  {r.predicted:>9}")
    return 0


def cmd_classify(args) -> int:
    from core.classify import classify_catalog

    with Store(args.db) as store:
        missing = len(store.items_without_embedding(args.backbone))
        predictions = classify_catalog(store, args.backbone, args.method, args.threshold)
    if missing:
        print(f"{missing} items have no {args.backbone} embedding yet; run `protoshelf embed`.",
              file=sys.stderr)
    if predictions is None:
        print("Nothing to learn from: label a few embedded items first.", file=sys.stderr)
        return 1
    unassigned = int((predictions.category_ids < 0).sum())
    print(f"Classified {len(predictions.item_ids)} items with {args.method}; {unassigned} unassigned "
          f"(confidence below {args.threshold}).")
    return 0


def cmd_export(args) -> int:
    from core.export import export_csv

    with Store(args.db) as store, progress_bar("export") as bar:
        rows = export_csv(store, args.out, top=args.top_k, excel_bom=args.excel, progress=bar)
    print(f"Wrote {rows} rows to {args.out}.")
    return 0


def cmd_evaluate(args) -> int:
    from core.evaluate import evaluate_folder

    with progress_bar("evaluate") as bar:
        result = evaluate_folder(
            args.folder, args.query, shots=args.shots, episodes=args.episodes, method=args.method,
            seed=args.seed, backbone=args.backbone, device=args.device, cache=args.cache, progress=bar,
        )
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(f"{result.ways}-way {result.shots}-shot, {result.episodes} episodes, {result.method}: "
              f"accuracy {result.accuracy:.2%} ± {result.ci95:.2%} (95% interval)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from core.methods import DEFAULT_METHOD, METHODS

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", type=Path, default=argparse.SUPPRESS,
                        help=f"catalog file (default: {default_catalog_path()})")
    backbone = argparse.ArgumentParser(add_help=False)
    backbone.add_argument("--backbone", default=DEFAULT_BACKBONE)
    device = argparse.ArgumentParser(add_help=False)
    device.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])

    parser = argparse.ArgumentParser(prog="protoshelf", description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=None, help="catalog file")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("gui", parents=[common], help="open the desktop app")
    p.add_argument("--demo", action="store_true", help="open the bundled demo catalog")
    p.set_defaults(run=cmd_gui)

    p = sub.add_parser("import", parents=[common], help="import image files and folders")
    p.add_argument("sources", nargs="+")
    p.add_argument("--titles", help="CSV with path,title[,category]")
    p.set_defaults(run=cmd_import)

    p = sub.add_parser("embed", parents=[common, backbone, device], help="compute missing embeddings")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=None, help="image decoding processes")
    p.set_defaults(run=cmd_embed)

    p = sub.add_parser("label", parents=[common], help="add example images to a category")
    p.add_argument("category")
    p.add_argument("images", nargs="+")
    p.set_defaults(run=cmd_label)

    sub.add_parser("categories", parents=[common], help="list categories").set_defaults(run=cmd_categories)

    p = sub.add_parser("classify", parents=[common, backbone], help="predict a category for every item")
    p.add_argument("--method", default=DEFAULT_METHOD, choices=sorted(METHODS))
    p.add_argument("--threshold", type=float, default=0.5, help="below this confidence: unassigned")
    p.set_defaults(run=cmd_classify)

    p = sub.add_parser("export", parents=[common], help="write predictions to CSV")
    p.add_argument("out", type=Path)
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--excel", action="store_true", help="UTF-8 with BOM, for Excel")
    p.set_defaults(run=cmd_export)

    p = sub.add_parser("evaluate", parents=[common, backbone, device], help="few-shot accuracy on an ImageFolder tree")
    p.add_argument("folder", type=Path)
    p.add_argument("--query", type=Path, help="a second tree to take queries from")
    p.add_argument("--shots", type=int, default=5)
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--method", default=DEFAULT_METHOD, choices=sorted(METHODS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", type=Path, help="embedding cache catalog (default: user cache folder)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.db_given = args.db is not None
    args.db = args.db or default_catalog_path()
    args.demo = getattr(args, "demo", False)
    run = getattr(args, "run", cmd_gui)
    try:
        return run(args)
    except KeyboardInterrupt:
        print("\nInterrupted. Finished batches are saved; run the command again to continue.",
              file=sys.stderr)
        return 130
    except (StoreError, BackboneError, ValueError, OSError) as exc:
        print(f"protoshelf: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
