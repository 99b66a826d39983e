"""Loading RAFT weights: the original release's checkpoints and torchvision's state dicts.

The original (princeton-vl/RAFT: raft-things.pth, raft-sintel.pth, raft-kitti.pth,
raft-small.pth) saved ``nn.DataParallel`` state dicts, so keys start with ``module.``; our
module names are the original's. torchvision's ``raft_large``/``raft_small`` state dicts
hold the same tensors under other names, renamed here by :func:`torchvision_to_original`.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from flowkit.errors import ConfigError
from flowkit.flow.raft.network import RAFT

# (pattern, replacement) on torchvision key names, applied in order; the encoder prefixes
# (feature_encoder -> fnet, context_encoder -> cnet) are renamed last.
_ENCODER_RENAMES = [
    (r"\.convnormrelu\.0\.", ".conv1."),
    (r"\.convnormrelu\.1\.", ".norm1."),
    (r"\.(layer\d\.\d)\.convnormrelu(\d)\.0\.", r".\1.conv\2."),
    (r"\.(layer\d\.\d)\.convnormrelu(\d)\.1\.", r".\1.norm\2."),
    (r"^(feature_encoder|context_encoder)\.conv\.", r"\1.conv2."),
]
_UPDATE_RENAMES = [
    (r"^update_block\.motion_encoder\.convcorr(\d)\.0\.", r"update_block.encoder.convc\1."),
    (r"^update_block\.motion_encoder\.convflow(\d)\.0\.", r"update_block.encoder.convf\1."),
    (r"^update_block\.motion_encoder\.conv\.0\.", "update_block.encoder.conv."),
    (r"^mask_predictor\.convrelu\.0\.", "update_block.mask.0."),
    (r"^mask_predictor\.conv\.", "update_block.mask.2."),
]
_PREFIXES = [(r"^feature_encoder\.", "fnet."), (r"^context_encoder\.", "cnet.")]
_ORIGINAL_PREFIXES = ("fnet.", "cnet.", "update_block.")
_TORCHVISION_PREFIXES = ("feature_encoder.", "context_encoder.", "update_block.", "mask_predictor.")


def torchvision_to_original(state: dict[str, torch.Tensor], small: bool
                            ) -> dict[str, torch.Tensor]:
    """Rename a torchvision RAFT state dict to the original release's key names."""
    renamed: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        new = key
        for pattern, replacement in _ENCODER_RENAMES + _UPDATE_RENAMES:
            new = re.sub(pattern, replacement, new)
        gru = re.match(r"^update_block\.recurrent_block\.convgru(\d)\.conv([zrq])\.(.*)$", new)
        if gru:
            stage, gate, rest = gru.groups()
            new = (f"update_block.gru.conv{gate}.{rest}" if small
                   else f"update_block.gru.conv{gate}{stage}.{rest}")
        for pattern, replacement in _PREFIXES:
            new = re.sub(pattern, replacement, new)
        renamed[new] = tensor
        # The original registers each block's projection norm twice: as normN and as
        # downsample.1 (the same module), so its state dict has both names.
        projection = re.match(r"^(.*\.layer\d\.\d)\.downsample\.1\.(.*)$", new)
        if projection:
            block, rest = projection.groups()
            renamed[f"{block}.norm{4 if small else 3}.{rest}"] = tensor
    return renamed


def _unwrap(loaded: object, path: Path) -> dict[str, torch.Tensor]:
    """The state dict inside a loaded checkpoint (plain, or under 'state_dict' / 'model')."""
    if isinstance(loaded, dict):
        for key in ("state_dict", "model"):
            if isinstance(loaded.get(key), dict):
                loaded = loaded[key]
                break
    if not isinstance(loaded, dict) or not loaded or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()):
        raise ConfigError(f"{path}: not a RAFT state dict (expected a dict of tensors as saved "
                           "by the original RAFT release or torchvision's raft_large/raft_small)")
    return loaded


def _weights_size(state: dict[str, torch.Tensor]) -> str | None:
    """'small' or 'large' from the first convolution's width, None when that key is absent."""
    conv = state.get("fnet.conv1.weight")
    if conv is None:
        return None
    return "small" if conv.shape[0] == 32 else "large"


def read_state_dict(path: Path | str, small: bool) -> dict[str, torch.Tensor]:
    """Read RAFT weights from ``path`` in either format, with the original's key names.

    Raises:
        ConfigError: the file is missing, not a PyTorch checkpoint, not RAFT weights, or holds
            the other model size than ``small`` asks for.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: RAFT weights file not found (pass the .pth file of the "
                           "original release or of torchvision with --raft-weights)")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  pickle, zip and torch errors all mean "not weights"
        reason = " ".join(str(exc).split())[:200]
        raise ConfigError(f"{path}: not a PyTorch checkpoint ({type(exc).__name__}: "
                           f"{reason})") from None
    state = _unwrap(loaded, path)
    state = {key.removeprefix("module."): tensor for key, tensor in state.items()}
    if all(key.startswith(_TORCHVISION_PREFIXES) for key in state) and any(
            key.startswith("feature_encoder.") for key in state):
        state = torchvision_to_original(state, small)
    elif not all(key.startswith(_ORIGINAL_PREFIXES) for key in state):
        stray = next(key for key in state if not key.startswith(_ORIGINAL_PREFIXES))
        raise ConfigError(f"{path}: not RAFT weights (key {stray!r}; expected keys of the "
                           "original release, module.fnet..., or of torchvision, "
                           "feature_encoder...)")
    found = _weights_size(state)
    wanted = "small" if small else "large"
    if found is not None and found != wanted:
        hint = "add --raft-small" if found == "small" else "drop --raft-small"
        raise ConfigError(f"{path}: holds RAFT-{found} weights but RAFT-{wanted} was asked "
                           f"for ({hint})")
    return state


def load_raft(path: Path | str, small: bool, device: torch.device) -> RAFT:
    """The RAFT model of ``path``'s weights, in eval mode on ``device``.

    Raises:
        ConfigError: see :func:`read_state_dict`; or the tensors do not fit the model.
    """
    state = read_state_dict(path, small)
    model = RAFT(small=small)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = " ".join(str(exc).split())[:300]
        raise ConfigError(f"{path}: RAFT-{'small' if small else 'large'} weights do not fit "
                           f"the model ({first})") from None
    return model.eval().to(device)
