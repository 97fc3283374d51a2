"""Where TransferLab keeps its working data: extracted datasets, the feature cache, app workspaces."""
from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """$TRANSFERLAB_HOME, else ~/.cache/transferlab."""
    configured = os.environ.get("TRANSFERLAB_HOME")
    path = Path(configured) if configured else Path.home() / ".cache" / "transferlab"
    path.mkdir(parents=True, exist_ok=True)
    return path
