"""Learning from a person's decisions: a label's queries moved towards the photos they accepted and
away from those they rejected (Rocchio), from the photos' stored embeddings, with no gradient.

A label scores photos with one query in both streams of Eq. 3 (global dot + top-k patch dots). Once
a person has decided on some photos, each stream's query becomes

    q' = unit(z + positive * mean(unit(accepted)) - negative * mean(unit(rejected)))

where a photo stands for itself in the global stream by its global embedding and in the patch stream
by the mean of its top-k patches under the label's text embedding z (the patches that gave its
score). The weights per stream were chosen on the proving ground (benchmarks/feedback_gain.py,
docs/proving-ground.md). Only the label's own decisions count: no other label changes its scores.

The adapted label is scored through its own score column (scores.py), named after the label's text
and the decisions it learned from, so every view shows the same adapted score and a new decision
(or an undo) makes a new column. "Forget my corrections" (`forget`) sets the label's
`learned_since`: decisions made before it stay (they are the person's tags), but no longer teach.
"""

import hashlib
from dataclasses import dataclass

import numpy as np
from sqlalchemy import or_, select

from mkt_desktop.library.db import IN_CHUNK, Embedding, Label, Photo, Tag, utcnow
from mkt_desktop.library.labels import label_key

# (positive, negative) weight per stream, measured (docs/proving-ground.md "Learning from decisions"):
# moving the global query too made every kind of label worse on the proving ground, so it stays the text's
GLOBAL_WEIGHTS = (0.0, 0.0)
LOCAL_WEIGHTS = (0.75, 0.25)
LEARNER = "rocchio-2"  # part of each adapted column's name: a changed learner never reads stale scores


@dataclass(frozen=True)
class Learned:
    """What a label learns from: the stored embedding ids of the photos accepted and rejected."""

    accepted: tuple[int, ...]
    rejected: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.accepted) + len(self.rejected)

    def column_name(self, text: str) -> str:
        """The adapted label's score column: its text plus a digest of what it learned from."""
        digest = hashlib.blake2b(f"{LEARNER}|{self.accepted}|{self.rejected}".encode(), digest_size=8).hexdigest()
        return f"{text}\x00learned:{digest}"


def learned(lib, texts: list[str]) -> dict[str, Learned]:
    """Each of the saved labels `texts` that has decisions to learn from (made since `learned_since`)."""
    if not texts:
        return {}
    keys = {label_key(t): t for t in texts}
    with lib.Session() as session:
        # the decisions first, then their photos by id: one query joining photos by status would make
        # SQLite walk every photo of the library (0.5 s at 100,000) to find a handful of decisions
        decisions = session.execute(
            select(Label.key, Tag.status, Tag.photo_id).join(Tag, Tag.label_id == Label.id)
            .where(Label.key.in_(list(keys)), or_(Label.learned_since.is_(None), Tag.updated > Label.learned_since))
        ).all()
        photo_ids = sorted({photo_id for _, _, photo_id in decisions})
        embedding_of: dict[int, int] = {}
        for start in range(0, len(photo_ids), IN_CHUNK):
            for photo_id, embedding_id in session.execute(
                    select(Photo.id, Embedding.id)
                    .join(Embedding, (Embedding.content_hash == Photo.content_hash)
                          & (Embedding.model_id == lib.model_id))
                    .where(Photo.id.in_(photo_ids[start:start + IN_CHUNK]), Photo.status == "ok")):
                embedding_of[photo_id] = embedding_id
    stored = set(lib.store.ids.tolist()) if embedding_of else set()
    found: dict[str, tuple[set, set]] = {}
    for key, status, photo_id in decisions:
        embedding_id = embedding_of.get(photo_id)
        if embedding_id is not None and embedding_id in stored:
            found.setdefault(keys[key], (set(), set()))[status == "rejected"].add(int(embedding_id))
    return {text: Learned(tuple(sorted(yes)), tuple(sorted(no))) for text, (yes, no) in found.items()}


def queries(store, z: np.ndarray, what: Learned) -> np.ndarray:
    """The adapted (global, local) queries `[2, D]` of a label with text embedding `z` `[D]`."""
    z = np.asarray(z, dtype=np.float32)
    rows = store.rows_of([*what.accepted, *what.rejected])
    accepted = np.arange(len(rows)) < len(what.accepted)
    photos = store.global_embeddings_of_rows(rows)
    query = [rocchio(z, photos[accepted], photos[~accepted], GLOBAL_WEIGHTS)]
    if store.num_patches:
        patches = top_patches(store.local_embeddings_of_rows(rows), z, store.top_k)
        query.append(rocchio(z, patches[accepted], patches[~accepted], LOCAL_WEIGHTS))
    else:  # a global-only model (CLIP): the local query is never used
        query.append(query[0])
    return np.stack(query).astype(np.float32)


def rocchio(z: np.ndarray, accepted: np.ndarray, rejected: np.ndarray, weights: tuple[float, float]) -> np.ndarray:
    """unit(z + positive * mean of the accepted unit vectors - negative * mean of the rejected ones)."""
    query = np.asarray(z, dtype=np.float64).copy()
    for vectors, weight in ((accepted, weights[0]), (rejected, -weights[1])):
        if len(vectors) and weight:
            query += weight * _unit(vectors).mean(axis=0)
    return _unit(query)


def top_patches(local: np.ndarray, z: np.ndarray, k: int) -> np.ndarray:
    """The mean `[n, D]` of each photo's top-k patches `[n, N, D]` under `z`: what its patch score came from."""
    top = np.argsort(-(local @ z), axis=1, kind="stable")[:, :k]
    return np.take_along_axis(local, top[..., None], axis=1).mean(axis=1)


def forget(lib, text: str) -> None:
    """Forget what a label learned: its decisions stay, its scores are the text's own again."""
    with lib.Session() as session:
        lib._label(session, text).learned_since = utcnow()
        session.commit()


def _unit(v: np.ndarray) -> np.ndarray:
    """Each vector (the last axis) scaled to length 1."""
    v = np.asarray(v, dtype=np.float64)
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)
