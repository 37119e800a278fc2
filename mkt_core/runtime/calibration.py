"""Calibrated confidence: a model's raw Eq. 3 score turned into P(the label is true of the photo).

A raw score (3 to 12 on the demo model, 0.2 to 0.35 on CLIP) tells a person nothing. A bundle may
carry a calibration, fitted where the model was made, on held-out photos whose labels are known:
the observed share of true (photo, label) pairs at each score, made monotone (isotonic regression)
and kept as knots in the manifest's optional "calibration" field (outside the fingerprint: scores
and embeddings do not change with it). Between knots the confidence is interpolated; beyond them
it follows a logistic of the same slope as a logistic fit, so it is strictly increasing everywhere
and `score_at` inverts it (a threshold set as 80 % is one raw score).

    "calibration": {"method": "isotonic", "scores": [...], "confidences": [...], "slope": 1.25,
                    "fitted_on": "1200 photos of the synthetic world", "pairs": 96000, "positives": 2300}

`calibrate_bundle` fits one from a folder of photos with a labels.csv (`path,labels`, labels joined
with "|"), scoring them exactly as the app does (engine, embedding store, Eq. 3 over its codes).

NULL_TEXTS are strings no model can know (random letters): scored over a library like any label,
they show what "matching nothing" looks like there (the app's automatic threshold stays above them).
"""

import csv
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MIN_BLOCK = 40  # pairs per knot at least: a knot's confidence is a share of this many pairs


def _null_texts(count: int = 32, seed: int = 1729) -> tuple[str, ...]:
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    texts = []
    for i in range(count):
        words = [("".join(rng.choice(letters, int(rng.integers(3, 9))))) for _ in range(1 + i % 2)]
        texts.append(" ".join(words))
    return tuple(texts)


NULL_TEXTS = _null_texts()


class CalibrationError(ValueError):
    """A calibration that cannot be used; the message says why."""


def _expit(x):
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(x, dtype=np.float64), -700.0, 700.0)))


def _logit(p: float) -> float:
    return float(np.log(p / (1.0 - p)))


@dataclass
class Calibration:
    """score -> confidence in (0, 1), strictly increasing: knots (scores, confidences) and tail slope."""

    scores: np.ndarray  # float64 [K], increasing
    confidences: np.ndarray  # float64 [K], increasing, inside (0, 1)
    slope: float  # logistic slope beyond the knots, > 0
    fitted_on: str = ""

    def __post_init__(self):
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        self.confidences = np.asarray(self.confidences, dtype=np.float64).reshape(-1)
        if len(self.scores) < 1 or len(self.scores) != len(self.confidences):
            raise CalibrationError("needs as many confidences as scores, at least one")
        if not (np.isfinite(self.scores).all() and np.isfinite(self.confidences).all()):
            raise CalibrationError("scores and confidences must be finite numbers")
        if (np.diff(self.scores) <= 0).any() or (np.diff(self.confidences) <= 0).any():
            raise CalibrationError("scores and confidences must both increase")
        if not ((self.confidences > 0) & (self.confidences < 1)).all():
            raise CalibrationError("confidences must lie strictly between 0 and 1")
        if not (np.isfinite(self.slope) and self.slope > 0):
            raise CalibrationError("slope must be a positive number")

    @classmethod
    def logistic(cls, centre: float, slope: float, fitted_on: str = "") -> "Calibration":
        """50 % at `centre`, a logistic of `slope` either side (one knot)."""
        return cls(np.array([centre]), np.array([0.5]), slope, fitted_on)

    def confidence(self, scores) -> np.ndarray:
        s = np.asarray(scores, dtype=np.float64)
        out = np.interp(s, self.scores, self.confidences)
        low, high = s < self.scores[0], s > self.scores[-1]
        out = np.where(low, _expit(_logit(self.confidences[0]) + self.slope * (s - self.scores[0])), out)
        out = np.where(high, _expit(_logit(self.confidences[-1]) + self.slope * (s - self.scores[-1])), out)
        return out

    def score_at(self, confidence: float) -> float:
        """The raw score whose confidence is `confidence` (0 < confidence < 1)."""
        c = float(confidence)
        if not 0.0 < c < 1.0:
            raise CalibrationError(f"a confidence lies between 0 and 1 (exclusive), not {c}")
        if c < self.confidences[0]:
            return float(self.scores[0] + (_logit(c) - _logit(self.confidences[0])) / self.slope)
        if c > self.confidences[-1]:
            return float(self.scores[-1] + (_logit(c) - _logit(self.confidences[-1])) / self.slope)
        return float(np.interp(c, self.confidences, self.scores))

    def to_dict(self) -> dict:
        return {"method": "isotonic", "scores": [round(float(x), 6) for x in self.scores],
                "confidences": [round(float(x), 6) for x in self.confidences], "slope": round(self.slope, 6),
                "fitted_on": self.fitted_on}

    @classmethod
    def from_dict(cls, data) -> "Calibration":
        if not isinstance(data, dict) or data.get("method") != "isotonic":
            raise CalibrationError("expected an object with method 'isotonic'")
        try:
            return cls(np.asarray(data["scores"], dtype=np.float64), np.asarray(data["confidences"], dtype=np.float64),
                       float(data["slope"]), str(data.get("fitted_on", "")))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, CalibrationError):
                raise
            raise CalibrationError(f"malformed ({exc!r})") from None


# -- fitting --------------------------------------------------------------------------------------


def _pool_adjacent(values: np.ndarray, weights: np.ndarray) -> list[list[int]]:
    """Isotonic regression by pooling adjacent violators: [first, last] index of each block."""
    blocks: list[list] = []  # [first, last, weighted sum, weight]
    for i, (v, w) in enumerate(zip(values, weights, strict=True)):
        blocks.append([i, i, v * w, w])
        while len(blocks) > 1 and blocks[-2][2] / blocks[-2][3] >= blocks[-1][2] / blocks[-1][3]:
            last = blocks.pop()
            blocks[-1][1], blocks[-1][2], blocks[-1][3] = last[1], blocks[-1][2] + last[2], blocks[-1][3] + last[3]
    return [[b[0], b[1]] for b in blocks]


def _logistic_slope(scores: np.ndarray, truth: np.ndarray) -> float:
    """The slope of a logistic fit P(true) = expit(a * score + b) (Newton steps)."""
    x = np.stack([scores, np.ones_like(scores)], axis=1)
    w = np.zeros(2)
    for _ in range(50):
        p = _expit(x @ w)
        hessian = (x * (p * (1 - p))[:, None]).T @ x + 1e-9 * np.eye(2)
        step = np.linalg.solve(hessian, x.T @ (p - truth))
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    return float(max(w[0], 1e-6))


def fit_calibration(scores, truth, fitted_on: str = "", min_block: int = MIN_BLOCK) -> Calibration:
    """Isotonic fit of truth (bool) on score over every (photo, label) pair given."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(truth, dtype=bool).ravel().astype(np.float64)
    if len(s) != len(y) or not len(s):
        raise CalibrationError("needs as many truths as scores, at least one")
    if y.all() or not y.any():
        raise CalibrationError("needs both true and false pairs to fit a calibration")
    order = np.argsort(s, kind="stable")
    s, y = s[order], y[order]
    blocks = _pool_adjacent(y, np.ones_like(y))
    merged: list[list[int]] = []  # blocks of at least min_block pairs (the last may join the one before)
    for first, last in blocks:
        if merged and merged[-1][1] - merged[-1][0] + 1 < min_block:
            merged[-1][1] = last
        else:
            merged.append([first, last])
    if len(merged) > 1 and merged[-1][1] - merged[-1][0] + 1 < min_block:
        merged[-2][1] = merged.pop()[1]
    centres = np.array([s[a:b + 1].mean() for a, b in merged])
    counts = np.array([b - a + 1 for a, b in merged], dtype=np.float64)
    shares = np.array([(y[a:b + 1].sum() + 0.5) / (b - a + 2) for a, b in merged])  # never exactly 0 or 1
    knots_s: list[float] = []
    knots_c: list[float] = []
    for a, b in _pool_adjacent(shares, counts):  # smoothing can undo monotony: pool once more
        weight = counts[a:b + 1]
        centre = float((centres[a:b + 1] * weight).sum() / weight.sum())
        share = float((shares[a:b + 1] * weight).sum() / weight.sum())
        if knots_s and (share <= knots_c[-1] or centre <= knots_s[-1]):
            continue
        knots_s.append(centre)
        knots_c.append(share)
    return Calibration(np.array(knots_s), np.array(knots_c), _logistic_slope(s, y), fitted_on)


def reliability(confidence, truth, bins: int = 10) -> list[dict]:
    """Mean confidence against the observed share of true pairs, per confidence bin (for reports)."""
    c = np.asarray(confidence, dtype=np.float64).ravel()
    y = np.asarray(truth, dtype=bool).ravel()
    index = np.minimum((c * bins).astype(int), bins - 1)
    return [{"confidence": round(float(c[index == b].mean()), 3), "observed": round(float(y[index == b].mean()), 3),
             "pairs": int((index == b).sum())} for b in range(bins) if (index == b).any()]


# -- calibrating a bundle -------------------------------------------------------------------------


def read_labels_csv(path: str | Path) -> dict[Path, set[str]]:
    """{photo path: its labels} from a `path,labels` CSV (paths relative to the CSV's folder)."""
    path = Path(path)
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "path" not in rows[0] or "labels" not in rows[0]:
        raise CalibrationError(f"{path}: needs the columns path and labels")
    return {path.parent / row["path"]: {x.strip() for x in (row["labels"] or "").split("|") if x.strip()}
            for row in rows}


def photo_scores(bundle, photos: list[Path], labels: list[str], batch_size: int = 32) -> np.ndarray:
    """Eq. 3 scores `[photos, labels]` as the app computes them: engine, embedding store, its codes."""
    from mkt_core.runtime.engine import Engine
    from mkt_core.runtime.image_pipeline import embed_files
    from mkt_core.runtime.store import EmbeddingStore

    engine = Engine(bundle)
    results = list(embed_files(photos, engine, batch_size=batch_size))
    bad = [r for r in results if r.error]
    if bad:
        raise CalibrationError(f"{bad[0].path}: {bad[0].error}")
    with tempfile.TemporaryDirectory() as folder:
        store = EmbeddingStore.for_bundle(Path(folder) / "store", engine.bundle)
        local = None if results[0].local_emb is None else np.stack([np.asarray(r.local_emb) for r in results])
        store.append(np.arange(len(results)), np.stack([np.asarray(r.global_emb) for r in results]), local)
        return store.score_labels(engine.encode_labels(labels))


def calibrate_bundle(bundle_path: str | Path, labels_csv: str | Path, description: str = "",
                     vocabulary: list[str] | None = None) -> Calibration:
    """Fit a calibration on labelled photos and write it into the bundle's manifest (atomically).

    Every label of `vocabulary` (default: the bundle's vocabulary.txt and every label in the CSV)
    is scored on every photo; a pair is true when the CSV lists the label for the photo.
    """
    from mkt_core.runtime.bundle import MANIFEST_FILE, VOCABULARY_FILE, load_bundle

    bundle = load_bundle(bundle_path)
    truth = read_labels_csv(labels_csv)
    if vocabulary is None:
        vocabulary = []
        if (bundle.path / VOCABULARY_FILE).is_file():
            vocabulary = [line.strip() for line in (bundle.path / VOCABULARY_FILE).read_text("utf-8").splitlines()
                          if line.strip() and not line.startswith("#")]
        vocabulary = list(dict.fromkeys(vocabulary + sorted({x for labels in truth.values() for x in labels})))
    photos = sorted(truth)
    scores = photo_scores(bundle, photos, vocabulary)
    targets = np.array([[label in truth[p] for label in vocabulary] for p in photos])
    calibration = fit_calibration(scores, targets, description or f"{len(photos)} photos of {Path(labels_csv)}")
    manifest = dict(bundle.manifest)
    manifest["calibration"] = {**calibration.to_dict(), "pairs": int(targets.size),
                               "positives": int(targets.sum())}
    path = bundle.path / MANIFEST_FILE
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    os.replace(tmp, path)
    return calibration
