"""Parameters of the RAFT backend (no torch import: the CLI builds its options from these)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from flowkit.checks import require_int
from flowkit.errors import ConfigError
from flowkit.flow.device import check_precision


@dataclasses.dataclass(frozen=True)
class RAFTConfig:
    """Parameters of RAFT; the weights file is required (nothing is downloaded).

    Attributes:
        weights: RAFT weights (.pth): the original release's raft-things.pth, raft-sintel.pth,
            raft-kitti.pth or raft-small.pth, or a torchvision raft_large / raft_small state dict.
        small: use the RAFT-small model (for raft-small.pth and torchvision raft_small weights).
        iters: refinement iterations; the RAFT authors evaluate with 12 to 32, >= 1.
        precision: fp32, or bf16 / fp16 autocast for the convolutions (faster on GPUs, changes
            the flow slightly: see docs/benchmarks.md).
    """

    weights: str = dataclasses.field(default="", metadata={"file": True})  # FILE in the CLI
    small: bool = False
    iters: int = 12
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if not self.weights:
            raise ConfigError("the raft flow method needs a weights file: pass --raft-weights "
                              "FILE (raft-things.pth, raft-small.pth with --raft-small, or a "
                              "torchvision raft_large/raft_small state dict)")
        path = Path(self.weights).expanduser()
        if not path.is_file():
            raise ConfigError(f"{self.weights}: RAFT weights file not found")
        # Stored absolute, so resuming from another folder compares equal settings.
        object.__setattr__(self, "weights", str(path.resolve()))
        if not isinstance(self.small, bool):
            raise ConfigError(f"RAFTConfig.small must be true or false, got {self.small!r}")
        require_int("RAFTConfig", "iters", self.iters, minimum=1)
        check_precision("RAFTConfig", self.precision)
