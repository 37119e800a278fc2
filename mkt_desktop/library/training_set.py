"""A library's decisions as a training set the trainer reads (mkt_core/data/generic.py), so that
training on a person's tags needs no SQL in mkt_core:

    mkt-desktop export --training-set ~/my-tags      # annotations.jsonl + labels.txt

One JSON line per photo with a decision: accepted labels as `labels`, rejected ones as `negatives`;
with negatives given explicitly, every label the person did not decide on is unknown (0) for that
photo, never a negative. `labels.txt` lists each label that has a decision, in the library's order.
"""

import json
from pathlib import Path

from sqlalchemy import select

from mkt_desktop.library.db import Label, Photo, Tag
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
