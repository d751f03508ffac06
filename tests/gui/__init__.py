"""Tests of the desktop app.

With no tests/__init__.py, pytest imports this folder as a package named after it: `gui`, the
app's own name. The app's modules are therefore looked up here as well as in the app's folder.
"""
from pathlib import Path

__path__.append(str(Path(__file__).resolve().parents[2] / "gui"))
