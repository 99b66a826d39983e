"""A shuffle that keeps reads within a few shards at a time, for shards on network storage.

A full shuffle over a Kinetics folder (thousands of shards) reads each item from a shard
other than the last one's: a reader that keeps a bounded number of files open (see
[`ShardReader`][flowkit.store.reader.ShardReader]) reopens a file for nearly every item, and on
NFS or Lustre each open is a round trip. This order shuffles the shards, takes them ``window``
at a time, and shuffles the items of those shards among themselves (WebDataset's shard
shuffle plus a shuffle buffer): every shard is opened about once per epoch and worker, while
items still mix across ``window`` shards. Within an epoch it is a permutation of the items; each
(seed, epoch) gives its own.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from flowkit.errors import ConfigError


class ShardLocalShuffle(Sampler[int]):
    """Dataset indices in shard-local random order: a DataLoader ``sampler``.

    Args:
        shards: the shard of each item (any hashable labels, e.g.
            [`ShardDataset.item_shards`][flowkit.data.ShardDataset.item_shards]).
        window: shards whose items are mixed together; at most the reader's ``max_open_files``
            divided by the DataLoader's workers keeps every open file in use.
        seed: with the epoch (:meth:`set_epoch`), decides the order.
        num_replicas: under DDP, the number of processes sharing the order: each takes every
            ``num_replicas``-th item (the order padded by repeating its start, as
            ``DistributedSampler`` does, so that every process has as many items).
        rank: under DDP, this process's place among them: it takes the items from ``rank``.
    """

    def __init__(self, shards: Sequence[object], window: int = 8, seed: int = 0,
                 num_replicas: int = 1, rank: int = 0) -> None:
        if window < 1:
            raise ConfigError(f"window must be >= 1 shard, got {window}")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ConfigError(f"rank must be in [0, {num_replicas}), got {rank}")
        codes: dict[object, int] = {}
        item_codes = np.array([codes.setdefault(shard, len(codes)) for shard in shards],
                              dtype=np.int64)
        order = np.argsort(item_codes, kind="stable")
        starts = np.searchsorted(item_codes[order], np.arange(len(codes) + 1))
        self._groups = [order[starts[i]:starts[i + 1]] for i in range(len(codes))]
        self._size = len(item_codes)
        self.window, self.seed, self.epoch = window, seed, 0
        self.num_replicas, self.rank = num_replicas, rank

    def set_epoch(self, epoch: int) -> None:
        """A new order for each epoch (the same epoch repeats it)."""
        self.epoch = epoch

    def order(self) -> np.ndarray:
        """Every item once, shard-local shuffled (before this rank's share is taken)."""
        rng = np.random.default_rng([self.seed, self.epoch])
        shards = rng.permutation(len(self._groups))
        parts = []
        for start in range(0, len(shards), self.window):
            items = np.concatenate([self._groups[s] for s in shards[start:start + self.window]])
            parts.append(rng.permutation(items))
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def __iter__(self) -> Iterator[int]:
        order = self.order()
        if self.num_replicas > 1 and len(order):
            total = len(self) * self.num_replicas
            order = np.resize(order, total)[self.rank::self.num_replicas]
        return iter(order.tolist())

    def __len__(self) -> int:
        return -(-self._size // self.num_replicas)
