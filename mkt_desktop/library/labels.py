"""Label text rules and automatic thresholds, shared by the CLI and the GUI.

A label is checked once, when it is typed: `normalise_label` here (text every export can hold), and
`Library.check_label` with the model's tokenizer (text the model can read). What passes is never
refused later by the indexer or an export.
"""

import math
import re
import unicodedata

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


def automatic_threshold(scores: np.ndarray) -> float | None:
    """A label's default threshold when a person has not set one: two spreads above its mean score
    over the library, i.e. the photos that stand out for this label. None for an empty library."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        return None
    return threshold_from_moments(scores.size, float(scores.mean()), float((scores * scores).mean()))


def threshold_from_moments(count: int, mean: float, mean_of_squares: float) -> float | None:
    """The same rule from a count, a mean and a mean of squares (what SQL can sum up)."""
    if not count:
        return None
    return float(mean + 2.0 * np.sqrt(max(mean_of_squares - mean * mean, 0.0)))
