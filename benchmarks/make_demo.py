"""Rebuild the small demo catalog in ``resources/demo`` from Twemoji.

The demo must look like a shop's product photos, ship with the app and stay
small, so it is a hand-picked set of Twemoji PNGs grouped into product
categories. Emoji are picked by their emoji-datasource ``short_name``; the
title is the product-like name shown in the app::

    python -m benchmarks.make_demo [--out resources/demo] [--cache DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import sys
from pathlib import Path

from benchmarks.datasets import PACKAGES, DatasetError, fetch_package

CATALOG: dict[str, list[tuple[str, str]]] = {
    "fruit": [
        ("apple", "Red apple"), ("green_apple", "Green apple"), ("banana", "Banana"),
        ("grapes", "Grapes"), ("lemon", "Lemon"), ("pear", "Pear"), ("peach", "Peach"),
        ("cherries", "Cherries"), ("strawberry", "Strawberry"), ("pineapple", "Pineapple"),
    ],
    "vegetables": [
        ("carrot", "Carrot"), ("broccoli", "Broccoli"), ("eggplant", "Eggplant"),
        ("potato", "Potato"), ("corn", "Sweet corn"), ("cucumber", "Cucumber"),
        ("bell_pepper", "Bell pepper"), ("garlic", "Garlic"), ("onion", "Onion"),
        ("leafy_green", "Leafy greens"),
    ],
    "clothing": [
        ("shirt", "T-shirt"), ("jeans", "Jeans"), ("dress", "Dress"), ("coat", "Coat"),
        ("scarf", "Scarf"), ("gloves", "Gloves"), ("socks", "Socks"), ("shorts", "Shorts"),
        ("necktie", "Necktie"),
    ],
    "footwear": [
        ("mans_shoe", "Leather shoe"), ("athletic_shoe", "Running shoe"),
        ("hiking_boot", "Hiking boot"), ("womans_flat_shoe", "Flat shoe"),
        ("high_heel", "High-heeled shoe"), ("sandal", "Sandal"), ("ballet_shoes", "Ballet shoes"),
        ("boot", "Ankle boots"), ("thong_sandal", "Flip-flop"),
    ],
    "sports": [
        ("soccer", "Football"), ("baseball", "Baseball"), ("basketball", "Basketball"),
        ("volleyball", "Volleyball"), ("football", "American football"),
        ("tennis", "Tennis ball"), ("bowling", "Bowling ball and pins"),
        ("boxing_glove", "Boxing glove"), ("ice_skate", "Ice skate"),
        ("badminton_racquet_and_shuttlecock", "Badminton racquet and shuttlecock"),
    ],
    "kitchenware": [
        ("spoon", "Spoon"), ("fork_and_knife", "Fork and knife set"), ("hocho", "Kitchen knife"),
        ("chopsticks", "Chopsticks"), ("teapot", "Teapot"), ("jar", "Storage jar"),
        ("knife_fork_plate", "Dinner plate with cutlery"), ("fried_egg", "Frying pan"),
        ("coffee", "Coffee cup"),
    ],
    "tools": [
        ("hammer", "Hammer"), ("axe", "Axe"), ("wrench", "Wrench"), ("screwdriver", "Screwdriver"),
        ("carpentry_saw", "Hand saw"), ("nut_and_bolt", "Nut and bolt"), ("toolbox", "Toolbox"),
        ("ladder", "Ladder"), ("shovel", "Shovel"), ("compression", "Clamp"),
    ],
    "music": [
        ("saxophone", "Saxophone"), ("accordion", "Accordion"), ("guitar", "Guitar"),
        ("musical_keyboard", "Keyboard"), ("trumpet", "Trumpet"), ("violin", "Violin"),
        ("banjo", "Banjo"), ("drum_with_drumsticks", "Snare drum"), ("maracas", "Maracas"),
        ("flute", "Flute"),
    ],
}

ATTRIBUTION = """\
# Demo catalog attribution

The images in `images/` are emoji graphics from **Twemoji**, taken unmodified
from the 64 px PNGs of the npm package `emoji-datasource-twitter` ({version}).

Copyright 2019-2020 Twitter, Inc and other contributors.
Graphics licensed under CC-BY 4.0: https://creativecommons.org/licenses/by/4.0/

The titles and categories in `titles.csv` and `categories.csv` were chosen for
ProtoShelf's demo; they are not part of Twemoji.
Regenerate everything here with `python -m benchmarks.make_demo`.
"""


def file_stem(title: str) -> str:
    """``"T-shirt"`` -> ``t_shirt``: a readable, portable file name."""
    return re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")


def build_demo(out: Path, package: Path) -> list[tuple[str, str, str]]:
    """Write images, titles.csv, categories.csv and ATTRIBUTION.md; return (path, title, category) rows."""
    emoji = json.loads((package / "emoji.json").read_text(encoding="utf-8"))
    by_short = {e["short_name"]: e for e in emoji}
    images = out / "images"
    shutil.rmtree(images, ignore_errors=True)
    images.mkdir(parents=True)
    rows = []
    for category, items in CATALOG.items():
        for short_name, title in items:
            if short_name not in by_short:
                raise DatasetError(f"emoji {short_name!r} not in emoji-datasource-twitter; update CATALOG")
            path = f"images/{file_stem(title)}.png"
            if (out / path).exists():
                raise DatasetError(f"two demo items would both be written to {path}")
            shutil.copyfile(package / "img/twitter/64" / by_short[short_name]["image"], out / path)
            rows.append((path, title, category))
    for name, column, index in (("titles.csv", "title", 1), ("categories.csv", "category", 2)):
        with (out / name).open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["path", column])
            writer.writerows((row[0], row[index]) for row in rows)
    (out / "ATTRIBUTION.md").write_text(
        ATTRIBUTION.format(version=PACKAGES["emoji-datasource-twitter"]), encoding="utf-8")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.make_demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "resources" / "demo")
    parser.add_argument("--cache", type=Path, default=None, help="package cache (default: as benchmarks.datasets)")
    args = parser.parse_args(argv)
    try:
        rows = build_demo(args.out, fetch_package("emoji-datasource-twitter", args.cache))
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"{len(rows)} images in {len(CATALOG)} categories, {size / 1024:.0f} KiB at {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
