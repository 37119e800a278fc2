"""Photos, labels, scores and embeddings on disk; indexing and search. No Qt here.

What the window and the command line may use; the modules behind it are the library's own.
"""

from mkt_desktop.library.browse import PhotoRow, View, year_range
from mkt_desktop.library.catalogue import (
    AUTHORS_PAGE,
    OFFICIAL_TITLE,
    TRAINING_TITLE,
    ModelChoice,
    add_official,
    free_official_name,
    measure_and_remember,
    model_choices,
)
from mkt_desktop.library.db import DatabaseError
from mkt_desktop.library.decisions import Decision
from mkt_desktop.library.demo import DEMO_COUNT, DEMO_FOLDER_NAME, write_demo_folder
from mkt_desktop.library.errors import describe_error
from mkt_desktop.library.indexer import IndexReport, Progress
from mkt_desktop.library.labels import LabelError
from mkt_desktop.library.library import LabelInfo, Library, PhotoLabel, SearchHit
from mkt_desktop.library.model_source import ModelUnavailable, split_clip_spec

__all__ = ["AUTHORS_PAGE", "DEMO_COUNT", "DEMO_FOLDER_NAME", "DatabaseError", "Decision", "IndexReport", "LabelError",
           "LabelInfo", "Library", "ModelChoice", "ModelUnavailable", "OFFICIAL_TITLE", "PhotoLabel", "PhotoRow",
           "Progress", "SearchHit", "TRAINING_TITLE", "View", "add_official", "describe_error", "free_official_name",
           "measure_and_remember", "model_choices", "split_clip_spec", "write_demo_folder", "year_range"]
