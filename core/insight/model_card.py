"""The model card: one self-contained HTML page about a run (data, settings, honest metrics, limits)."""
from __future__ import annotations

from pathlib import Path

CARD_FILE = "model_card.html"


def bundle_extras(run_dir: Path) -> list[str]:
    """Files of the run folder that go into the export bundle beside the model (the card is written first)."""
    return [name for name in ("calibration.json", CARD_FILE) if (Path(run_dir) / name).exists()]
