"""Persistent user settings (window layout, recent projects, tool sizes, opacity) in an INI file."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs
from PySide6.QtCore import QByteArray, QSettings

MAX_RECENT = 10


def settings_path() -> Path:
    """``$FCN_GUI_CONFIG_DIR/settings.ini``, or the platform's per-user config folder."""
    base = os.environ.get("FCN_GUI_CONFIG_DIR") or platformdirs.user_config_dir("fcn-gui", appauthor=False)
    return Path(base) / "settings.ini"


class Settings:
    """Typed access to the values the app keeps between runs."""

    def __init__(self) -> None:
        self.qsettings = QSettings(str(settings_path()), QSettings.Format.IniFormat)

    def get(self, key: str, default, kind: type | None = None):
        """The stored value of ``key`` converted by Qt to ``kind`` (the INI file holds text)."""
        if kind is None:
            return self.qsettings.value(key, default)
        return self.qsettings.value(key, default, type=kind)

    def set(self, key: str, value) -> None:
        self.qsettings.setValue(key, value)

    def recent(self) -> list[str]:
        return [p for p in self.qsettings.value("recent", [], type=list) if p]

    def add_recent(self, path: str) -> None:
        items = [p for p in self.recent() if p != path]
        self.qsettings.setValue("recent", [path, *items][:MAX_RECENT])

    def remember_dir(self, path: str) -> None:
        """Dialogs start next time where the user last opened something."""
        p = Path(path)
        self.set("last_dir", str(p if p.is_dir() else p.parent))

    def restore_window(self, window) -> None:
        """The size, place and dock layout ``window`` had when it last closed."""
        window.resize(1400, 900)
        for key, restore in (("geometry", window.restoreGeometry), ("window_state", window.restoreState)):
            value = self.get(key, None)
            if isinstance(value, QByteArray):
                restore(value)

    def save_window(self, window) -> None:
        self.set("geometry", window.saveGeometry())
        self.set("window_state", window.saveState())

    def sync(self) -> None:
        self.qsettings.sync()
