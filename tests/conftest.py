"""Tests never touch the network and never open a real window."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def tiny_model():
    from mkt_core.model.mkt import create_model

    return create_model("tiny")


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> str:
    """A tiny MKT model with random weights exported as a bundle, for the library and the window."""
    from mkt_core.model.export import export_bundle
    from mkt_core.model.mkt import create_model

    torch.manual_seed(0)
    return str(export_bundle(create_model("tiny"), tmp_path_factory.mktemp("bundle") / "tiny"))
