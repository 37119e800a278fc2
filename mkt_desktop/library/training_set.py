"""A library's decisions as a training set the trainer reads (mkt_core/data/generic.py), so that
training on a person's tags needs no SQL in mkt_core:

    mkt-desktop export --training-set ~/my-tags      # annotations.jsonl + labels.txt
    mkt-train stage1 --data library:~/photos.sqlite  # the same, written into the run's folder

One JSON line per photo with a decision: accepted labels as `labels`, rejected ones as `negatives`;
with negatives given explicitly, every label the person did not decide on is unknown (0) for that
photo, never a negative. `labels.txt` lists each label that has a decision, in the library's order.
"""

import json
from pathlib import Path

from sqlalchemy import func, select

from mkt_desktop.library.db import Embedding, Label, Model, Photo, Tag
from mkt_desktop.library.export import atomic_file


def write_training_set(lib, folder: str | Path) -> dict:
    """Write `annotations.jsonl` and `labels.txt` into `folder`; returns their paths and the counts."""
    folder = Path(folder).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    with lib.Session() as session:
        rows = session.execute(
            select(Photo.path, Label.id, Label.text, Tag.status).join(Tag, Tag.photo_id == Photo.id)
            .join(Label, Label.id == Tag.label_id).where(Photo.status == "ok").order_by(Photo.path, Label.id)).all()
    photos: dict[str, dict[str, list[str]]] = {}
    labels: dict[int, str] = {}
    for path, label_id, text, status in rows:
        labels[label_id] = text
        record = photos.setdefault(path, {"labels": [], "negatives": []})
        record["labels" if status == "accepted" else "negatives"].append(text)
    annotations, label_file = folder / "annotations.jsonl", folder / "labels.txt"
    with atomic_file(annotations) as f:
        for path, record in photos.items():
            f.write((json.dumps({"path": path, **record}) + "\n").encode("utf-8"))
    with atomic_file(label_file) as f:
        f.write("".join(f"{labels[i]}\n" for i in sorted(labels)).encode("utf-8"))
    accepted = sum(len(r["labels"]) for r in photos.values())
    return {"annotations": str(annotations), "labels": str(label_file), "photos": len(photos),
            "accepted": accepted, "rejected": len(rows) - accepted}


def decision_counts(lib) -> dict:
    """How many photos have a decision, and how many decisions are accepts and rejects (what a run learns from)."""
    with lib.Session() as session:
        rows = session.execute(select(Tag.status, func.count(Tag.label_id)).join(Photo, Photo.id == Tag.photo_id)
                               .where(Photo.status == "ok").group_by(Tag.status)).all()
        photos = session.scalar(select(func.count(func.distinct(Tag.photo_id))).join(Photo, Photo.id == Tag.photo_id)
                                .where(Photo.status == "ok"))
    counts = {status: count for status, count in rows}
    return {"photos": photos or 0, "accepted": counts.get("accepted", 0), "rejected": counts.get("rejected", 0)}


def library_training_data(db_path: str | Path, folder: str | Path) -> dict:
    """`mkt-train --data library:PATH`: the library's decisions written into `folder`, and the bundle folder
    of the library's model (`model`) to train from. Opens the library for reading only."""
    from mkt_desktop.library.library import Library

    db_path = Path(db_path).expanduser()
    if not db_path.is_file():
        raise FileNotFoundError(f"{db_path}: no library there (the .sqlite file the app or mkt-desktop made)")
    lib = Library(db_path, vocabulary=False)
    found = write_training_set(lib, folder)
    if not found["accepted"]:
        raise ValueError(f"{db_path}: no accepted tags to learn from ({found['rejected']} rejected): accept a "
                         "label on some photos first (the photo view's Accept, or mkt-desktop tag)")
    return {**found, "model": str(library_model_folder(lib))}


def library_model_folder(lib) -> Path:
    """The bundle folder of the model that embedded most of the library's photos: the demo or a model
    installed in the library's cache folder (where the app and `mkt-desktop models` put them)."""
    from mkt_core.runtime.bundle import BundleError, load_bundle
    from mkt_desktop.library.catalogue import installed_bundle_folders

    with lib.Session() as session:
        rows = session.execute(select(Model.fingerprint, Model.name, func.count(Embedding.id))
                               .join(Embedding, Embedding.model_id == Model.id, isouter=True)
                               .group_by(Model.id).order_by(func.count(Embedding.id).desc())).all()
    if not rows:
        raise ValueError(f"{lib.db_path}: the library has indexed no photos with any model yet")
    fingerprint, name, _ = rows[0]
    cache_dir = lib.cache_dir
    for folder in installed_bundle_folders(cache_dir):
        try:
            if load_bundle(folder).fingerprint == fingerprint:
                return folder
        except BundleError:
            continue
    raise ValueError(f"{lib.db_path}: its model {name!r} is not installed in {cache_dir} (nor is it the demo): "
                     "give the model's bundle folder with --init")
