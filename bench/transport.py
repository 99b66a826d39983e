"""DataLoader transport: items/s of TSN-sized items that cost nothing to make, by dtype.

What 2 worker processes can hand to the main process when __getitem__ only copies fixed
tensors (3 x 3 x 224 x 224 RGB + 3 x 10 x 224 x 224 flow, a two-stream TSN item): the ceiling
that shared-memory collation puts on any loader, float32 vs float16 vs uint8 items.

    python bench/transport.py [--workers 2] [--epochs 5]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader, Dataset

from common import machine


class FixedItems(Dataset):
    """48 items, each a fresh copy of the same RGB and flow tensors."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.rgb = torch.zeros(3, 3, 224, 224, dtype=dtype)
        self.flow = torch.zeros(3, 10, 224, 224, dtype=dtype)

    def __len__(self) -> int:
        return 48

    def __getitem__(self, index: int) -> dict:
        return {"rgb": self.rgb.clone(), "flow": self.flow.clone()}


def items_per_second(dtype: torch.dtype, workers: int, epochs: int) -> float:
    loader = DataLoader(FixedItems(dtype), batch_size=8, num_workers=workers,
                        persistent_workers=workers > 0)
    for _ in loader:  # start the workers
        pass
    count, start = 0, time.perf_counter()
    for _ in range(epochs):
        for batch in loader:
            count += batch["rgb"].shape[0]
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"| item dtype | MB per item | items/s, 0 workers | items/s, {args.workers} workers |")
    print("| --- | ---: | ---: | ---: |")
    for dtype in (torch.float32, torch.float16, torch.uint8):
        size = FixedItems(dtype)
        megabytes = (size.rgb.nbytes + size.flow.nbytes) / 1e6
        print(f"| {dtype} | {megabytes:.2f} | {items_per_second(dtype, 0, args.epochs):.0f} | "
              f"{items_per_second(dtype, args.workers, args.epochs):.0f} |")


if __name__ == "__main__":
    main()
