"""Duplicate listings: precision and recall of `duplicate_groups` on planted copies of real pictures.

Each demo picture gets copies a shop really holds (resized by 3 px and saved as JPEG, shrunk to
60 %, cropped by 3 % and 8 %, re-encoded at JPEG quality 40). The catalog is imported and embedded
like a user's; then groups are scored pair by pair against the truth (a picture with its copies):
precision = grouped pairs that are copies, recall = copy pairs that are grouped. The 77 demo pictures
include look-alike different products (two apples, axe and hammer, many shoes), and each gets a
colour variant (hue turned half-way: the same shirt in blue is another listing), which is what
embedding cosine alone gets wrong.

    python -m benchmarks.duplicate_listings [--grid]
"""
from __future__ import annotations

import argparse
import io
import itertools
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

DEMO = Path(__file__).resolve().parent.parent / "resources" / "demo" / "images"


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def crop(image: Image.Image, share: float) -> Image.Image:
    w, h = image.size
    dx, dy = round(w * share), round(h * share)
    return image.crop((dx, dy, w - dx, h - dy))


COPIES = {
    "resized 3 px + JPEG": lambda im: jpeg(im.resize((im.width - 3, im.height - 3), Image.Resampling.LANCZOS), 85),
    "shrunk to 60%": lambda im: im.resize((round(im.width * 0.6), round(im.height * 0.6)), Image.Resampling.LANCZOS),
    "cropped 3%": lambda im: crop(im, 0.03),
    "cropped 8%": lambda im: crop(im, 0.08),
    "JPEG quality 40": lambda im: jpeg(im, 40),
}


def colour_variant(image: Image.Image) -> Image.Image:
    """The same product in another colour: hue turned half-way round. A shop lists it apart."""
    h, s, v = image.convert("HSV").split()
    return Image.merge("HSV", (h.point(lambda x: (x + 128) % 256), s, v)).convert("RGB")


def colourful(image: Image.Image) -> bool:
    """A picture whose colour tells products apart: a fifth of its pixels clearly saturated."""
    saturation = np.asarray(image.convert("HSV"))[..., 1]
    return (saturation > 80).mean() >= 0.2


def pairs_of(groups) -> set[tuple[int, int]]:
    return {(a, b) for g in groups for a, b in itertools.combinations(sorted(g), 2)}


def score(found, truth_pairs, kind_of_copy, original_of) -> tuple[float, float, dict[str, float]]:
    found_pairs = pairs_of(found)
    hits = len(found_pairs & truth_pairs)
    precision = hits / len(found_pairs) if found_pairs else 1.0
    recall = hits / len(truth_pairs)
    per_kind = {}
    for kind in COPIES:
        copies = [c for c, k in kind_of_copy.items() if k == kind]
        per_kind[kind] = sum(tuple(sorted((c, original_of[c]))) in found_pairs for c in copies) / len(copies)
    return precision, recall, per_kind


def hardest_look_alikes(vectors, truth, hashes, count: int = 6):
    """Pairs of pictures of different products with the highest cosine, and their hash distance."""
    from protoshelf.core.picture_hash import hash_distance

    group_of = {i: k for k, g in enumerate(truth) for i in g}
    unit = vectors.matrix / np.linalg.norm(vectors.matrix, axis=1, keepdims=True)
    sims = unit @ unit.T
    groups = np.array([group_of[int(i)] for i in vectors.item_ids])
    sims[groups[:, None] == groups[None, :]] = -1
    flat = np.argsort(sims, axis=None)[::-1][: 2 * count : 2]  # each pair appears twice
    rows, cols = np.unravel_index(flat, sims.shape)
    a, b = vectors.item_ids[rows], vectors.item_ids[cols]
    distances = hash_distance(hashes.hashes(a), hashes.hashes(b))
    return [(int(x), int(y), float(sims[r, c]), int(d)) for x, y, r, c, d in zip(a, b, rows, cols, distances)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.duplicate_listings", description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid", action="store_true", help="also print a grid of cosine thresholds and hash distances")
    args = parser.parse_args(argv)

    import protoshelf.core.picture_hash
    from protoshelf.core.duplicates import DEFAULT_THRESHOLD, PICTURE_THRESHOLD, duplicate_groups
    from protoshelf.core.embedding import embed_catalog
    from protoshelf.core.images import open_image
    from protoshelf.core.importer import import_images
    from protoshelf.core.picture_hash import PictureHashes
    from protoshelf.core.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        originals, copies, variants = {}, {}, {}
        for path in sorted(DEMO.glob("*.png")):
            image = open_image(path)
            originals[path.stem] = folder / f"{path.stem}.png"
            image.save(originals[path.stem])
            for number, (kind, make) in enumerate(COPIES.items()):
                copies[(path.stem, kind)] = folder / f"{path.stem}-copy{number}.png"
                make(image).save(copies[(path.stem, kind)])
            if colourful(image):
                variants[path.stem] = folder / f"{path.stem}-other-colour.png"
                colour_variant(image).save(variants[path.stem])
        store = Store(folder / "catalog.sqlite")
        report = import_images(store, [*originals.values(), *copies.values(), *variants.values()])
        started = time.perf_counter()
        embed_catalog(store, device="cpu", workers=0)
        embed_s = time.perf_counter() - started
        everything = [*originals.values(), *copies.values(), *variants.values()]
        ids = {p: report.ids_by_path[str(Path(p).resolve())] for p in everything}
        original_of = {ids[path]: ids[originals[stem]] for (stem, _), path in copies.items()}
        kind_of_copy = {ids[path]: kind for (_, kind), path in copies.items()}
        truth = [[ids[originals[stem]], *(ids[copies[(stem, k)]] for k in COPIES)] for stem in originals]
        truth += [[ids[path]] for path in variants.values()]
        truth_pairs = pairs_of(truth)
        vectors = store.load_embeddings("efficientnet_lite0")
        hashes = PictureHashes(store)
        print(f"{len(originals)} demo pictures with {len(copies)} planted copies ({len(truth_pairs)} copy pairs) "
              f"and {len(variants)} colour variants (other products); "
              f"embedded in {embed_s:.0f} s")

        def report_rule(name, found, seconds):
            precision, recall, per_kind = score([g.item_ids for g in found], truth_pairs, kind_of_copy, original_of)
            kinds = ", ".join(f"{k} {v:.0%}" for k, v in per_kind.items())
            print(f"{name}: precision {precision:.1%}, recall {recall:.1%} ({len(found)} groups, {seconds:.2f} s); "
                  f"copies found with their original: {kinds}")

        started = time.perf_counter()
        found = duplicate_groups(vectors, DEFAULT_THRESHOLD)
        report_rule(f"cosine >= {DEFAULT_THRESHOLD} alone (before)", found, time.perf_counter() - started)
        started = time.perf_counter()
        found = duplicate_groups(vectors, PICTURE_THRESHOLD, same_picture=hashes.same_picture)
        report_rule(f"cosine >= {PICTURE_THRESHOLD}, phash distance <= {protoshelf.core.picture_hash.MAX_DISTANCE} and colour "
                    f"shift <= {protoshelf.core.picture_hash.MAX_COLOUR_SHIFT} (now)",
                    found, time.perf_counter() - started)
        names = {ids[path]: path.stem for path in everything}
        look_alikes = hardest_look_alikes(vectors, truth, hashes)
        print("different products closest in cosine (cosine, phash distance): " + "; ".join(
            f"{names[a]} / {names[b]} {c:.3f}, {d}" for a, b, c, d in look_alikes))
        if args.grid:
            for cosine in (0.8, 0.85, 0.88, 0.9):
                found = duplicate_groups(vectors, cosine)
                precision, recall, _ = score([g.item_ids for g in found], truth_pairs, kind_of_copy, original_of)
                print(f"  cosine >= {cosine} alone: precision {precision:.1%}, recall {recall:.1%}")
            for cosine, distance, shift in itertools.product((0.8, 0.85, 0.9), (12, 16, 20), (8, 12, 20, 255)):
                hashes.max_distance, hashes.max_colour_shift = distance, shift
                found = duplicate_groups(vectors, cosine, same_picture=hashes.same_picture)
                precision, recall, _ = score([g.item_ids for g in found], truth_pairs, kind_of_copy, original_of)
                print(f"  cosine >= {cosine}, distance <= {distance}, colour shift <= {shift}: "
                      f"precision {precision:.1%}, recall {recall:.1%}")
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
