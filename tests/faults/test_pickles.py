"""9. No pickled file the app or the trainer reads can run code (what the probe's 42 attempts found; kept)."""

import os

import numpy as np
import pytest
import torch

from mkt_core.data.safe_pickle import UnsafePickleError, load_name_list
from mkt_core.model.safe_load import UnsafeCheckpointError, safe_torch_load
from mkt_desktop.library.library import Library
from tests.faults.helpers import photos


class RunsACommand:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_a_checkpoint_that_would_run_a_command_is_refused_and_it_does_not_run(tmp_path):
    marker = tmp_path / "ran"
    torch.save({"model": RunsACommand(f"touch {marker}")}, tmp_path / "state.pt")
    with pytest.raises(UnsafeCheckpointError):
        safe_torch_load(tmp_path / "state.pt")
    assert not marker.exists()


def test_a_data_set_name_list_that_would_run_a_command_is_refused(tmp_path):
    import pickle

    marker = tmp_path / "ran"
    (tmp_path / "names.pkl").write_bytes(pickle.dumps([RunsACommand(f"touch {marker}")]))
    with pytest.raises(UnsafePickleError):
        load_name_list(tmp_path / "names.pkl")
    assert not marker.exists()


def test_a_store_codec_holding_a_pickle_is_refused_and_it_does_not_run(tmp_path, tiny_bundle):
    photos(tmp_path / "photos", 2)
    db = tmp_path / "lib.sqlite"
    Library(db_path=db, model=tiny_bundle).index([tmp_path / "photos"])
    marker = tmp_path / "ran"
    folder = Library(db_path=db, model=tiny_bundle).store.folder
    evil = np.empty(1, dtype=object)
    evil[0] = RunsACommand(f"touch {marker}")
    np.savez(folder / "codec.npz", mean=evil, components=evil, scales=evil)
    with pytest.raises(ValueError, match="allow_pickle"):
        Library(db_path=db, model=tiny_bundle).search("red kite")
    assert not marker.exists()
