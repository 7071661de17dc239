"""Specs use testinfra's ordinary `host` (the image under test) and `image` (as shipped)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="session")
def host(suitcase_host: Any) -> Any:
    """Booted over SSH where the image can boot here, else the mounted image."""
    return suitcase_host
