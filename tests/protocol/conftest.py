"""Fixtures for the protocol tests: deterministic identities."""

from __future__ import annotations

import pytest

from swarmrl.protocol import Identity


@pytest.fixture(scope="session")
def identity() -> Identity:
    return Identity.from_private_bytes(bytes(range(32)))


@pytest.fixture(scope="session")
def other_identity() -> Identity:
    return Identity.from_private_bytes(bytes(range(1, 33)))
