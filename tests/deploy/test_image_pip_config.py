"""scripts/image_pip_config.py: the machine's pip configuration as one pip.conf for a container build, and the
local paths the build must see (scripts/image.sh mounts them read-only at the same place)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("image_pip_config", ROOT / "scripts" / "image_pip_config.py")
assert spec and spec.loader
image_pip_config = importlib.util.module_from_spec(spec)
spec.loader.exec_module(image_pip_config)


def test_pip_precedence_environment_then_section_then_global():
    listing = "\n".join(
        [
            "global.index-url='https://global.example/simple'",
            "install.index-url='https://install.example/simple'",
            ":env:.timeout='60'",
            "global.timeout='10'",
            "global.find-links='/wheels'",
            ":env:.find-links='/env-wheels'",
        ]
    )
    assert image_pip_config.merged(listing) == {
        "index-url": "https://install.example/simple",
        "timeout": "60",
        "find-links": "/env-wheels",
    }


def test_local_paths_an_index_brings_its_parent_and_remote_ones_none(tmp_path):
    (tmp_path / "pypi" / "simple").mkdir(parents=True)
    (tmp_path / "wheels").mkdir()
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("torch<=2.14.1\n")
    options = {
        "extra-index-url": f"file://{tmp_path}/pypi/simple https://pypi.example/simple",
        "find-links": f"{tmp_path}/wheels {tmp_path}/missing",
        "constraint": str(constraints),
        "timeout": "60",
    }
    assert image_pip_config.local_paths(options) == [tmp_path / "pypi", tmp_path / "wheels", constraints]
    conf = image_pip_config.pip_conf(options)
    assert conf.startswith("[global]\n") and f"constraint = {constraints}\n" in conf
