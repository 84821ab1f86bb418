"""Finding bundled resources the same way from source and from the frozen (PyInstaller) build."""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path

from PySide6.QtGui import QIcon


def resources_dir() -> Path:
    """``resources/`` next to the sources, or inside the frozen app's folder."""
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        return Path(frozen) / "resources"
    return Path(__file__).resolve().parents[1] / "resources"


@cache
def icon(name: str) -> QIcon:
    """The icon ``resources/icons/<name>.svg``."""
    return QIcon(str(resources_dir() / "icons" / f"{name}.svg"))
