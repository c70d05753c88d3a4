"""The supervisor's children import the installed package and its dependencies, never a module that happens to lie
in the directory `mcp-supervisor start` was run from.

`python -m` puts the working directory first on `sys.path`, so a `zmq.py` there (left by a backend allowed to
write to that directory, or by anyone else who can) would run inside the gateway and every worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import stdio_fixture_entry, write_config

pytestmark = pytest.mark.e2e

# Imported by the gateway, the zygote and every worker. Each planted module notes that it ran, then hands over to
# the real one, so that the old code runs on and the test can say what happened rather than time out.
PLANTED = ("zmq", "msgspec")
PLANT = """\
import importlib, os, sys
with open({marker!r}, "a") as noted:
    noted.write(f"{{__name__}} in pid {{os.getpid()}}\\n")
here = os.path.dirname(os.path.abspath(__file__))
saved = list(sys.path)
sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or ".") != here]
del sys.modules[__name__]
try:
    sys.modules[__name__] = importlib.import_module(__name__)
finally:
    sys.path[:] = saved
"""


def test_no_module_is_imported_from_the_working_directory(tmp_path: Path, supervisor_factory: Any) -> None:
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    marker = tmp_path / "imported-from-cwd"
    for name in PLANTED:
        (workdir / f"{name}.py").write_text(PLANT.format(marker=str(marker)))
    config_dir = tmp_path / "config"
    write_config(config_dir, {"local": stdio_fixture_entry("local")})
    sup = supervisor_factory(config_dir, cwd=workdir)
    sup.wait_linked({"local"}, timeout=60)
    assert not marker.exists(), f"a child imported from the working directory:\n{marker.read_text()}"
