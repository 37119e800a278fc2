"""safe_pickle: plain name lists load; a pickle that would run a command is refused, and the command never runs."""

import os
import pickle

import numpy as np
import pytest

from mkt_core.data.safe_pickle import UnsafePickleError, load_name_list, safe_load
from tests.data.helpers import write_pickle


class RunsACommand:
    """Unpickling this with plain pickle would call os.system(command)."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class CallsEval:
    def __reduce__(self):
        return (eval, ("1 + 1",))


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_plain_lists_and_the_release_dict_load(tmp_path, protocol):
    names = ["actor_0001_2124494179.jpg", "sky_0002_42.jpg"]
    write_pickle(tmp_path / "list.pkl", names, protocol)
    write_pickle(tmp_path / "dict.pkl", {"img_names": names}, protocol)
    write_pickle(tmp_path / "tuple.pkl", tuple(names), protocol)
    assert load_name_list(tmp_path / "list.pkl") == names
    assert load_name_list(tmp_path / "dict.pkl") == names
    assert load_name_list(tmp_path / "tuple.pkl") == names


def test_nested_plain_data_loads(tmp_path):
    data = {"a": [1, 2.5, True, None], "b": {"x", "y"}, "c": frozenset({1}), "d": b"raw", "e": (1, "z")}
    write_pickle(tmp_path / "plain.pkl", data, protocol=2)
    assert safe_load(tmp_path / "plain.pkl") == data


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_a_pickle_that_runs_a_command_is_refused_and_does_not_run(tmp_path, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "img_names.pkl"
    write_pickle(path, {"img_names": ["a.jpg", RunsACommand(f"touch {marker}")]}, protocol)
    with pytest.raises(UnsafePickleError) as info:
        load_name_list(path)
    assert str(path) in str(info.value)
    assert info.value.refused in ("posix.system", "os.system", "nt.system")
    assert info.value.refused in str(info.value)
    assert not marker.exists()


def test_builtins_outside_the_allow_list_are_refused(tmp_path):
    write_pickle(tmp_path / "eval.pkl", [CallsEval()])
    with pytest.raises(UnsafePickleError, match="builtins.eval"):
        safe_load(tmp_path / "eval.pkl")


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_numpy_arrays_only_when_allowed(tmp_path, protocol):
    mids = np.array(["/m/0abc", "/m/0xyz", "/m/01"])
    path = tmp_path / "unseen_labels.pkl"
    write_pickle(path, mids, protocol)
    with pytest.raises(UnsafePickleError, match="numpy"):
        load_name_list(path)
    assert load_name_list(path, allow_numpy=True) == ["/m/0abc", "/m/0xyz", "/m/01"]


def test_an_object_array_cannot_smuggle_a_command_in(tmp_path):
    marker = tmp_path / "pwned"
    evil = np.empty(2, dtype=object)
    evil[0], evil[1] = "/m/01", RunsACommand(f"touch {marker}")
    write_pickle(tmp_path / "evil.pkl", evil)
    with pytest.raises(UnsafePickleError, match="system"):
        load_name_list(tmp_path / "evil.pkl", allow_numpy=True)
    assert not marker.exists()


def test_wrong_shapes_and_garbage_are_clear_errors(tmp_path):
    write_pickle(tmp_path / "other_key.pkl", {"names": ["a"]})
    with pytest.raises(ValueError, match="img_names"):
        load_name_list(tmp_path / "other_key.pkl")
    write_pickle(tmp_path / "ints.pkl", [1, 2])
    with pytest.raises(ValueError, match="entry 0"):
        load_name_list(tmp_path / "ints.pkl")
    (tmp_path / "garbage.pkl").write_bytes(b"\x00\x01 definitely not a pickle")
    with pytest.raises(ValueError, match="not a readable pickle"):
        load_name_list(tmp_path / "garbage.pkl")
    assert pickle  # the module under test is the only unpickler used here


def test_bytes_helper_accepts_only_latin1(tmp_path):
    (tmp_path / "rot13.pkl").write_bytes(b"c_codecs\nencode\n(Vabc\nVrot13\ntR.")
    with pytest.raises(ValueError, match="latin1"):
        safe_load(tmp_path / "rot13.pkl")
    (tmp_path / "latin1.pkl").write_bytes(b"c_codecs\nencode\n(Vabc\nVlatin1\ntR.")
    assert safe_load(tmp_path / "latin1.pkl") == b"abc"
