"""Data sets for MKT: photo decoding, transforms, and loaders for NUS-WIDE, Open Images and your own photos.

Every loader returns a `MultiLabelSplit`: a `LabelledImages` dataset whose items are
(image, targets, index, ok) with targets 1 / -1 / 0 (positive / negative / unannotated), the label
names, and the columns of the unseen labels. `collate_skipping_bad` drops unreadable images from a
batch and reports their indices.
"""

from mkt_core.data.generic import load_generic
from mkt_core.data.images import LabelledImages, collate_skipping_bad
from mkt_core.data.nus_wide import load_nus_wide
from mkt_core.data.open_images import load_open_images
from mkt_core.data.safe_pickle import UnsafePickleError, load_name_list
from mkt_core.data.splits import MultiLabelSplit
from mkt_core.data.transforms import eval_transform, train_transform
from mkt_core.runtime.images import ImageLoadError, load_rgb

__all__ = [
    "ImageLoadError",
    "LabelledImages",
    "MultiLabelSplit",
    "UnsafePickleError",
    "collate_skipping_bad",
    "eval_transform",
    "load_generic",
    "load_name_list",
    "load_nus_wide",
    "load_open_images",
    "load_rgb",
    "train_transform",
]
