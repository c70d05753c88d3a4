"""The conformance suite starts the real supervisor with the e2e fixtures."""

from tests.e2e.conftest import supervisor_factory  # noqa: F401  (a fixture, re-exported for this directory)
