"""Checkpoints: a run's whole state in one file, written atomically.

A checkpoint holds the resolved configuration (so the model can be rebuilt without the command
that made it), the class names, the model weights, and for resuming the optimizer, the loss
scaler, the learning-rate scheduler (``lr_schedule``; checkpoints written before it resume by
stepping a fresh one, stddcn.optim.restore_scheduler), every random generator, the epoch and
step counters and the best validation result.
RUN/last.pt is rewritten after every epoch, RUN/best.pt when validation improves; a crash
while writing leaves the previous file whole. Each checkpoint carries a checksum of everything
else in it (tensors by their bytes), verified by :func:`load`: flipped bits on disk are an
error naming the file, not a model that silently scores less. The file stays a plain
``torch.save`` dict, readable with ``torch.load``.
"""

from __future__ import annotations

import hashlib
import os
import random
import secrets
from pathlib import Path
from typing import Any

import numpy as np
import torch

import flowkit
from stddcn.config import ModelConfig, TrainConfig
from stddcn.config_files import from_dict, stored_config, to_dict
from stddcn.errors import CheckpointError
from stddcn.models import ActionModel, TwoStream, create_model, use_channels_last

FORMAT = "stddcn-checkpoint"
VERSION = 2  # 2: a checksum over the rest of the checkpoint
LAST, BEST = "last.pt", "best.pt"
PARTIAL_SUFFIX = ".partial"  # temporary files: .NAME.<pid>-<random>.partial


def save(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` (see :func:`make_state`) with its checksum to ``path`` atomically: to a
    temporary file of this writer alone in the same folder, flushed to disk, then renamed over
    ``path``."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}"
                             f"{PARTIAL_SUFFIX}")
    state = {**{k: v for k, v in state.items() if k != "checksum"},
             "checksum": checksum(state)}
    try:
        with open(partial, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        partial.replace(path)
        _sync_folder(path.parent)
    finally:
        partial.unlink(missing_ok=True)


def remove_partials(run: Path) -> list[Path]:
    """Delete the temporary files writers killed mid-write left in ``run`` (call it holding the
    run's lock: no writer is alive then); returns them."""
    left = sorted(Path(run).glob(f".*{PARTIAL_SUFFIX}"))
    for path in left:
        path.unlink(missing_ok=True)
    return left


def checksum(state: dict[str, Any]) -> str:
    """BLAKE2b of everything in ``state`` but its ``checksum``: tensors and arrays by dtype,
    shape and bytes, other values by their repr, containers in order."""
    digest = hashlib.blake2b(digest_size=16)
    _digest_value({k: v for k, v in state.items() if k != "checksum"}, digest)
    return digest.hexdigest()


def _digest_value(value: Any, digest: Any) -> None:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        digest.update(f"T{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().data)
    elif isinstance(value, np.ndarray):
        digest.update(f"A{value.dtype}{value.shape}".encode())
        digest.update(np.ascontiguousarray(value).view(np.uint8).data)
    elif isinstance(value, dict):
        digest.update(f"D{len(value)}".encode())
        for key, item in value.items():
            digest.update(repr(key).encode())
            _digest_value(item, digest)
    elif isinstance(value, (list, tuple)):
        digest.update(f"L{len(value)}".encode())
        for item in value:
            _digest_value(item, digest)
    else:
        digest.update(repr(value).encode())


def _sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the platform allows opening folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def make_state(config: TrainConfig, class_names: list[str], model: torch.nn.Module,
               **progress: Any) -> dict[str, Any]:
    """A checkpoint dict: format, versions, config, class names, weights and ``progress``
    (optimizer, scaler, rng, epoch, step, best, metrics...)."""
    return {"format": FORMAT, "version": VERSION, "flowkit_version": flowkit.__version__,
            "torch_version": torch.__version__, "config": to_dict(config),
            "class_names": list(class_names), "model": model.state_dict(), **progress}


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint on the CPU, checking that it is one and that its checksum holds
    (checkpoints of version 1 have none).

    Raises:
        CheckpointError: missing, unreadable, damaged, or not a stddcn checkpoint (one line,
            naming it).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for damaged files
        raise CheckpointError(f"{path}: cannot read the checkpoint ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else 'damaged'})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a stddcn checkpoint (a run's last.pt or best.pt)")
    if state.get("version", 0) > VERSION:
        raise CheckpointError(f"{path}: checkpoint version {state['version']} is newer than "
                              f"this flowkit reads ({VERSION}); upgrade flowkit")
    if state.get("version", 0) >= 2 and state.get("checksum") != checksum(state):
        raise CheckpointError(f"{path}: the checkpoint is damaged (its checksum does not match "
                              "its contents: bytes changed on disk after it was written); use "
                              "the run's other checkpoint (last.pt or best.pt) or a backup")
    return state


def config_of(state: dict[str, Any]) -> TrainConfig:
    """The resolved training configuration stored in a checkpoint."""
    return stored_config(state["config"], where="checkpoint config")


def find(run_or_file: Path | str, prefer: str = BEST) -> Path:
    """The checkpoint file a user means: a file as given, or in a run folder ``prefer``
    (best.pt), falling back to last.pt."""
    path = Path(run_or_file)
    if path.is_dir():
        for name in (prefer, LAST, BEST):
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"{path}: no checkpoint in this folder (last.pt or best.pt); "
                              "is it a run folder of flowkit train?")
    if not path.exists():
        raise CheckpointError(f"{path}: no such run folder or checkpoint file")
    return path


def rng_state() -> dict[str, Any]:
    """Every random generator the training step draws from (Python, NumPy, torch CPU/CUDA)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`rng_state`'s generators."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def build_model(state: dict[str, Any]) -> ActionModel:
    """The untrained model a checkpoint's weights belong to.

    A fusion of separately trained streams stores each stream's model settings (they may
    differ in backbone) under ``streams``; other models are rebuilt from the config.
    """
    config = config_of(state)
    if state.get("streams"):
        streams = {name: create_model(from_dict(ModelConfig, settings, f"streams.{name}"))
                   for name, settings in state["streams"].items()}
        return TwoStream(streams, config.model.fusion_weights)
    return create_model(config.model)


def load_model(path: Path, device: str) -> tuple[ActionModel, TrainConfig, list[str]]:
    """The trained model of checkpoint ``path`` on ``device`` (in eval mode), with its
    configuration and class names."""
    state = load(path)
    model = build_model(state)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: the weights do not fit the model its configuration "
                              f"describes ({str(exc).splitlines()[0]})") from None
    config = config_of(state)
    use_channels_last(model, bool(config.channels_last) and device.startswith("cuda"))
    return model.to(device).eval(), config, list(state["class_names"])
