"""Demo photos for the demo model, written by the app itself (no command line needed)."""

from pathlib import Path

DEMO_FOLDER_NAME = "mkt-demo-photos"
DEMO_COUNT = 120


def write_demo_folder(parent: str | Path, count: int | None = None, seed: int = 0) -> str:
    """Photos of the demo model's synthetic world (coloured shapes) in `parent`/mkt-demo-photos; its path."""
    from mkt_core.synthetic.world import WorldSpec, write_demo_photos  # numpy and PIL only: no torch

    folder = Path(parent).expanduser() / DEMO_FOLDER_NAME
    write_demo_photos(folder, count or DEMO_COUNT, seed, WorldSpec(image_size=160))
    return str(folder.resolve())
