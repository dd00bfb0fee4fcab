"""Window state and choices remembered between runs, in an ini file in the user data folder (so tests that
point FORENSIGHT_HOME at a temporary folder never touch the real user's settings)."""
from __future__ import annotations

from PySide6.QtCore import QSettings

from models.library import data_home

ORGANISATION = "Forensight"
APPLICATION = "Forensight"


def open_settings() -> QSettings:
    return QSettings(str(data_home() / "desktop-settings.ini"), QSettings.Format.IniFormat)


def read_float(settings: QSettings, key: str, default: float) -> float:
    try:
        return float(settings.value(key, default))
    except (TypeError, ValueError):
        return default


def read_int(settings: QSettings, key: str, default: int) -> int:
    try:
        return int(settings.value(key, default))
    except (TypeError, ValueError):
        return default


def read_bool(settings: QSettings, key: str, default: bool) -> bool:
    value = settings.value(key, default)
    return value if isinstance(value, bool) else str(value).lower() in ("true", "1", "yes")
