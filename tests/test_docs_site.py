"""The documentation site builds with ``mkdocs build --strict``: every docs/*.md page is in the
nav, every link and cross-reference resolves, and the docstrings match their signatures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e '.[docs]')")
pytest.importorskip("mkdocstrings_handlers.python",
                    reason="mkdocstrings-python is not installed (pip install -e '.[docs]')")

ROOT = Path(__file__).resolve().parents[1]

# API page -> anchors it must hold (objects rendered from the docstrings).
API_PAGES = {
    "api/flowkit": ["flowkit.open_shards", "flowkit.ShardReader"],
    "api/data": ["flowkit.data.ShardDataset", "flowkit.data.SegmentSampler",
                 "flowkit.data.tsn_train_transform", "flowkit.data.read_split"],
    "api/interop": ["flowkit.interop.export_rawframes", "flowkit.interop.import_rawframes"],
    "api/stddcn": ["stddcn.train.train", "stddcn.config.TrainConfig", "stddcn.models.create_model"],
}


def test_mkdocs_build_strict_builds_every_page_and_the_api_reference(tmp_path):
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
         str(ROOT / "mkdocs.yml"), "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    for page in sorted(ROOT.glob("docs/*.md")):
        name = "" if page.stem == "index" else page.stem + "/"
        assert (site / name / "index.html").is_file(), page.name
    for page, anchors in API_PAGES.items():
        html = (site / page / "index.html").read_text()
        for anchor in anchors:
            assert f'id="{anchor}"' in html, (page, anchor)
    assert "Pack rawframe folders into shards" in (site / "api/interop/index.html").read_text()
