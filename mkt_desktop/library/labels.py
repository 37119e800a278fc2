"""Label text rules and automatic thresholds, shared by the CLI and the GUI.

A label is checked once, when it is typed: `normalise_label` here (text every export can hold), and
`Library.check_label` with the model's tokenizer (text the model can read). What passes is never
refused later by the indexer or an export.
"""

import math
import re
import unicodedata
from dataclasses import dataclass

import numpy as np

MAX_LABEL_CHARS = 120
# Characters XML 1.0 cannot carry (the same rule as xmp.py): a label holding one could never be written to
# a sidecar. Control characters are refused separately, with their own message.
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class LabelError(ValueError):
    """A label text that cannot be used, with the reason in plain words."""


def normalise_label(text: str) -> str:
    """NFC, whitespace collapsed to single spaces, trimmed; any script is welcome."""
    if not isinstance(text, str):
        raise LabelError("a label must be text")
    text = " ".join(unicodedata.normalize("NFC", text).split())
    if not text:
        raise LabelError("a label cannot be empty")
    if len(text) > MAX_LABEL_CHARS:
        raise LabelError(f"a label can have at most {MAX_LABEL_CHARS} characters; this one has {len(text)}")
    if any(unicodedata.category(ch) == "Cc" for ch in text):
        raise LabelError("a label cannot contain control characters")
    bad = NOT_XML.search(text)
    if bad:
        raise LabelError(f"a label cannot contain U+{ord(bad.group()):04X}: XMP sidecars cannot store it")
    return text


def check_threshold(threshold: float | None) -> float | None:
    """A threshold is a finite number or None (automatic); NaN would be stored as None, infinity is no threshold."""
    if threshold is None:
        return None
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not math.isfinite(threshold):
        raise LabelError(f"a threshold must be a finite number, not {threshold!r}")
    return float(threshold)


def label_key(text: str) -> str:
    """Labels differing only in case are one label. Looking one up checks nothing, so that a label an older
    version let in can still be found, renamed or removed."""
    return " ".join(unicodedata.normalize("NFC", str(text)).split()).casefold()


AUTO_CONFIDENCE = 0.5  # the automatic threshold: where the model's calibration says "more likely true than not"
NULL_QUANTILE = 0.999  # ...and never below this quantile of random texts' scores over the library


@dataclass(frozen=True)
class NullScores:
    """What "matching nothing" looks like on one library: random texts' scores over its photos."""

    quantile: float  # NULL_QUANTILE of every (random text, photo) score
    best: float  # the highest of them
    spread: float  # their standard deviation


def null_scores(columns: list[np.ndarray | None]) -> NullScores | None:
    """From each random text's scores over the library's photos; None for an empty library."""
    usable = [c for c in columns if c is not None]  # (a text the model could not score: never one of these)
    pooled = np.concatenate([np.asarray(c, dtype=np.float64) for c in usable]) if usable else np.zeros(0)
    if not pooled.size:
        return None
    return NullScores(float(np.quantile(pooled, NULL_QUANTILE)), float(pooled.max()), float(pooled.std()))


def automatic_threshold(null: NullScores | None, calibration) -> float | None:
    """A label's threshold when a person has not set one: the larger of the score its model's
    calibration puts at AUTO_CONFIDENCE and the NULL_QUANTILE of random texts' scores here.

    Neither depends on the label's own scores over the library, so a label that is absent, or that
    the model does not know, is not forced to tag its best few photos, and one photo is judged as
    it would be among a million. None for an empty library.
    """
    if null is None:
        return None
    if calibration is None:
        return null.quantile
    return max(calibration.score_at(AUTO_CONFIDENCE), null.quantile)


def fallback_calibration(null: NullScores):
    """For a model with no calibration: 50 % at the random texts' NULL_QUANTILE on this library,
    about 88 % one spread of theirs above. It says how far a score stands above random text, not a
    measured probability (see docs/thresholds.md)."""
    from mkt_core.runtime.calibration import Calibration

    return Calibration.logistic(null.quantile, 2.0 / max(null.spread, 1e-6), "random texts on this library")
