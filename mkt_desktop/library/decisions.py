"""Accept / reject decisions that can be undone: each records what the photos had before it.

    decision = decide(lib, [3, 4], "red star", "accepted")
    undo(lib, decision)   # photo 3 and 4 are back to what they were (no decision, or the earlier one)
"""

from dataclasses import dataclass

from sqlalchemy import select

from mkt_desktop.library.db import Label, Tag
from mkt_desktop.library.labels import label_key, normalise_label


@dataclass(frozen=True)
class Decision:
    label: str
    status: str | None  # "accepted", "rejected", or None (forgotten)
    before: dict[int, str | None]  # photo id -> its status for the label before this decision

    def describe(self) -> str:
        """'accept "red star" on 2 photos': what an Undo menu item undoes."""
        verb = {"accepted": "accept", "rejected": "reject"}.get(self.status or "", "forget")
        count = len(self.before)
        return f"{verb} \u201c{self.label}\u201d on {count} photo{'s' if count != 1 else ''}"


def decide(lib, photo_ids: list[int], label: str, status: str | None) -> Decision:
    """Set the label's status on the photos (the label is saved if new), remembering the statuses it replaces."""
    text = normalise_label(label)
    before = statuses(lib, photo_ids, text)
    lib.set_tags(photo_ids, text, status)
    return Decision(text, status, before)


def undo(lib, decision: Decision) -> None:
    """Put back each photo's status from before the decision (a label that learned from it unlearns it)."""
    for status in dict.fromkeys(decision.before.values()):
        lib.set_tags([p for p, s in decision.before.items() if s == status], decision.label, status)


def statuses(lib, photo_ids: list[int], label: str) -> dict[int, str | None]:
    """Each photo's decision about a label (None: none yet)."""
    with lib.Session() as session:
        found = dict(session.execute(
            select(Tag.photo_id, Tag.status).join(Label, Label.id == Tag.label_id)
            .where(Label.key == label_key(label), Tag.photo_id.in_(photo_ids))).all())
    return {photo_id: found.get(photo_id) for photo_id in photo_ids}
