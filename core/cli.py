"""The `protoshelf` command: the desktop app by default, and headless subcommands.

Every subcommand takes `--db` (default: the catalog in the user's data folder). Work is committed
batch by batch, so Ctrl-C stops at once and the catalog stays consistent; rerunning continues.
Heavy modules (torch, timm, sentence-transformers, scipy) are imported inside the commands that
need them, so `--help`, `categories`, `label` and `export` answer in well under a second
(tests/test_startup.py holds that line). The desktop app is opened by gui/launcher.py, which
hands `main` its `open_app`: core never imports the GUI.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import re
import subprocess
import sys
import traceback
import unicodedata
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from protoshelf.core.constants import (
    DEFAULT_BACKBONE, DEFAULT_METHOD, DEFAULT_THRESHOLD, PICTURE_DUPLICATE_THRESHOLD, SUGGEST_STRATEGIES,
    default_catalog_path,
)
from protoshelf.core.errors import UserError, user_message
from protoshelf.core.progress import Progress

URL_LIKE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+:[/\\]")
"""`https://…`, `file:/…` (a path argument collapses `//`, and on Windows writes it with
backslashes); one letter before the colon is a Windows drive."""


def open_store(path: Path, create: bool = False):
    """The catalog; SQLAlchemy loads here, not for `--help`. Only commands that add to a catalog
    (`import`, `label`) may start a new one: a mistyped `--db` given to any other command would
    otherwise be a new empty catalog, and `export` would replace a good CSV with a header."""
    from protoshelf.core.store import Store, needs_upgrade

    if not create and not path.expanduser().exists():
        raise UserError(f"there is no catalog at {shown(path)}: check --db "
                        "(`protoshelf import` or `protoshelf label` start a new one)")
    if needs_upgrade(path):
        print(f"Updating {shown(path)} to this version of ProtoShelf (a big catalog takes a few minutes)…",
              file=sys.stderr, flush=True)
    return Store(path)


def shown(value: object) -> str:
    """Text from outside (file names, titles, category names, error messages) made safe to print:
    control, format and line-separator characters are spelled out (\\x1b, \\u202e), so a crafted
    file name can neither forge a line of output nor send escape sequences to the terminal."""
    return "".join(
        (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}")
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs") else ch
        for ch in str(value)
    )


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
    if args.open_app is None:
        print("protoshelf: the desktop app starts from the `protoshelf` command (protoshelf.gui.launcher); "
              "give a subcommand here, e.g. `categories`.", file=sys.stderr)
        return 2
    return args.open_app(args.db if args.db_given else None, demo=args.demo)


PARTLY_DONE = 3
"""The exit status of a command that did its work except for some files or rows, each named on
stderr (a corrupt picture, a feed row whose image is gone): 0 would hide them from a script, and
1 is what an unexpected failure returns."""


def cmd_import(args) -> int:
    from protoshelf.core.feeds import FEED_SUFFIXES, is_feed

    _refuse_missing([*args.sources, *([args.titles] if args.titles else [])])
    feeds = [source for source in args.sources if is_feed(source)]
    if feeds:
        if len(feeds) < len(args.sources) or args.titles:
            print(f"protoshelf import: give either product feeds ({' '.join(sorted(FEED_SUFFIXES))}) or image "
                  "files and folders, not both", file=sys.stderr)
            return 2
        return import_feeds(args, feeds)
    from protoshelf.core.importer import import_with_titles

    with open_store(args.db, create=True) as store, progress_bar("import") as bar:
        report, problems = import_with_titles(store, args.sources, args.titles, bar)
    for path, reason in report.skipped:
        print(f"skipped {shown(path)}: {shown(reason)}", file=sys.stderr)
    for problem in problems:
        print(shown(problem), file=sys.stderr)
    print(f"Import: {report.summary()}.")
    return PARTLY_DONE if report.skipped else 0


def _refuse_missing(paths: list[str]) -> None:
    """A mistyped folder or feed must not start an empty catalog and report success."""
    missing = [path for path in paths if not path.strip() or not os.path.exists(Path(path).expanduser())]
    if missing:
        pattern = " (a pattern that matched no file?)" if any(set("*?[") & set(m) for m in missing) else ""
        raise UserError(f"there is no file or folder at {', '.join(repr(shown(m)) for m in missing)}{pattern}; "
                        "nothing was imported")


def import_feeds(args, feeds: list[str]) -> int:
    """Every feed is read (its header checked, its rows counted) before the catalog is opened: a
    feed that cannot be read leaves no new catalog at a mistyped --db, and does not follow the
    import of the feeds before it."""
    from protoshelf.core.feed_import import import_feed
    from protoshelf.core.feeds import read_feed

    failed = False
    for feed, read in [(feed, read_feed(feed)) for feed in feeds]:
        with open_store(args.db, create=True) as store, progress_bar(f"import {shown(Path(feed).name)}") as bar:
            report = import_feed(store, read, labels=not args.no_labels, progress=bar, ids_changed=args.ids_changed)
        for note in filter(None, [*report.notes, report.renamed_note()]):
            print(shown(note), file=sys.stderr)
        for where, reason in report.failed:
            print(f"failed {shown(feed)} {shown(where)}: {shown(reason)}", file=sys.stderr)
        print(f"Import of {shown(feed)}: {report.summary()}.")
        failed = failed or bool(report.failed)
    return PARTLY_DONE if failed else 0


def cmd_embed(args) -> int:
    from protoshelf.core.embedding import embed_catalog

    with open_store(args.db) as store, progress_bar("embed") as bar:
        if args.engine == "ray":
            from protoshelf.core.ray_engine import RayUnavailable, embed_catalog_on_ray

            try:
                report = embed_catalog_on_ray(
                    store, args.backbone, address=args.address, device=args.device,
                    batch_size=args.batch_size, progress=bar,
                )
            except RayUnavailable as exc:
                print(f"protoshelf: {shown(exc)}", file=sys.stderr)
                return 2
        else:
            report = embed_catalog(
                store, args.backbone, device=args.device, batch_size=args.batch_size,
                workers=args.workers, progress=bar,
            )
    for path, reason in report.failed:
        print(f"failed {shown(path)}: {shown(reason)}", file=sys.stderr)
    for note in report.notes:
        print(shown(note), file=sys.stderr)
    print(f"Embedded {report.embedded} items with {report.backbone} on {report.device}; "
          f"{len(report.failed)} failed.")
    if not args.no_titles:
        from protoshelf.core.text import embed_titles

        with open_store(args.db) as store, progress_bar("titles") as bar:
            text = embed_titles(store, device=args.device, progress=bar)
        if text.embedded:
            print(f"Embedded {text.embedded} titles with {text.model} on {text.device}.")
    return PARTLY_DONE if report.failed else 0


def cmd_label(args) -> int:
    """Each argument is a product id of the catalog or an image path; a product id wins, with a
    note, when a file of that name exists too."""
    from protoshelf.core.importer import import_images

    from protoshelf.core.store import validate_category_name

    name = validate_category_name(args.category)  # a bad name changes nothing, not even the import
    with open_store(args.db, create=True) as store:
        _refuse_item_as_category(store, name)
        by_product = store.item_ids_by_product_id(args.images)
        for product in by_product:
            if Path(product).exists():
                print(f"{shown(product)} is both a product id and a file: labelled product {shown(product)} "
                      f"(write ./{shown(product)} for the file)", file=sys.stderr)
        paths = [image for image in args.images if image not in by_product]
        report = import_images(store, paths) if paths else None
        for path, reason in report.skipped if report else ():
            print(f"skipped {shown(path)}: {shown(reason)}", file=sys.stderr)
        item_ids = list(dict.fromkeys([*by_product.values(), *(report.item_ids if report else [])]))  # a picture twice: once
        if not item_ids:  # a label command that labels nothing creates no category either
            raise UserError("nothing labelled: none of the images could be imported (see above); "
                            "no category was created")
        category_id = store.ensure_category(name)
        previous = store.set_labels(item_ids, category_id)
        names = {c.id: c.name for c in store.categories()}
    moved = Counter(names.get(old) for old in previous.values() if old not in (None, category_id))
    print(f"Labelled {len(item_ids)} items as {shown(names[category_id])!r} ({len(by_product)} by product id, "
          f"{len(report.added) if report else 0} newly imported).")
    if moved:
        print(f"{moved.total()} of them were moved from another category: "
              + ", ".join(f"{count} from {shown(old)!r}" for old, count in moved.most_common()), file=sys.stderr)
    return PARTLY_DONE if report and report.skipped else 0


def _refuse_item_as_category(store, name: str) -> None:
    """`label SKU-1001 SKU-1002`, the category forgotten, made a category "SKU-1001" and moved
    SKU-1002 into it. A new category named like a product, a file or a folder path is that
    mistake (a plain name that is also a folder here, like Shoes, is a category: `label Shoes
    Shoes/*.jpg`)."""
    if store.category_id(name) is not None:
        return
    if store.item_ids_by_product_id([name]):
        what = "a product id in this catalog"
    elif _is_file_or_folder_path(name):
        what = "a file or folder here"
    else:
        return
    raise UserError(f"{shown(name)!r} is {what}, so it was not taken as a new category name; the category "
                    "comes first: protoshelf label CATEGORY ITEM...; nothing was labelled")


def _is_file_or_folder_path(name: str) -> bool:
    try:
        path = Path(name)
        return path.is_file() or (path.is_dir() and any(sep in name for sep in ("/", os.sep)))
    except OSError:  # a name longer than a file name can be (a long category path) names no file
        return False


def cmd_categories(args) -> int:
    with open_store(args.db) as store:
        rows = store.categories()
    if not rows:
        print("No categories yet: create one with `protoshelf label CATEGORY IMAGE...`.")
        return 0
    width = max(len(shown(r.name)) for r in rows)
    print(f"{'category':<{width}}  examples  predicted")
    for r in rows:
        print(f"{shown(r.name):<{width}}  {r.examples:>8}  {r.predicted:>9}")
    return 0


def cmd_classify(args) -> int:
    from protoshelf.core.classify import classify_catalog
    from protoshelf.core.methods import AUTO, is_backbone_adapter
    from protoshelf.core.names import NameEncoder

    if is_backbone_adapter(args.method):
        args.backbone, args.method = adapt_backbone(args), AUTO
    with open_store(args.db) as store:
        missing = len(store.items_without_embedding(args.backbone))
        predictions = classify_catalog(
            store, args.backbone, args.method, args.threshold, modality=args.modality,
            names=None if args.no_names else NameEncoder(args.device),
        )
    if missing:
        print(f"{missing} items have no {shown(args.backbone)} embedding yet; run `protoshelf embed`.",
              file=sys.stderr)
    if predictions is None:
        print("Nothing to learn from: label a few embedded items first (or embed titles, so that "
              "category names can be compared with them).", file=sys.stderr)
        return 1
    unassigned = int((predictions.category_ids < 0).sum())
    weights = ", ".join(f"{m} {w:.2f}" for m, w in (predictions.weights or {}).items())
    print(f"Classified {len(predictions.item_ids)} items with {predictions.method} on {predictions.modality} "
          f"features ({weights}); {unassigned} unassigned (less than {args.threshold:.0%} sure).")
    return 0


def cmd_export(args) -> int:
    from protoshelf.core.export import export_csv

    if args.excel and args.format != "protoshelf":
        raise UserError("--excel is for ProtoShelf's own format: a shop file is uploaded as it is written, "
                        "not opened in Excel")

    notes: list[str] = []
    with open_store(args.db) as store, progress_bar("export") as bar:
        rows = export_csv(store, args.out, top=args.top_k, excel_bom=args.excel, progress=bar,
                          format=args.format, include_unassigned=args.include_unassigned, notes=notes)
    for note in notes:
        print(note, file=sys.stderr)
    print(f"Wrote {rows} rows to {shown(args.out)}.")
    return 0


def adapt_backbone(args) -> str:
    """`classify --method ADAPTER`: train the backbone (defaults), embed the catalog; the new name."""
    from protoshelf.core.methods import make_adapter

    adapter = make_adapter(args.method)
    with open_store(args.db) as store, progress_bar(f"{adapter.name}, then embed") as bar:
        return adapter.adapt_catalog(store, args.backbone, getattr(args, "device", "auto"), bar)


def cmd_finetune(args) -> int:
    from protoshelf.core.methods.finetune import FineTuneConfig, FineTuning, embed_finetuned

    with open_store(args.db) as store, progress_bar("fine-tune, then embed") as bar:
        if args.resume:
            embed_finetuned(store, args.resume, args.device, bar)
            name = args.resume
        else:
            config = FineTuneConfig(epochs=args.epochs, l2sp=args.l2sp, blocks=args.blocks)
            name = FineTuning(config).adapt_catalog(store, args.backbone, args.device, bar)
    if name == args.backbone:
        print(f"Fine-tuning did not beat the pretrained weights on held-out examples; keeping {shown(name)} "
              "(nothing saved, nothing re-embedded).")
        return 0
    print(f"Fine-tuned backbone {shown(name)}; the catalog is embedded with it, and the {shown(args.backbone)} "
          f"embeddings are kept. Classify with: protoshelf classify --backbone {shown(name)}")
    return 0


def cmd_evaluate(args) -> int:
    from protoshelf.core.evaluate import evaluate_folder
    from protoshelf.core.methods import method_names

    if args.list_methods:
        print("\n".join(method_names()))
        return 0
    if args.folder is None:
        print("protoshelf evaluate: give an ImageFolder tree (or --list-methods)", file=sys.stderr)
        return 2

    with progress_bar("evaluate") as bar:
        result = evaluate_folder(
            args.folder, args.query, shots=args.shots, episodes=args.episodes, method=args.method,
            seed=args.seed, backbone=args.backbone, device=args.device, cache=args.cache, progress=bar,
            titles=args.titles or (), modality=args.modality or ("fused" if args.titles else "image"),
            ways=args.ways, meta_train=args.meta_train, names=not args.no_names, threshold=args.threshold,
        )
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        names = "with names" if result.names else "without names"
        print(f"{result.ways}-way {result.shots}-shot, {result.episodes} episodes, {result.method} on "
              f"{result.modality} {names}: accuracy {result.accuracy:.2%} ± {result.ci95:.2%} (95% interval)")
        if result.ece is not None:
            print(f"calibration error (ECE) {result.ece:.3f} ± {result.ece_ci95:.3f}; at {result.threshold:.0%} "
                  f"sure: {result.coverage_at_threshold:.0%} assigned, {result.precision_at_threshold:.0%} of them right")
    return 0


def cmd_suggest(args) -> int:
    from protoshelf.core.suggest import suggest_for_catalog

    with open_store(args.db) as store:
        suggestions = suggest_for_catalog(store, args.backbone, args.n, args.strategy)
        names = {c.id: c.name for c in store.categories()}
        items = store.items([s.item_id for s in suggestions])
    if not suggestions:
        print("Nothing to suggest: label a few embedded items first, and leave some unlabelled.",
              file=sys.stderr)
        return 1
    print("rank  item_id  uncertainty  why  path")
    for rank, suggestion in enumerate(suggestions, start=1):
        print(f"{rank:>4}  {suggestion.item_id:>7}  {suggestion.uncertainty:>11.3f}  "
              f"{shown(suggestion.reason(names))}  {shown(items[suggestion.item_id].path)}")
    return 0


def cmd_similar(args) -> int:
    from protoshelf.core.images import file_sha256, open_image
    from protoshelf.core.similar import SimilaritySearch

    with open_store(args.db) as store:
        vectors = store.load_embeddings(args.backbone)
        if not len(vectors):  # the user's next step, not a failure of ProtoShelf's (status 1)
            raise UserError(f"no {shown(args.backbone)} embeddings yet: run `protoshelf embed` first")
        search = SimilaritySearch(vectors)
        item_id = store.item_id_by_hash(file_sha256(args.image))
        if item_id is not None and item_id in vectors.item_ids:
            print(f"{shown(args.image)} is item {item_id} of the catalog.")
            neighbours = search.similar_to_item(item_id, args.k)
        else:
            from protoshelf.core.backbones import resolve_device
            from protoshelf.core.embedding import pretrained_extractor

            extractor = pretrained_extractor(args.backbone, resolve_device(args.device))
            query = extractor.embed_images([open_image(args.image)])
            neighbours = search.nearest(query, args.k)[0]
        items = store.items([n.item_id for n in neighbours])
    print("rank  item_id  similarity  path")
    for rank, neighbour in enumerate(neighbours, start=1):
        print(f"{rank:>4}  {neighbour.item_id:>7}  {neighbour.similarity:>10.4f}  {shown(items[neighbour.item_id].path)}")
    return 0


def cmd_duplicates(args) -> int:
    from protoshelf.core.duplicates import duplicate_groups, export_duplicates
    from protoshelf.core.picture_hash import PictureHashes

    with open_store(args.db) as store, progress_bar("compare") as bar:
        vectors = store.load_embeddings(args.backbone)
        hashes = None if args.embedding_only else PictureHashes(store).same_picture
        groups = duplicate_groups(vectors, args.threshold, bar, same_picture=hashes)
        rows = export_duplicates(store, groups, args.out)
    print(f"{len(groups)} groups of near-duplicates ({rows} of {len(vectors)} embedded items) at "
          f"cosine >= {args.threshold}{'' if args.embedding_only else ' with matching pictures'}; wrote {shown(args.out)}.")
    return 0


def cmd_relocate(args) -> int:
    from protoshelf.core.importer import relocate

    with open_store(args.db) as store:
        result = relocate(store, args.old_prefix, args.new_prefix)
    for path in result.not_found[:20]:
        print(f"not found (kept its old path): {shown(path)}", file=sys.stderr)
    if len(result.not_found) > 20:
        print(f"... and {len(result.not_found) - 20} more not found", file=sys.stderr)
    print(f"Relocated {result.moved} items; {len(result.not_found)} not found at the new place.")
    if not result.moved and not result.not_found:
        print(f"No item's path starts with {shown(args.old_prefix)}.", file=sys.stderr)
    return 0 if result.moved and not result.not_found else 1


def cmd_bench(args) -> int:
    """The benchmarks live beside the package in a source checkout, not inside it."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "benchmarks" / "__main__.py").exists():
        print("protoshelf bench needs a source checkout of ProtoShelf (its benchmarks/ folder).", file=sys.stderr)
        return 2
    command = [sys.executable, "-m", "benchmarks", *(["--quick"] if args.quick else [])]
    return subprocess.run([*command, *(["--only", *args.only] if args.only else [])], cwd=root).returncode


def cmd_install_desktop(args) -> int:
    from protoshelf.core.desktop import install_desktop_entry

    entry, icon = install_desktop_entry()
    print(f"Wrote {entry} and {icon}; ProtoShelf now appears in your desktop's application menu.")
    return 0


def confidence(text: str) -> float:
    return number_between(0.0, 1.0, "a confidence lies between 0 and 1 (e.g. 0.8 for 80%)")(text)


def similarity_threshold(text: str) -> float:
    return number_between(-1.0, 1.0, "a cosine similarity lies between -1 and 1")(text)


def number_between(low: float, high: float, meaning: str | None = None):
    """An argparse type: a finite number within [low, high] (`nan` and `inf` are not numbers here)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(meaning or f"give a number from {low:g} to {high:g}, not {text}")
        return value

    return parse


def whole_number(low: int, high: int):
    """An argparse type: a whole number within [low, high], so a typo cannot ask for a 100-million
    column export or a zero batch and fail later with MemoryError or a traceback."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"give a whole number from {low} to {high}, not {value}")
        return value

    return parse


def method_name(text: str) -> str:
    """Checked when given, so `--help` does not load the methods (and torch) to list them."""
    from protoshelf.core.methods import method_names

    if text not in method_names():
        raise argparse.ArgumentTypeError(f"unknown method {text!r}; choose one of: {', '.join(method_names())}")
    return text


METHOD_HELP = "see `protoshelf evaluate --list-methods`"


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", type=Path, default=argparse.SUPPRESS,
                        help=f"catalog file (default: {default_catalog_path()})")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback when something fails")
    backbone = argparse.ArgumentParser(add_help=False)
    backbone.add_argument("--backbone", default=DEFAULT_BACKBONE)
    device = argparse.ArgumentParser(add_help=False)
    device.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])

    parser = argparse.ArgumentParser(prog="protoshelf", description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=None, help="catalog file")
    parser.add_argument("--debug", action="store_true", help="show the full traceback when something fails")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("gui", parents=[common], help="open the desktop app")
    p.add_argument("--demo", action="store_true", help="open the bundled demo catalog")
    p.set_defaults(run=cmd_gui)

    p = sub.add_parser("import", parents=[common], help="import image files and folders, or a product feed")
    p.add_argument("sources", nargs="+", help="image files and folders, or product feeds (.csv, .tsv, .xml)")
    p.add_argument("--titles", help="CSV with path,title[,category]")
    p.add_argument("--no-labels", action="store_true", help="ignore a feed's category column")
    ids = p.add_mutually_exclusive_group()
    ids.add_argument("--ids-changed", dest="ids_changed", action="store_const", const=True, default=None,
                     help="the feed names products by new ids: catalog products it no longer lists take the new "
                          "id that comes with their picture (labels stay)")
    ids.add_argument("--new-ids", dest="ids_changed", action="store_const", const=False,
                     help="new ids that share a picture with a product the feed no longer lists are new products")
    p.set_defaults(run=cmd_import)

    p = sub.add_parser("embed", parents=[common, backbone, device], help="compute missing embeddings")
    p.add_argument("--batch-size", type=whole_number(1, 4096), default=None,
                   help="images per batch (default: 16 on a CPU, 64 on a GPU)")
    p.add_argument("--workers", type=whole_number(0, 256), default=None, help="image decoding threads (0: decode between batches)")
    p.add_argument("--no-titles", action="store_true", help="skip the product-title embeddings")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="ray: spread the image embedding over a Ray cluster (pip install 'protoshelf[ray]')")
    p.add_argument("--address", default=None,
                   help="with --engine ray: the cluster to join (e.g. auto, or HOST:6379); default: a local Ray")
    p.set_defaults(run=cmd_embed)

    p = sub.add_parser("label", parents=[common], help="add example images (or product ids) to a category")
    p.add_argument("category")
    p.add_argument("images", nargs="+", metavar="ID_OR_IMAGE", help="product ids of the catalog, or image files")
    p.set_defaults(run=cmd_label)

    sub.add_parser("categories", parents=[common], help="list categories").set_defaults(run=cmd_categories)

    p = sub.add_parser("classify", parents=[common, backbone], help="predict a category for every item")
    p.add_argument("--method", default=DEFAULT_METHOD, type=method_name,
                   help=f"{METHOD_HELP}; auto: the best for the examples per category; a backbone adapter (finetune): "
                        "train the backbone, re-embed, then auto; the app's tooltips describe each")
    p.add_argument("--threshold", type=confidence, default=DEFAULT_THRESHOLD,
                   help=f"assign when at least this sure, a calibrated probability (default {DEFAULT_THRESHOLD})")
    p.add_argument("--no-names", action="store_true", help="leave the category names out of the predictions")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--modality", choices=["fused", "image", "text"], default=None,
                   help="features to classify on (default: fused when titles are embedded)")
    p.set_defaults(run=cmd_classify)

    p = sub.add_parser("export", parents=[common], help="write predictions to CSV")
    p.add_argument("out", type=Path)
    p.add_argument("--top-k", type=whole_number(0, 1000), default=3, help="ranked categories per row")
    p.add_argument("--excel", action="store_true", help="UTF-8 with BOM, for Excel")
    p.add_argument("--format", choices=["protoshelf", "google", "shopify"], default="protoshelf",
                   help="google: a Merchant Center supplemental feed (id, product_type); "
                        "shopify: a product CSV that sets Type (Handle, Title, Type)")
    p.add_argument("--include-unassigned", action="store_true",
                   help="with google/shopify: also write products without a category (empty)")
    p.set_defaults(run=cmd_export)

    p = sub.add_parser("evaluate", parents=[common, backbone, device], help="few-shot accuracy on an ImageFolder tree")
    p.add_argument("folder", type=Path, nargs="?")
    p.add_argument("--query", type=Path, help="a second tree to take queries from")
    p.add_argument("--shots", type=whole_number(0, 10_000), default=5,
                   help="examples per category; 0: from the category names alone")
    p.add_argument("--no-names", action="store_true", help="leave the category (sub-folder) names out")
    p.add_argument("--threshold", type=confidence, default=DEFAULT_THRESHOLD,
                   help=f"assign when at least this sure (default {DEFAULT_THRESHOLD})")
    p.add_argument("--episodes", type=whole_number(1, 1_000_000), default=100)
    p.add_argument("--method", default=DEFAULT_METHOD, type=method_name, help=METHOD_HELP)
    p.add_argument("--list-methods", action="store_true", help="print the method names, one a line")
    p.add_argument("--ways", type=whole_number(2, 100_000), help="categories per episode (default: all)")
    p.add_argument("--meta-train", type=Path, metavar="FOLDER",
                   help="a tree of other categories that meta-learning methods learn from first")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", type=Path, help="embedding cache catalog (default: user cache folder)")
    p.add_argument("--titles", type=Path, action="append",
                   help="CSV path,title (paths relative to the CSV); repeat for a query tree's CSV")
    p.add_argument("--modality", choices=["image", "text", "fused"], default=None,
                   help="features to score (default: fused with --titles, else image)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_evaluate)

    p = sub.add_parser("finetune", parents=[common, backbone, device],
                       help="fine-tune the backbone on the labelled images and re-embed the catalog")
    p.add_argument("--epochs", type=whole_number(1, 1000), default=8)
    p.add_argument("--l2sp", type=number_between(0.0, 1e6), default=0.01, help="pull toward the pretrained weights")
    p.add_argument("--blocks", type=whole_number(1, 16), default=1, help="trunk stages to unfreeze")
    p.add_argument("--resume", metavar="NAME", help="only embed missing items with fine-tuned backbone NAME")
    p.set_defaults(run=cmd_finetune)

    p = sub.add_parser("suggest", parents=[common, backbone], help="items to label next")
    p.add_argument("-n", type=whole_number(1, 100_000), default=20, help="how many suggestions")
    p.add_argument("--strategy", default="margin", choices=SUGGEST_STRATEGIES, help="how uncertainty is measured")
    p.set_defaults(run=cmd_suggest)

    p = sub.add_parser("similar", parents=[common, backbone, device], help="catalog items that look like an image")
    p.add_argument("image", type=Path, help="an image file, in the catalog or not")
    p.add_argument("-k", type=whole_number(1, 100_000), default=10, help="how many items")
    p.set_defaults(run=cmd_similar)

    p = sub.add_parser("duplicates", parents=[common, backbone], help="write groups of near-duplicate items to CSV")
    p.add_argument("out", type=Path)
    p.add_argument("--threshold", type=similarity_threshold, default=PICTURE_DUPLICATE_THRESHOLD,
                   help=f"cosine similarity that makes two items candidates (default {PICTURE_DUPLICATE_THRESHOLD}); "
                        "their perceptual hashes must also agree")
    p.add_argument("--embedding-only", action="store_true",
                   help="link on cosine alone, without the perceptual-hash check (try --threshold 0.92)")
    p.set_defaults(run=cmd_duplicates)

    sub.add_parser("install-desktop", help="add ProtoShelf to the desktop's application menu (a .desktop file and icon)"
                   ).set_defaults(run=cmd_install_desktop)

    p = sub.add_parser("relocate", parents=[common], help="re-point items after their image folder moved")
    p.add_argument("old_prefix", help="the folder as the catalog recorded it (it need not exist any more)")
    p.add_argument("new_prefix", help="the folder the same files are in now")
    p.set_defaults(run=cmd_relocate)

    p = sub.add_parser("bench", help="run the speed benchmarks; prints one JSON object")
    p.add_argument("--quick", action="store_true", help="100k items instead of 1M, fewer images")
    p.add_argument("--only", nargs="+", choices=["embedding", "rescoring", "grid"])
    p.set_defaults(run=cmd_bench)
    return parser


def user_errors() -> tuple[type[Exception], ...]:
    """Errors whose own text is the message; a backbone error can only come from a command that loaded backbones."""
    backbones = sys.modules.get("protoshelf.core.backbones")
    return (ValueError, *([backbones.BackboneError] if backbones else []))  # StoreError is a ValueError


def main(argv: list[str] | None = None, open_app=None) -> int:
    """The one error policy: any failure is one line saying what went wrong and what to do, and a
    non-zero exit; the traceback is printed only with --debug. `open_app(db_path_or_None,
    demo=...)` opens the desktop app; protoshelf.gui.launcher passes it."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    args = None
    try:
        args = build_parser().parse_args(argv)
        args.open_app = open_app
        args.db_given = args.db is not None
        args.db = args.db or default_catalog_path()
        if URL_LIKE.match(str(args.db)):
            raise UserError(f"--db takes a file on this computer, and {shown(args.db)} looks like a web address; "
                            "download the catalog first")
        args.demo = getattr(args, "demo", False)
        return getattr(args, "run", cmd_gui)(args)
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print(f"\n{interrupted_message(getattr(args, 'run', None))}", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the top of the program: say it in one line
        if debug:
            traceback.print_exc()
        known = isinstance(exc, user_errors())
        message = user_message(exc) if isinstance(exc, ValueError) or not known else " ".join(str(exc).split())
        print(f"protoshelf: {shown(message)}", file=sys.stderr)
        return 2 if known else 1


def interrupted_message(command) -> str:
    """What Ctrl-C left, by command: only the batched ones have finished batches to keep."""
    if command is cmd_export:
        return "Interrupted; no file was written, and one already at that path is as it was."
    if command in (cmd_import, cmd_embed, cmd_label, cmd_finetune, cmd_relocate):
        return "Interrupted. Finished batches are saved; run the command again to continue."
    return "Interrupted."


def exit_without_final_collection(code: int):
    """sys.exit(code), with every object alive frozen first (gc.freeze), so that the interpreter's
    collections at exit do not walk the objects torch leaves (a million with timm, torchvision and
    torch._dynamo, as a hub backbone or fine-tuning imports them): exiting after `protoshelf embed`
    with timm took 1.2 s, and 0.26 s frozen. Only where the process ends: a library or a
    session must not freeze what may yet become garbage."""
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    exit_without_final_collection(main())
