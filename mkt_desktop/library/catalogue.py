"""The model catalogue: what is installed, what can be had, and what each choice gives on a person's photos.

What `mkt-desktop models` prints, and what the Settings dialog can show. Installed models are the
demo and the bundles in the library's cache folder (`clip-bundles-2/` made from `clip:NAME/TAG`,
`models/` added by `mkt-desktop models add-official`); speeds are measured here, on this machine.
Measured speeds are kept in the cache folder (`speeds.json`, by bundle fingerprint), so a list that
must come at once (the Settings dialog) shows the ones measured before without measuring again.
No import here loads torch: only adding the authors' model (a conversion) does.
"""

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mkt_core.assets import DEMO_MODEL
from mkt_core.runtime.bundle import BundleError, load_bundle
from mkt_core.runtime.files import write_atomically

AUTHORS_PAGE = "https://github.com/sunanhe/MKT"
OFFICIAL_FOLDER = "models"  # in the cache folder: bundles converted from the authors' checkpoints
CLIP_FOLDER = "clip-bundles-2"  # as model_source writes them
TRAINED_FOLDER = "trained"  # in the cache folder: bundles trained on the library's own tags
SPEEDS_FILE = "speeds.json"  # in the cache folder: {bundle fingerprint: photos per second measured here}
CLIP_GIVES = "Tags any words in everyday photos with no training (zero-shot), each with a heat map of where it is"

# open_clip models worth offering, with about what open_clip downloads once: float32 weights of both
# towers, 4 bytes a parameter (151 M, 150 M, 150 M, 428 M, 366 M parameters).
CLIP_CHOICES: tuple[tuple[str, int, str], ...] = (
    ("ViT-B-32/openai", 605, "the fastest (a 7 x 7 heat map): fine for a large library on a laptop"),
    ("ViT-B-16/openai", 599, "the CLIP the authors' MKT starts from (a 14 x 14 heat map); about 4 x the "
                             "computation of B/32"),
    ("ViT-B-16/laion2b_s34b_b88k", 599, "the same size trained on LAION-2B: 70.2 % ImageNet zero-shot against "
                                        "OpenAI's 68.3 %"),
    ("ViT-L-14/openai", 1710, "the most accurate here, about 18 x the computation of B/32: best with a GPU"),
    ("xlm-roberta-base-ViT-B-32/laion5b_s13b_b90k", 1470,
     "labels in any language (\"chien noir\", \"黒い犬\"): B/32's image side with a multilingual text side"),
)
CLIP_MADE_GIVES = "CLIP, made here from an open_clip model: tags any words in everyday photos with no training"
OFFICIAL_TITLE = "MKT by the paper's authors (NUS-WIDE, from CLIP ViT-B/16)"
TRAINING_TITLE = "A model trained on your own tags"  # how to get one (those made are listed by their name)
TRAINED_GIVES = "MKT trained here on this library's own tags (the photos you accepted and rejected for each label)"
FOLDER_GIVES = "A model bundle in a folder of yours (trained with mkt-train and exported, or copied here)"
OFFICIAL_GIVES = ("MKT as the paper made it: distilled from CLIP on NUS-WIDE's Flickr photos and their tags, "
                  "then open to any words, with a heat map. Its prompt was tuned on those tags, so words like them "
                  "fit best.")
# The authors' checkpoints, about: the ViT-B/16 image model (86 M parameters) and the text model (63 M), float32.
OFFICIAL_DOWNLOAD_MB = 344 + 253


@dataclass
class ModelChoice:
    spec: str  # what --model and the settings take
    title: str
    gives: str  # what it means for the person's own photos, in plain words
    installed: bool
    download_mb: int | None = None  # about what is downloaded once; None when nothing is
    two_streams: bool | None = None  # global + local stream (Eq. 3 and heat maps); None when not known yet
    size_mb: float | None = None  # on disk, when installed
    photos_per_second: float | None = None  # measured here (now, or before and remembered)
    how: str = ""  # how to get it, when it is not installed
    folder: str | None = None  # where it is installed

    def to_dict(self) -> dict:
        return asdict(self)


def _folder_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) / 1e6


def measure_speed(folder: Path, batch: int = 8) -> float | None:
    """Photos per second through the bundle's image encoder on this machine (one warm-up batch first)."""
    from mkt_core.runtime.engine import Engine

    try:
        engine = Engine(folder, batch_size=batch)
    except Exception:  # noqa: BLE001 - a damaged bundle is listed without a speed
        return None
    size = engine.bundle.image_size
    images = np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32)
    engine.encode_images(images)
    start = time.perf_counter()
    engine.encode_images(images)
    return batch / max(time.perf_counter() - start, 1e-9)


def _remembered_speeds(cache_dir: Path) -> dict[str, float]:
    """The speeds measured before; a missing or unreadable file is none (they are measured again)."""
    try:
        data = json.loads((cache_dir / SPEEDS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {key: float(value) for key, value in data.items() if isinstance(value, (int, float)) and value > 0}


def measure_and_remember(folder: str | Path, cache_dir: str | Path) -> float | None:
    """`measure_speed`, kept in the cache folder's speeds.json for the next list (None when it cannot run)."""
    speed = measure_speed(Path(folder))
    if speed is None:
        return None
    cache_dir = Path(cache_dir)
    speeds = _remembered_speeds(cache_dir)
    speeds[load_bundle(folder).fingerprint] = round(speed, 2)
    cache_dir.mkdir(parents=True, exist_ok=True)
    write_atomically(cache_dir / SPEEDS_FILE, (json.dumps(speeds, indent=1) + "\n").encode("utf-8"))
    return speed


def _installed(folder: Path, spec: str, title: str, gives: str, speed: bool, cache_dir: Path) -> ModelChoice | None:
    try:
        bundle = load_bundle(folder)
    except BundleError:
        return None
    measured = (measure_and_remember(folder, cache_dir) if speed
                else _remembered_speeds(cache_dir).get(bundle.fingerprint))
    return ModelChoice(spec=spec, title=title or bundle.name, gives=gives, installed=True,
                       two_streams=bundle.num_patches > 0, size_mb=round(_folder_mb(folder), 1),
                       photos_per_second=measured, folder=str(folder))


def installed_bundle_folders(cache_dir: str | Path) -> list[Path]:
    """The demo and every bundle folder in the cache folder (made from CLIP, added, trained here)."""
    cache_dir = Path(cache_dir)
    folders = [DEMO_MODEL]
    for kind in (CLIP_FOLDER, OFFICIAL_FOLDER, TRAINED_FOLDER):
        folders += sorted(f for f in (cache_dir / kind).glob("*") if f.is_dir() and not f.name.endswith(".partial"))
    return folders


def catalogue(cache_dir: str | Path, speed: bool = False) -> list[ModelChoice]:
    """Every model choice, installed ones first; `speed` measures each installed one (a few seconds each),
    else the speeds measured before are given."""
    cache_dir = Path(cache_dir)
    choices: list[ModelChoice] = []
    demo = _installed(DEMO_MODEL, "demo", "Demo model (MKT on the project's synthetic world)",
                      "Works offline, but knows only coloured shapes (red star, blue ring...): "
                      "it will not recognise anything in real photos. For trying the app.", speed, cache_dir)
    if demo is not None:
        choices.append(demo)
    made = {}
    for folder in sorted((cache_dir / CLIP_FOLDER).glob("*")):
        bundle_choice = _installed(folder, str(folder), "", CLIP_MADE_GIVES, speed, cache_dir)
        if bundle_choice is not None:
            made[bundle_choice.title.replace(":", "/")] = bundle_choice
            choices.append(bundle_choice)
    for folder in sorted((cache_dir / OFFICIAL_FOLDER).glob("*")):
        bundle_choice = _installed(folder, str(folder), "", OFFICIAL_GIVES, speed, cache_dir)
        if bundle_choice is not None:
            choices.append(bundle_choice)
    for folder in sorted((cache_dir / TRAINED_FOLDER).glob("*")):
        bundle_choice = _installed(folder, str(folder), "", TRAINED_GIVES, speed, cache_dir)
        if bundle_choice is not None:
            choices.append(bundle_choice)
    for name_tag, download, note in CLIP_CHOICES:
        if name_tag in made:
            made[name_tag].spec = f"clip:{name_tag}"
            made[name_tag].gives = f"{CLIP_GIVES}: {note}."
            continue
        choices.append(ModelChoice(
            spec=f"clip:{name_tag}", title=f"CLIP {name_tag.replace('/', ' (') + ')'}", installed=False,
            download_mb=download, two_streams=True,
            gives=f"{CLIP_GIVES}: {note}.",
            how="open_clip downloads it the first time it is chosen; then it works offline"))
    choices.append(ModelChoice(
        spec="", title=OFFICIAL_TITLE, installed=False,
        download_mb=OFFICIAL_DOWNLOAD_MB + 599, two_streams=True,
        gives=OFFICIAL_GIVES,
        how=f"download first_stage and second_stage checkpoints from {AUTHORS_PAGE}, then run "
            "`mkt-desktop models add-official FIRST SECOND` (it also needs CLIP ViT-B/16, from open_clip or "
            "--clip ViT-B-16.pt)"))
    choices.append(ModelChoice(
        spec="", title=TRAINING_TITLE, installed=False,
        gives="MKT trained from the tags you accepted and rejected, starting from the model you use now.",
        how="in the window: Library > Train on my tags...; or mkt-train stage1/stage2 --data library:PATH, then "
            "mkt-train export (docs/training.md)"))
    return choices


def model_choices(cache_dir: str | Path, current: str = "") -> list[ModelChoice]:
    """The catalogue (speeds measured before only), with the model in use first when the catalogue lacks it:
    a bundle folder trained here, a CLIP weights file (clip:NAME/PATH)."""
    choices = catalogue(cache_dir)
    current = current.strip()
    if not current or any(choice.spec == current for choice in choices):
        return choices
    folder = Path(current).expanduser()
    mine = _installed(folder, current, "", FOLDER_GIVES, False, Path(cache_dir)) if folder.is_dir() else None
    if mine is None:
        clip_file = current.startswith("clip:")
        gives = ("CLIP through open_clip: tags any words in everyday photos with no training" if clip_file
                 else "The model the settings name now (it could not be read, so nothing is known about it)")
        mine = ModelChoice(spec=current, title=current, gives=gives, installed=clip_file)
    return [mine, *choices]


def free_official_name(cache_dir: str | Path, name: str = "mkt-release") -> str:
    """`name`, else name-2, name-3...: a folder add_official can make without replacing one."""
    folder = Path(cache_dir) / OFFICIAL_FOLDER
    candidates = (name if n == 1 else f"{name}-{n}" for n in range(1, 1000))
    return next(c for c in candidates if not (folder / c).exists())


def add_official(first_stage: str | Path, second_stage: str | Path | None, cache_dir: str | Path,
                 clip_weights: str | Path | None = None, name: str = "mkt-release", preset: str = "release-vit-b16",
                 overwrite: bool = False) -> Path:
    """The authors' released checkpoints -> a bundle in the cache's models/ folder the app can open.

    The converter (`mkt_core.model.convert.convert_official`) loads CLIP's towers first (the checkpoints
    hold neither the teacher nor, for stage 1, a text tower), then the checkpoints over them.
    """
    from mkt_core.model.config import get_preset
    from mkt_core.model.convert import convert_official
    from mkt_core.model.export import export_bundle

    if not name or Path(name).name != name:
        raise ValueError(f"the model's name must be a plain folder name, got {name!r}")
    model = convert_official(first_stage, second_stage, get_preset(preset), clip_weights=clip_weights)
    return export_bundle(model, Path(cache_dir) / OFFICIAL_FOLDER / name, name=name, overwrite=overwrite)
