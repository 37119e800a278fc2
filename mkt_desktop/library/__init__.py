"""Photos, labels, scores and embeddings on disk; indexing and search. No Qt here.

What the window and the command line may use; the modules behind it are the library's own.
"""

from mkt_desktop.library.indexer import IndexReport, Progress
from mkt_desktop.library.labels import LabelError
from mkt_desktop.library.library import LabelInfo, Library, PhotoLabel, SearchHit
from mkt_desktop.library.model_source import ModelUnavailable

__all__ = ["IndexReport", "LabelError", "LabelInfo", "Library", "ModelUnavailable", "PhotoLabel", "Progress",
           "SearchHit"]
