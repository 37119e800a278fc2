"""Which model the library uses: the bundled demo, a bundle folder, or an open_clip model by name.

    demo                                  the small demo model shipped in assets/demo-model (works offline)
    /path/to/bundle                       a folder written by `mkt-train export`
    clip:ViT-B-16/openai                  CLIP zero-shot through open_clip: NAME/TAG (downloads once, then
                                          cached); a ViT gets both streams (Eq. 3 and heat maps), a ResNet the
                                          global one
    clip:xlm-roberta-base-ViT-B-32/laion5b_s13b_b90k
                                          a multilingual CLIP (a Hugging Face text tower): labels in any
                                          language; its tokenizer.json goes into the bundle, so the app
                                          tokenizes without the hub or transformers
    clip:ViT-B-16//path/to/weights.bin    the same CLIP from a local weights file or open_clip folder
                                          (open_clip_config.json + weights): NAME/PATH (here an absolute path,
                                          hence the double slash; ~/... and ./... work too)
"""

import hashlib
from pathlib import Path

from mkt_core.assets import DEMO_MODEL
from mkt_core.runtime.bundle import VOCABULARY_FILE, Bundle, load_bundle

CLIP_SYNTAX = "clip:NAME/TAG (e.g. clip:ViT-B-16/openai) or clip:NAME/PATH to a local weights file"


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
    check_model(spec)
    return load_bundle(Path(spec).expanduser())


def check_model(spec: str) -> None:
    """Refuse a model spec that cannot work, without loading anything (before a database is created for it)."""
    spec = spec.strip()
    if spec == "demo":
        return
    if spec.startswith("clip:"):
        name, tag = split_clip_spec(spec[len("clip:"):])
        if not name:
            raise ModelUnavailable(f"{spec}: give an open_clip model as {CLIP_SYNTAX}")
        if not tag:
            raise ModelUnavailable(f"{spec}: give the pretrained weights too, {CLIP_SYNTAX}; without them the "
                                   f"model would have random weights. Tags of {name}: {_known_tags(name)}")
        weights = local_weights(tag)
        if weights is not None and not weights.exists():
            raise ModelUnavailable(f"{spec}: no such weights file or open_clip folder {weights}")
        return
    path = Path(spec).expanduser()
    if not path.exists():
        raise ModelUnavailable(f"{path}: no such model bundle folder (or use 'demo', {CLIP_SYNTAX})")
    if not (path / "manifest.json").is_file():
        raise ModelUnavailable(f"{path}: not a model bundle (no manifest.json; a bundle is written by "
                               f"`mkt-train export`); or use 'demo', {CLIP_SYNTAX}")


def split_clip_spec(name_tag: str) -> tuple[str, str]:
    """"ViT-B-16/openai" -> (name, tag); "ViT-B-16//home/me/w.bin" -> (name, "/home/me/w.bin")."""
    name, _, tag = name_tag.strip().partition("/")
    return name.strip(), tag.strip()


def local_weights(tag: str) -> Path | None:
    """The local file a CLIP spec's tag names, or None when the tag is an open_clip pretrained tag."""
    if tag.startswith(("/", "~", ".")) or "/" in tag or "\\" in tag or Path(tag).suffix in (".bin", ".pt", ".pth",
                                                                                             ".safetensors"):
        return Path(tag).expanduser().resolve()
    return None


def _known_tags(name: str) -> str:
    import open_clip

    if name not in open_clip.list_models():
        return f"none: {name!r} is not an open_clip model (e.g. ViT-B-16, ViT-B-32, ViT-L-14)"
    return ", ".join(open_clip.list_pretrained_tags_by_model(name)) or "none"


def _clip_bundle(name_tag: str, cache_dir: Path) -> Bundle:
    from mkt_core.model.export import export_clip_bundle

    check_model(f"clip:{name_tag}")
    name, tag = split_clip_spec(name_tag)
    weights = local_weights(tag)
    if weights is None:
        key = tag
    else:  # a local file or folder: the cache follows it (another one, or the same path rewritten, is another)
        stat = weights.stat()
        key = "file-" + hashlib.sha1(f"{weights}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    # clip-bundles-2: a ViT's bundle has both streams now; the global-only ones in clip-bundles stay unused
    folder = cache_dir / "clip-bundles-2" / f"{name}-{key}".replace("/", "-")
    if (folder / "manifest.json").is_file():
        return load_bundle(folder)
    try:
        export_clip_bundle(name, str(weights) if weights else tag, folder)
    except Exception as exc:  # noqa: BLE001 - download, offline or export failures get one clear message
        raise ModelUnavailable(f"cannot make a CLIP bundle for clip:{name_tag}: {exc}") from exc
    return load_bundle(folder)


def model_vocabulary(spec: str) -> Path | None:
    """The vocabulary file a bundle brings (the labels it was made for), without loading the model."""
    spec = spec.strip()
    if spec.startswith("clip:"):
        return None
    folder = DEMO_MODEL if spec == "demo" else Path(spec).expanduser()
    path = folder / VOCABULARY_FILE
    return path if path.is_file() else None
