"""Shared test fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_path() -> Path:
    """``../shared/data`` beside the checkout, or ``$SEMANTICFACE_SHARED_DATA``."""
    return Path(os.environ.get("SEMANTICFACE_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder (Live Link Face CSVs, ICT-FaceKit head, MediaPipe model); skips when absent."""
    path = shared_data_path()
    if not path.is_dir():
        pytest.skip(f"real data not found at {path} (set SEMANTICFACE_SHARED_DATA to ../shared/data)")
    return path
