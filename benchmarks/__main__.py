"""Every speed figure of ProtoShelf in one run, printed as one JSON object to track run to run.

    python -m benchmarks [--quick] [--only embedding rescoring grid]     # or: protoshelf bench

Each benchmark runs in its own interpreter (`python -m benchmarks.<name> --json`), so one's
memory (a million-item catalog) and threads never bend the next one's figures. Progress goes to
stderr; stdout is the JSON alone. A full run builds 1M-item catalogs in a temporary folder (about
12 GB of disk while it runs) and takes several minutes; --quick uses 100k items and fewer images.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SECTIONS = {
    "embedding": ("embedding_throughput", [], ["--images", "64", "--rounds", "1", "--naive-images", "16"]),
    "rescoring": ("rescoring", [], ["--items", "100000", "--repeats", "2"]),
    "grid": ("grid_model", [], ["--items", "100000", "--pages", "30", "--jumps", "20"]),
}


def machine() -> dict:
    import numpy
    import torch

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return {
        "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
        "platform": platform.platform(), "commit": commit.stdout.strip() or None,
        "load_average_at_start": round(os.getloadavg()[0], 1),
    }


def run_section(name: str, quick: bool) -> dict:
    module, full, small = SECTIONS[name]
    command = [sys.executable, "-m", f"benchmarks.{module}", "--json", *(small if quick else full)]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")})
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["benchmark_s"] = round(time.perf_counter() - started, 1)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes: 100k items, 64 images")
    parser.add_argument("--only", nargs="+", choices=sorted(SECTIONS), default=list(SECTIONS))
    args = parser.parse_args(argv)
    report = {"quick": args.quick, "machine": machine()}
    for name in args.only:
        print(f"benchmarks: {name}...", file=sys.stderr, flush=True)
        report[name] = run_section(name, args.quick)
    report["machine"]["load_average_at_end"] = round(os.getloadavg()[0], 1)
    print(json.dumps(report, indent=2))
    return 1 if any("error" in report[name] for name in args.only) else 0


if __name__ == "__main__":
    sys.exit(main())
