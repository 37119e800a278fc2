"""Accept / reject decisions that can be undone: each records what the photos had before it.

    decision = decide(lib, [3, 4], "red star", "accepted")
    undo(lib, decision)   # photo 3 and 4 are back to what they were (no decision, or the earlier one)
"""

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from mkt_desktop.library.db import Label, Tag
from mkt_desktop.library.labels import label_key, normalise_label


@dataclass(frozen=True)
class Decision:
    label: str
    status: str | None  # "accepted", "rejected", or None (forgotten)
    before: dict[int, str | None]  # photo id -> its status for the label before this decision
    # photo id -> when that status was set: an undo puts it back as it was, so that a decision from
    # before "forget my corrections" (feedback.py) does not teach the label again
    updated: dict[int, datetime] = field(default_factory=dict, compare=False)

    def describe(self) -> str:
        """'accept "red star" on 2 photos': what an Undo menu item undoes."""
        verb = {"accepted": "accept", "rejected": "reject"}.get(self.status or "", "forget")
        count = len(self.before)
        return f"{verb} \u201c{self.label}\u201d on {count} photo{'s' if count != 1 else ''}"


def decide(lib, photo_ids: list[int], label: str, status: str | None) -> Decision:
    """Set the label's status on the photos (the label is saved if new), remembering the statuses it replaces."""
    text = normalise_label(label)
    found = _tags(lib, photo_ids, text)
    lib.set_tags(photo_ids, text, status)
    return Decision(text, status, {p: found[p][0] if p in found else None for p in photo_ids},
                    {p: found[p][1] for p in photo_ids if p in found})


def undo(lib, decision: Decision) -> None:
    """Put back each photo's status from before the decision, with the time it was set."""
    lib.put_tags(decision.label, {p: (status, decision.updated.get(p)) for p, status in decision.before.items()})


def statuses(lib, photo_ids: list[int], label: str) -> dict[int, str | None]:
    """Each photo's decision about a label (None: none yet)."""
    found = _tags(lib, photo_ids, label)
    return {photo_id: found[photo_id][0] if photo_id in found else None for photo_id in photo_ids}


def _tags(lib, photo_ids: list[int], label: str) -> dict:
    """{photo id: (status, updated)} of the photos that have a decision about the label."""
    with lib.Session() as session:
        rows = session.execute(
            select(Tag.photo_id, Tag.status, Tag.updated).join(Label, Label.id == Tag.label_id)
            .where(Label.key == label_key(label), Tag.photo_id.in_(photo_ids))).all()
    return {photo_id: (status, updated) for photo_id, status, updated in rows}


def label_statuses(lib, label: str) -> dict[int, str]:
    """Every photo a person decided about for this label, and the decision (empty for a label not saved)."""
    with lib.Session() as session:
        return dict(session.execute(
            select(Tag.photo_id, Tag.status).join(Label, Label.id == Tag.label_id)
            .where(Label.key == label_key(label))).all())
