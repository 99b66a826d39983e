"""Pretrained weights from local files: ImageNet ResNets into 2D backbones, inflated into 3D.

- ``load_pretrained_2d``: a torchvision-format ResNet state dict into a 2D backbone; for other
  than 3 input channels (flow), TSN's cross-modality initialisation of ``conv1``.
- ``inflate_2d_weights``: the same file inflated into an R3D backbone (I3D): each k x k filter
  repeated over the t frames of its 3D kernel and divided by t, so a static clip gives the 2D
  activations. A torchvision-format *video* state dict whose keys match loads as it is.

Weights are read with ``torch.load(..., weights_only=True)``: no code in the file runs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping, Union

import torch
from torch import nn

from stddcn.errors import ModelError
from stddcn.models.resnet2d import LAYOUTS

StateSource = Union[str, "os.PathLike[str]", Mapping[str, torch.Tensor]]

INFLATES_FROM = {"r3d-18": "resnet18", "r3d-tiny": "resnet-tiny"}
"""The 2D arch whose weights each inflatable 3D arch takes key for key."""


def _some(keys: list[str], n: int = 3) -> str:
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def read_state_dict(source: StateSource) -> tuple[dict[str, torch.Tensor], str]:
    """A state dict from a file (or given as a mapping) and a name for it in messages.

    Raises:
        ModelError: the file is missing, unreadable, or not a mapping of names to tensors.
    """
    if isinstance(source, Mapping):
        state, origin = dict(source), "the given state dict"
    else:
        path = Path(source)
        origin = str(path)
        if not path.is_file():
            raise ModelError(f"pretrained weights file {path} does not exist")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch.load raises many types; all mean "not loadable"
            raise ModelError(f"{path} is not a readable PyTorch state dict file "
                             f"({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, Mapping):
        raise ModelError(f"{origin} holds a {type(state).__name__}, not a state dict "
                         "(a mapping of parameter names to tensors)")
    state = dict(state)
    for wrapper in ("state_dict", "model"):
        if isinstance(state.get(wrapper), Mapping):
            raise ModelError(f"{origin} looks like a training checkpoint; save its "
                             f"{wrapper!r} entry alone and pass that file")
    bad = [str(k) for k, v in state.items() if not isinstance(k, str)
           or not isinstance(v, torch.Tensor)]
    if bad or not state:
        raise ModelError(f"{origin} is not a state dict (a mapping of parameter names to "
                         f"tensors){': see ' + _some(bad) if bad else ': it is empty'}")
    return state, origin


def cross_modality(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """TSN's cross-modality init: (O, 3, ...) RGB filters averaged over their input channels
    and replicated ``in_channels`` times -> (O, in_channels, ...)."""
    return weight.mean(dim=1, keepdim=True).repeat(1, in_channels, *[1] * (weight.ndim - 2))


def guess_2d_arch(state: Mapping[str, torch.Tensor]) -> str | None:
    """Which registered 2D arch (and width) a ResNet state dict seems to fit, from its keys."""
    blocks = [0, 0, 0, 0]
    for key in state:
        match = re.match(r"layer([1-4])\.(\d+)\.", key)
        if match:
            stage = int(match.group(1)) - 1
            blocks[stage] = max(blocks[stage], int(match.group(2)) + 1)
    block = "bottleneck" if any(".conv3." in key for key in state) else "basic"
    stem = state["conv1.weight"].shape[0] if "conv1.weight" in state else None
    for name, (kind, layers, stem_width, _) in LAYOUTS.items():
        if kind == block and tuple(blocks) == layers and stem:
            mult = stem / stem_width
            return name if mult == 1 else f"{name} with width_mult {mult:g}"
    return None


def _input_channels(backbone: nn.Module, in_channels: int | None) -> int:
    first = next(m for m in backbone.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d)))
    if in_channels is not None and in_channels != first.in_channels:
        raise ModelError(f"in_channels {in_channels} does not match the backbone, which takes "
                         f"{first.in_channels} input channels")
    return first.in_channels


def _fit_input(state: dict[str, torch.Tensor], key: str, in_channels: int) -> None:
    weight = state.get(key)
    if weight is not None and weight.shape[1] == 3 and in_channels != 3:
        state[key] = cross_modality(weight, in_channels)


def _load_exact(module: nn.Module, state: dict[str, torch.Tensor], origin: str,
                hint: str = "") -> None:
    """load_state_dict, after checking every key and shape; ModelError lists what differs."""
    expected = module.state_dict()
    for key, value in expected.items():  # older torchvision files predate this buffer
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = value
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    misshaped = [f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
                 for k in expected if k in state and state[k].shape != expected[k].shape]
    problems = [f"{label} {_some(keys)}" for label, keys in (
        ("missing keys", missing), ("unexpected keys", unexpected),
        ("shapes (file vs model)", misshaped)) if keys]
    if problems:
        arch = getattr(module, "arch", type(module).__name__)
        raise ModelError(f"pretrained weights {origin} do not fit {arch}: "
                         f"{'; '.join(problems)}{hint}")
    module.load_state_dict(state)


def _hint(state: Mapping[str, torch.Tensor], wanted: str | None) -> str:
    guess = guess_2d_arch(state)
    return f" (the file looks like {guess})" if guess and guess != wanted else ""


def _require_2d(state: Mapping[str, torch.Tensor], origin: str) -> None:
    weight = state.get("conv1.weight")
    if weight is None or weight.ndim != 4:
        raise ModelError(f"{origin} is not a torchvision-format 2D ResNet state dict (no 4-D "
                         f"conv1.weight); its keys start {_some(list(state))}")


def load_pretrained_2d(backbone: nn.Module, source: StateSource,
                       in_channels: int | None = None) -> nn.Module:
    """Load a torchvision-format ResNet state dict (file or mapping) into a 2D backbone.

    ``fc.*`` is dropped. When the backbone takes other than 3 channels (``in_channels``, by
    default read from it), conv1's RGB filters are averaged and replicated (TSN). Returns
    ``backbone``.

    Raises:
        ModelError: unreadable file, or keys/shapes that do not fit (named, with a guess at
            the arch the file fits).
    """
    state, origin = read_state_dict(source)
    in_channels = _input_channels(backbone, in_channels)
    _require_2d(state, origin)
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    _fit_input(state, "conv1.weight", in_channels)
    _load_exact(backbone, state, origin, _hint(state, getattr(backbone, "arch", None)))
    return backbone


def _name_3d(key: str) -> str:
    """A torchvision 2D ResNet key -> the matching torchvision video ResNet key."""
    key = re.sub(r"^conv1\.", "stem.0.", key)
    key = re.sub(r"^bn1\.", "stem.1.", key)
    key = re.sub(r"^(layer\d+\.\d+)\.conv(\d+)\.", r"\1.conv\2.0.", key)
    return re.sub(r"^(layer\d+\.\d+)\.bn(\d+)\.", r"\1.conv\2.1.", key)


def inflate_2d_weights(backbone3d: nn.Module, source: StateSource,
                       in_channels: int | None = None) -> nn.Module:
    """Inflate 2D ImageNet ResNet weights into an R3D backbone, or load a video state dict.

    A 2D state dict (``conv1.weight`` 4-D): each conv (O, I, k, k) becomes (O, I, t, k, k),
    repeated over the kernel's t frames and divided by t; BN is copied; ``conv1/bn1`` go to
    ``stem.0/stem.1`` and ``layerN.M.convJ/bnJ`` to ``layerN.M.convJ.0/convJ.1``. A video state
    dict (``stem.0.weight`` 5-D) loads as it is. Either way ``fc.*`` is dropped and, for other
    than 3 input channels, the first conv gets TSN's cross-modality init. Returns the backbone.

    Raises:
        ModelError: 2D weights for a (2+1)D arch, or keys/shapes that do not fit.
    """
    state, origin = read_state_dict(source)
    in_channels = _input_channels(backbone3d, in_channels)
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    arch = getattr(backbone3d, "arch", type(backbone3d).__name__)
    stem = state.get("stem.0.weight")
    if stem is not None and stem.ndim == 5:
        _fit_input(state, "stem.0.weight", in_channels)
        _load_exact(backbone3d, state, origin)
        return backbone3d
    _require_2d(state, origin)
    if not getattr(backbone3d, "inflatable", False):
        raise ModelError(f"ImageNet inflation needs an r3d arch ({', '.join(INFLATES_FROM)}); "
                         f"{arch} factors its convs into (2+1)D, which 2D filters do not fill. "
                         f"Choose arch r3d-18, or pass a torchvision-format {arch} video state "
                         f"dict (keys stem.*, layer*), which loads as it is")
    _fit_input(state, "conv1.weight", in_channels)
    targets = backbone3d.state_dict()
    inflated = {}
    for key, value in state.items():
        key3d = _name_3d(key)
        target = targets.get(key3d)
        if target is not None and value.ndim == 4 and target.ndim == 5 \
                and target.shape[:2] + target.shape[3:] == value.shape:
            frames = target.shape[2]
            value = value.unsqueeze(2).repeat(1, 1, frames, 1, 1) / frames
        inflated[key3d] = value
    _load_exact(backbone3d, inflated, origin, _hint(state, INFLATES_FROM.get(arch)))
    return backbone3d
