from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def shared_path() -> Path:
    """``../shared`` beside the repository (override with SDFLOW_SHARED)."""
    return Path(os.environ.get("SDFLOW_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared() -> Path:
    path = shared_path()
    if not (path / "fixtures").is_dir():
        pytest.fail(f"shared data not found at {path}; check out ../shared beside the repo "
                    "or set SDFLOW_SHARED")
    return path


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield
