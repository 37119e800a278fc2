"""Library calls the window's verbs run on the worker thread, each returning what the window must show at once
when it is done (so that marks and counts change in the same event-loop turn as the decision)."""

from mkt_desktop.library import Decision, LabelInfo, Library


def label_info(library: Library, text: str) -> LabelInfo | None:
    """A saved label's threshold and counts (a decision saves its label as the person's)."""
    key = text.casefold()
    return next((info for info in library.labels() if info.text.casefold() == key), None)


def decide(library: Library, photo_ids: list[int], text: str, status: str | None) -> tuple[Decision, LabelInfo | None]:
    """Accept / reject a label on photos; the decision and the label's new counts."""
    decision = library.decide(photo_ids, text, status)
    return decision, label_info(library, decision.label)


def undo(library: Library, decision: Decision) -> tuple[Decision, LabelInfo | None]:
    """Take a decision back; the decision and the label's counts after it."""
    library.undo(decision)
    return decision, label_info(library, decision.label)
