"""Fixtures shared by the integration tests."""

from __future__ import annotations

import pytest

from tests.conftest import Actor


@pytest.fixture
async def published(install, alice: Actor):  # type: ignore[no-untyped-def]
    p, _ = await install(
        alice,
        endpoints=[
            {"method": "POST", "path": p, "handler": "h"}
            for p in ("/sync", "/hang", "/slow", "/huge")
        ],
    )
    return p
