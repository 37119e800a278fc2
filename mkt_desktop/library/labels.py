"""Label text rules and automatic thresholds, shared by the CLI and the GUI."""

import unicodedata

import numpy as np

MAX_LABEL_CHARS = 120


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
    return text


def label_key(text: str) -> str:
    """Labels differing only in case are one label."""
    return normalise_label(text).casefold()


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
