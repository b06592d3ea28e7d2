"""Shared test setup: offline hubs, few threads, deterministic seeds."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch

torch.set_num_threads(2)


import pytest  # noqa: E402

from run_helpers import prepared_workspace, train_tiny_student  # noqa: E402


@pytest.fixture(scope="module")
def tiny_workspace(tmp_path_factory):
    """The tiny dataset, prepared, for one test module: ``(base, overrides)`` (run_helpers)."""
    base = tmp_path_factory.mktemp("workspace")
    return base, prepared_workspace(base)


@pytest.fixture(scope="session")
def tiny_student(tmp_path_factory):
    """One tiny `student` for the whole session (predict, stream and export read it, never change it):
    ``(base, best checkpoint)``; its workspace's videos are under ``base / "data"``."""
    base = tmp_path_factory.mktemp("student")
    return base, train_tiny_student(base)
