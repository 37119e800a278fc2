"""The desktop app's settings: model, device, batch size, thumbnail size, database, the folders
indexing skips and whether the first run's word on the models was dismissed, kept in a JSON file.

Read at start; a missing file means the defaults, and a broken one is reported and replaced by the
defaults rather than stopping the app. Command-line flags win over the file for one run.
"""

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

DEVICES = ("auto", "cuda", "cpu")
BATCH_SIZES = (1, 1024)
THUMBNAIL_SIZES = (64, 512)


def _default_skipped() -> tuple[str, ...]:
    from mkt_desktop.library.scanner import DEFAULT_SKIPPED

    return DEFAULT_SKIPPED


@dataclass
class Settings:
    model: str = "demo"  # "demo", a bundle folder, or "clip:NAME/TAG"
    device: str = "auto"  # "auto" uses a GPU when one really runs
    batch_size: int = 32  # photos per model call while indexing
    thumbnail_size: int = 128  # pixels, the longer side
    database: str = ""  # the library file; empty: library.sqlite in the user data folder
    # folder names indexing never walks (shell patterns, any case): hidden, NAS thumbnails, recycle bins
    skip_folders: list[str] = field(default_factory=lambda: list(_default_skipped()))
    model_intro_seen: bool = False  # the first run's word on the model choices was dismissed

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.model, str) or not self.model.strip():
            problems.append("model must be 'demo', a bundle folder or clip:NAME/TAG")
        if self.device not in DEVICES:
            problems.append(f"device must be one of {', '.join(DEVICES)}, not {self.device!r}")
        for name, (low, high) in (("batch_size", BATCH_SIZES), ("thumbnail_size", THUMBNAIL_SIZES)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                problems.append(f"{name} must be a whole number from {low} to {high}, not {value!r}")
        if not isinstance(self.database, str):
            problems.append("database must be a file path or empty")
        if not isinstance(self.skip_folders, list) or not all(isinstance(p, str) and p for p in self.skip_folders):
            problems.append("skip_folders must be a list of folder names or patterns such as '@eaDir' or '.*'")
        if not isinstance(self.model_intro_seen, bool):
            problems.append("model_intro_seen must be true or false")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def library_options(self) -> dict:
        return {"engine_options": self.engine_options, "skip_folders": list(self.skip_folders)}

    @property
    def engine_options(self) -> dict:
        return {"device": self.device, "batch_size": self.batch_size}

    def save(self, path: str | Path) -> None:
        """Write then rename: a crash never leaves half a settings file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        partial.replace(path)


def load_settings(path: str | Path) -> tuple[Settings, str | None]:
    """(settings, problem): the defaults and a plain reason when the file cannot be used."""
    path = Path(path)
    if not path.is_file():
        return Settings(), None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("it is not a JSON object")
        known = {f.name for f in fields(Settings)}
        return Settings(**{k: v for k, v in data.items() if k in known}), None
    except (OSError, UnicodeDecodeError, ValueError, TypeError) as exc:
        return Settings(), f"{path}: settings not used ({exc}); the defaults apply"
