"""The app's name and where it keeps its files in the user's folders (one place for both)."""

from pathlib import Path

APP_NAME = "mkt-photo-tagger"


def default_data_dir() -> Path:
    """Where a library lives when no database is given."""
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def default_settings_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / "settings.json"
