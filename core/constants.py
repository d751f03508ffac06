"""Defaults and names shared by the CLI, the app and the engine, in a module that imports nothing heavy.

`protoshelf --help`, `categories` and the app's first window read these; importing them from the
modules that use them would load torch and timm (seconds) before anything is shown.
"""
from pathlib import Path

DEFAULT_BACKBONE = "efficientnet_lite0"
DEFAULT_METHOD = "prototypes"
AUTO = "auto"
FINETUNE = "finetune"
UNASSIGNED = -1
DEFAULT_THRESHOLD = 0.8
"""Assign when at least this sure (calibrated, core/calibration.py): at 0.5, assigned pictures were
right only 54–79% of the time (benchmarks/names_calibration.py, the demo), so the default asks for
the 80% it promises."""
DUPLICATE_THRESHOLD = 0.92
PICTURE_DUPLICATE_THRESHOLD = 0.80
"""The cosine that makes a candidate when perceptual hashes confirm links; resized-and-re-encoded
copies fall to 0.89, axe and hammer reach 0.905 (benchmarks/duplicate_listings.py)."""
SUGGEST_STRATEGIES = ("margin", "entropy")


def default_catalog_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("protoshelf")) / "catalog.sqlite"
