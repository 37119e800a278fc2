"""Which model the library uses: the bundled demo, a bundle folder, or an open_clip model by name.

    demo                  the small demo model shipped in assets/demo-model (works offline)
    /path/to/bundle       a folder written by `mkt-train export`
    clip:ViT-B-16/openai  CLIP zero-shot through open_clip (downloads its weights once, then cached); a ViT
                          gets both streams (Eq. 3 and heat maps), a ResNet the global one
    clip:NAME//abs/folder CLIP from a local open_clip folder (open_clip_config.json + weights)
"""

from pathlib import Path

from mkt_core.assets import DEMO_MODEL
from mkt_core.runtime.bundle import VOCABULARY_FILE, Bundle, load_bundle


class ModelUnavailable(RuntimeError):
    """The model asked for cannot be had here; the message says how to get one."""


def resolve_model(spec: str, cache_dir: str | Path) -> Bundle:
    spec = spec.strip()
    if spec == "demo":
        if not (DEMO_MODEL / "manifest.json").is_file():
            raise ModelUnavailable(
                f"the demo model is not in {DEMO_MODEL}: it is trained on the project's synthetic world "
                "(mkt-train toy-benchmark). Meanwhile give a bundle folder (--model PATH, written by "
                "`mkt-train export`) or an open_clip model (--model clip:ViT-B-16/openai).")
        return load_bundle(DEMO_MODEL)
    if spec.startswith("clip:"):
        return _clip_bundle(spec[len("clip:"):], Path(cache_dir))
    path = Path(spec).expanduser()
    if not path.exists():
        raise ModelUnavailable(f"{path}: no such model bundle folder (or use 'demo', 'clip:NAME/TAG')")
    return load_bundle(path)


def _clip_bundle(name_tag: str, cache_dir: Path) -> Bundle:
    from mkt_core.model.export import export_clip_bundle

    name, _, tag = name_tag.partition("/")
    if not name:
        raise ModelUnavailable(f"clip:{name_tag}: give an open_clip model name, e.g. clip:ViT-B-16/openai")
    # clip-bundles-2: a ViT's bundle has both streams now; the global-only ones in clip-bundles stay unused
    folder = cache_dir / "clip-bundles-2" / f"{name}-{tag or 'random'}".replace("/", "-")
    if (folder / "manifest.json").is_file():
        return load_bundle(folder)
    try:
        export_clip_bundle(name, tag or None, folder)
    except Exception as exc:  # noqa: BLE001 - download, offline or export failures get one clear message
        raise ModelUnavailable(f"cannot make a CLIP bundle for {name_tag}: {exc}") from exc
    return load_bundle(folder)


def model_vocabulary(spec: str) -> Path | None:
    """The vocabulary file a bundle brings (the labels it was made for), without loading the model."""
    spec = spec.strip()
    if spec.startswith("clip:"):
        return None
    folder = DEMO_MODEL if spec == "demo" else Path(spec).expanduser()
    path = folder / VOCABULARY_FILE
    return path if path.is_file() else None
