"""Start-up times: `protoshelf --help`, `protoshelf categories`, the app's window on screen, first predictions.

Each figure comes from a fresh interpreter (as a user starts it), median of `--runs`. The app is
timed from interpreter start to the window shown and painted with its grid, and on to the first
predictions on the demo catalog (already embedded, as on a second launch); the first launch is
timed to idle (images, titles and concepts embedded, predictions shown). `--source DIR` times
another checkout (e.g. the main branch) with the same script, for a before/after comparison.

    QT_QPA_PLATFORM=offscreen python -m benchmarks.startup [--runs 3] [--source /path/to/checkout]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

APP = r"""
import json, sys, time
start = time.perf_counter()
from PySide6.QtWidgets import QApplication
from protoshelf.gui.main_window import MainWindow
from protoshelf.gui.session import CatalogSession
app = QApplication([])
session = CatalogSession(sys.argv[1], embed_titles=False)
window = MainWindow(session)
window.show()
app.processEvents()
window.view.viewport().repaint()
shown = time.perf_counter() - start
shown_cpu = time.process_time()
session.start()
while session.predictions is None and time.perf_counter() - start < 600:
    app.processEvents()
    time.sleep(0.005)
predicted = time.perf_counter() - start
window.close()
print(json.dumps({"window_s": shown, "window_cpu_s": shown_cpu, "first_predictions_s": predicted}))
"""


FIRST_LAUNCH = r"""
import json, sys, time
start = time.perf_counter()
from PySide6.QtWidgets import QApplication
from protoshelf.gui.main_window import MainWindow
from protoshelf.gui.session import CatalogSession
app = QApplication([])
session = CatalogSession(sys.argv[1])
window = MainWindow(session)
window.show()
session.start()
while (session.busy or session.predictions is None) and time.perf_counter() - start < 600:
    app.processEvents()
    time.sleep(0.005)
idle, cpu = time.perf_counter() - start, time.process_time()
window.close()
print(json.dumps({"first_launch_idle_s": idle, "first_launch_cpu_s": cpu}))
"""


def source_env(source: Path, tmp: Path) -> dict[str, str]:
    """An environment whose `import protoshelf.core` reads `source`. PYTHONPATH=source alone does
    not: the checkout has no `protoshelf` folder, so the import fell through to this venv's editable
    install and every "before" timed the code of "after". A `protoshelf` folder linking the
    checkout's core/ and gui/, first on the path, is found before the editable install's finder."""
    package = tmp / "import-root" / "protoshelf"
    package.mkdir(parents=True)
    (package / "__init__.py").touch()
    for part in ("core", "gui"):
        (package / part).symlink_to(source / part, target_is_directory=True)
    return {**os.environ, "PYTHONPATH": str(package.parent),
            "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")}


def timed(command: list[str], source: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=source, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def app_times(source: Path, env: dict[str, str], catalog: Path, script: str = APP) -> dict:
    out = subprocess.run([sys.executable, "-c", script, str(catalog)], cwd=source, env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--source", type=Path, default=ROOT, help="the checkout to time (default: this one)")
    args = parser.parse_args(argv)
    source = args.source.resolve()
    cli = [sys.executable, "-m", "protoshelf.core.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Path(tmp) / "demo.sqlite"
        env = source_env(source, Path(tmp))  # the catalogs are built by the timed code: its schema
        where = subprocess.run([sys.executable, "-c", "import protoshelf.core as c; print(c.__file__)"], cwd=source,
                               env=env, check=True, capture_output=True, text=True).stdout.strip()
        if not Path(where).resolve().is_relative_to(source):
            raise SystemExit(f"would time {where}, not {source}")
        subprocess.run([sys.executable, "-c", "import sys; from protoshelf.core.demo import build_demo_catalog; "
                        "from protoshelf.core.store import Store; from protoshelf.core.embedding import embed_catalog; "
                        "p = build_demo_catalog(sys.argv[1]); s = Store(p); embed_catalog(s, device='cpu'); s.close()",
                        str(catalog)], cwd=source, env=env, check=True, capture_output=True)
        timed([*cli, "--db", str(catalog), "categories"], source, env)  # upgrade the schema once, outside the timing
        fresh = Path(tmp) / "fresh.sqlite"
        subprocess.run([sys.executable, "-c", "import sys; from protoshelf.core.demo import build_demo_catalog; "
                        "build_demo_catalog(sys.argv[1])", str(fresh)], cwd=source, env=env, check=True)
        figures: dict[str, list[float]] = {"help_s": [], "categories_s": [], "window_s": [], "window_cpu_s": [],
                                             "first_predictions_s": [], "first_launch_idle_s": [],
                                             "first_launch_cpu_s": []}
        for run in range(args.runs):
            figures["help_s"].append(timed([*cli, "--help"], source, env))
            figures["categories_s"].append(timed([*cli, "--db", str(catalog), "categories"], source, env))
            for name, value in app_times(source, env, catalog).items():
                figures[name].append(value)
            first = shutil.copy(fresh, Path(tmp) / f"first-{run}.sqlite")  # a new path: no cached vectors
            for name, value in app_times(source, env, first, FIRST_LAUNCH).items():
                figures[name].append(value)
    print(f"{source}: median of {args.runs} (min-max), {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    for name, values in figures.items():
        print(f"  {name:<22}{statistics.median(values):7.2f} s  ({min(values):.2f}-{max(values):.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
