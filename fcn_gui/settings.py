"""Persistent user settings (window layout, recent projects, tool sizes, opacity) in an INI file."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs
from PySide6.QtCore import QSettings

MAX_RECENT = 10


def settings_path() -> Path:
    """``$FCN_GUI_CONFIG_DIR/settings.ini``, or the platform's per-user config folder."""
    base = os.environ.get("FCN_GUI_CONFIG_DIR") or platformdirs.user_config_dir("fcn-gui", appauthor=False)
    return Path(base) / "settings.ini"


class Settings:
    """Typed access to the values the app keeps between runs."""

    def __init__(self) -> None:
        self.qsettings = QSettings(str(settings_path()), QSettings.Format.IniFormat)

    def get(self, key: str, default, kind=None):
        value = self.qsettings.value(key, default)
        if kind is bool and isinstance(value, str):
            return value.lower() == "true"
        try:
            return kind(value) if kind is not None and value is not None else value
        except (TypeError, ValueError):
            return default

    def set(self, key: str, value) -> None:
        self.qsettings.setValue(key, value)

    def recent(self) -> list[str]:
        value = self.qsettings.value("recent", [])
        items = [value] if isinstance(value, str) else list(value or [])
        return [p for p in items if p]

    def add_recent(self, path: str) -> None:
        items = [p for p in self.recent() if p != path]
        self.qsettings.setValue("recent", [path, *items][:MAX_RECENT])

    def sync(self) -> None:
        self.qsettings.sync()
