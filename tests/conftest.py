"""Fixtures shared across test folders."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.oidc import AuthServer, auth_server


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    """A real authorization server (the npm oidc-provider, tests/fixtures/oidc_provider.mjs) on loopback, for the
    tests of one module; stopped after them."""
    server = auth_server(tmp_path_factory.mktemp("oidc"))
    yield server
    server.stop()
