"""How the window shows a score: the calibrated confidence (0-100 %) when the model has a calibration, else the
raw Eq. 3 score (a person is told why, in NO_CALIBRATION). One place, so that the grid, the photo view and the
threshold panel show one number for one photo and one label.

Thresholds are compared in the same shown units: the confidence is strictly increasing in the score, so
"confidence at or above the threshold's" is "score at or above the threshold".
"""

import os

NO_CALIBRATION = ("This model carries no calibration (no held-out photos it was measured on), so raw scores "
                  "are shown: higher is a better match, but the number is not a probability.")


def shown(score: float | None, confidence: float | None, calibrated: bool) -> float | None:
    """The number the window shows and compares: the confidence in percent, else the raw score."""
    if calibrated and confidence is not None:
        return 100.0 * confidence
    return score


def shown_text(value: float | None, calibrated: bool) -> str:
    """'87 %' (calibrated) or '3.412' (raw); '—' for no score."""
    if value is None:
        return "—"
    return f"{value:.0f} %" if calibrated else f"{value:.3f}"


def tags(value: float | None, threshold: float | None, status: str | None) -> bool:
    """Whether a label tags a photo: accepted, or at or above the threshold and not rejected."""
    if status == "accepted":
        return True
    return status != "rejected" and value is not None and threshold is not None and value >= threshold


def readable(path: str) -> str:
    """A path as a person reads it: bytes that are not UTF-8 become U+FFFD, for display only (the library keeps
    the path as the file system has it, undecodable bytes as surrogates)."""
    return os.fsencode(path).decode("utf-8", "replace")
