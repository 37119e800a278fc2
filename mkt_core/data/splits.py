"""The one shape every data set loader returns, so training and evaluation need not know the source."""

from __future__ import annotations

from dataclasses import dataclass, field

from mkt_core.data.images import LabelledImages


@dataclass
class MultiLabelSplit:
    """A split of a data set: its images and targets, the label names, and which labels are unseen.

    `labels` are the target columns in order (seen labels first, then unseen ones); `unseen` holds
    the column indices of the unseen labels (empty for a training split, which has no unseen labels).
    """

    dataset: LabelledImages
    labels: list[str]
    unseen: list[int] = field(default_factory=list)
    name: str = ""

    def __post_init__(self) -> None:
        if list(self.dataset.labels) != list(self.labels):
            raise ValueError(f"{self.name}: the dataset's labels differ from the split's labels")
        bad = [i for i in self.unseen if not 0 <= i < len(self.labels)]
        if bad:
            raise ValueError(f"{self.name}: unseen label indices {bad} are outside 0..{len(self.labels) - 1}")

    @property
    def seen(self) -> list[int]:
        """Column indices of the seen labels."""
        unseen = set(self.unseen)
        return [i for i in range(len(self.labels)) if i not in unseen]
