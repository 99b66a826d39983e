"""What a run reports: RUN/log.jsonl (one JSON line per logged step and per epoch) and, when the
``tensorboard`` package is installed, TensorBoard event files in RUN/tensorboard.

Only rank 0 writes. Each line carries ``kind`` ("step" or "epoch"), the epoch, the global step
and the values; a resumed run first drops the lines written after its checkpoint (they are
written again), then appends to the same file, so every step and epoch is logged once.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any


class RunLog:
    """Appends records to RUN/log.jsonl and mirrors scalars to TensorBoard when available."""

    def __init__(self, run: Path, enabled: bool = True, first_step: int = 0) -> None:
        """``first_step``: the global step a resumed run goes on after; TensorBoard drops the
        events it had after it."""
        self.enabled = enabled
        self.path = Path(run) / "log.jsonl"
        self._tensorboard = (_tensorboard_writer(Path(run) / "tensorboard", first_step + 1)
                             if enabled else None)

    def write(self, kind: str, epoch: int, step: int, **values: Any) -> None:
        """One record: ``{"kind", "epoch", "step", "time", **values}``."""
        if not self.enabled:
            return
        record = {"kind": kind, "epoch": epoch, "step": step, "time": round(time.time(), 3),
                  **{k: _plain(v) for k, v in values.items()}}
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        if self._tensorboard is not None:
            for name, value in record.items():
                if isinstance(value, (int, float)) and name not in ("epoch", "step", "time"):
                    self._tensorboard.add_scalar(f"{kind}/{name}", value, step)

    def close(self) -> None:
        if self._tensorboard is not None:
            self._tensorboard.close()


def _plain(value: Any) -> Any:
    """Tensors and numpy scalars as Python numbers, floats rounded for reading."""
    if hasattr(value, "item"):
        value = value.item()
    return round(value, 6) if isinstance(value, float) else value


def _tensorboard_writer(folder: Path, purge_step: int) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is an optional extra
        return None
    return SummaryWriter(str(folder), purge_step=purge_step if purge_step > 1 else None)


def trim_log(run: Path, step: int, epoch: int) -> None:
    """Drop the records of RUN/log.jsonl after global step ``step`` and epoch ``epoch`` (what a
    run killed after its last checkpoint had logged), and a last line cut short by the kill;
    the file is replaced atomically."""
    path = Path(run) / "log.jsonl"
    if not path.is_file():
        return
    kept, changed = [], False
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a kill
            changed = True
            continue
        if record.get("step", 0) > step or (record.get("kind") == "epoch"
                                              and record.get("epoch", 0) > epoch):
            changed = True
            continue
        kept.append(line)
    if not changed:
        return
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text("".join(line + "\n" for line in kept))
    partial.replace(path)


def read_log(run: Path, kind: str | None = None) -> list[dict[str, Any]]:
    """The records of RUN/log.jsonl (of one ``kind``), in order."""
    path = Path(run) / "log.jsonl"
    if not path.is_file():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if kind is None or r["kind"] == kind]
