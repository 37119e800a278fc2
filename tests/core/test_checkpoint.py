import json
import os
import pickle

import pytest
import torch

from mkt_core.model.checkpoint import load_model, save_model
from mkt_core.model.mkt import create_model
from mkt_core.model.safe_load import UnsafeCheckpointError, safe_torch_load


def _train_a_little(model, stage):
    model.set_stage(stage)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-2)
    images = torch.randn(4, 3, 64, 64)
    targets = torch.tensor([[1, -1, -1], [-1, 1, -1], [-1, -1, 1], [1, 1, -1]])
    for _ in range(2):
        optimizer.zero_grad()
        model.training_loss(images, targets, ["dog", "cat", "car"]).total.backward()
        optimizer.step()


@pytest.mark.parametrize("preset", ["tiny", "tiny-release"])
def test_save_load_round_trip_is_bit_exact(tmp_path, preset):
    model = create_model(preset)
    _train_a_little(model, 1)
    _train_a_little(model, 2)
    save_model(model, tmp_path / "ckpt")
    loaded = load_model(tmp_path / "ckpt")
    original, restored = model.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    for key in original:
        assert torch.equal(original[key], restored[key]), key
    assert loaded.config.top_k == model.config.top_k and loaded.config.head == model.config.head
    model.eval()
    loaded.eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(images, ["dog", "red car"]), loaded(images, ["dog", "red car"]))


def test_checkpoint_config_errors_name_the_file(tmp_path):
    model = create_model("tiny")
    folder = save_model(model, tmp_path / "ckpt")
    config_file = folder / "config.json"
    meta = json.loads(config_file.read_text())
    meta["version"] = 99
    config_file.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="version 99") as error:
        load_model(folder)
    assert str(config_file) in str(error.value)
    config_file.write_text("{not json")
    with pytest.raises(ValueError, match="malformed JSON"):
        load_model(folder)
    config_file.unlink()
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_model(folder)


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_carries_code_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as handle:
        torch.save({"weight": torch.zeros(2), "payload": _RunsCode(marker)}, handle)
    with pytest.raises(UnsafeCheckpointError, match="refused") as error:
        safe_torch_load(path)
    assert str(path) in str(error.value)
    assert not marker.exists()
    # a raw pickle (not a torch zip file) is refused the same way
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(_RunsCode(marker)))
    with pytest.raises(UnsafeCheckpointError):
        safe_torch_load(raw)
    assert not marker.exists()


def test_plain_state_dict_files_load(tmp_path):
    path = tmp_path / "plain.pth"
    torch.save({"a": torch.arange(3)}, path)
    assert torch.equal(safe_torch_load(path)["a"], torch.arange(3))
    with pytest.raises(FileNotFoundError):
        safe_torch_load(tmp_path / "missing.pth")


def test_a_file_that_is_no_checkpoint_says_so_naming_it(tmp_path):
    path = tmp_path / "first_stage.pth"
    path.write_text("<html>a download page, not the file</html>")
    with pytest.raises(ValueError, match="not a PyTorch checkpoint") as error:
        safe_torch_load(path)
    assert str(path) in str(error.value)
