"""Deterministic partitions of the input videos, for job arrays (one partition per job).

A video's partition depends on its id alone, through a stable hash (BLAKE2b, not Python's
salted ``hash()``), so a video lands in the same partition whatever the order of the inputs,
whichever other videos are listed, and on whichever machine or Python the job runs. Each
partition is extracted into its own folder; ``flowkit merge`` joins them.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

from flowkit.errors import ConfigError
from flowkit.extract.inputs import VideoSource


def partition_of(video_id: str, num_partitions: int) -> int:
    """The partition (0 .. num_partitions - 1) of ``video_id``: its BLAKE2b hash modulo P."""
    digest = hashlib.blake2b(video_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % num_partitions


def check_partition(num_partitions: int, partition: int) -> None:
    """Raise ConfigError unless 0 <= partition < num_partitions (0-based, as SLURM's
    SLURM_ARRAY_TASK_ID with ``--array=0-(P-1)``)."""
    if num_partitions < 1:
        raise ConfigError(f"--num-partitions must be at least 1, got {num_partitions}")
    if not 0 <= partition < num_partitions:
        raise ConfigError(f"--partition {partition} is out of range for --num-partitions "
                          f"{num_partitions}: partitions are numbered 0 to {num_partitions - 1}")


def select_partition(sources: Sequence[VideoSource], num_partitions: int,
                     partition: int) -> list[VideoSource]:
    """The videos of ``sources`` in ``partition`` of ``num_partitions``, in input order.

    Raises:
        ConfigError: ``partition`` is not in 0 .. num_partitions - 1.
    """
    check_partition(num_partitions, partition)
    return [source for source in sources
            if partition_of(source.video_id, num_partitions) == partition]
