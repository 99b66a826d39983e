"""The built wheel installs flowkit.cli and the flowkit command, and no top-level `cli`."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_maps_cli_into_the_flowkit_package(tmp_path):
    """cli/ ships as flowkit/cli/, the entry point is flowkit.cli.main:main, no `cli` module."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--wheel-dir", str(tmp_path), str(ROOT)], check=True)
    (wheel,) = tmp_path.glob("flowkit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "flowkit/cli/main.py" in names and "flowkit/flow/tvl1.py" in names
    assert not any(name.startswith("cli/") for name in names)
    inits = [*ROOT.glob("flowkit/**/__init__.py"), *ROOT.glob("stddcn/**/__init__.py")]
    for init in sorted(inits):  # every subpackage of both packages ships
        assert init.relative_to(ROOT).as_posix() in names
    metadata = {Path(n).name: zipfile.ZipFile(wheel).read(n).decode() for n in names
                if n.endswith((".dist-info/entry_points.txt", ".dist-info/top_level.txt"))}
    assert "flowkit = flowkit.cli.main:main" in metadata["entry_points.txt"]
    assert "cli" not in metadata.get("top_level.txt", "").split()
