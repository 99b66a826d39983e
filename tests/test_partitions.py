"""Partitions for job arrays: a video's partition depends on its id alone."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from flowkit.errors import ConfigError
from flowkit.extract.inputs import VideoSource
from flowkit.extract.partitions import partition_of, select_partition


def sources(ids) -> list[VideoSource]:
    return [VideoSource(video_id, Path("/videos") / video_id) for video_id in ids]


IDS = [f"class_{k % 101:03d}/v_{k:05d}.avi" for k in range(1000)]


def test_partition_is_a_function_of_the_id_alone():
    """Shuffling the inputs or adding videos moves no video to another partition."""
    before = {i: {s.video_id for s in select_partition(sources(IDS[:600]), 4, i)}
              for i in range(4)}
    shuffled = random.Random(0).sample(IDS, len(IDS))  # all 1000, in another order
    after = {i: {s.video_id for s in select_partition(sources(shuffled), 4, i)} for i in range(4)}
    for i in range(4):
        assert before[i] <= after[i]
        assert after[i] - before[i] == {v for v in IDS[600:] if partition_of(v, 4) == i}
    assert set().union(*after.values()) == set(IDS)
    assert sum(map(len, after.values())) == len(IDS)  # disjoint


def test_partition_keeps_input_order_and_known_values():
    """The hash is BLAKE2b (stable across processes and Pythons): pinned values."""
    chosen = select_partition(sources(IDS[:20]), 3, 1)
    assert [s.video_id for s in chosen] == [v for v in IDS[:20] if partition_of(v, 3) == 1]
    assert [partition_of(f"v{k}", 1000) for k in range(3)] == [219, 858, 191]


@pytest.mark.parametrize("parts", [2, 4, 10])
def test_partitions_are_balanced_over_1000_ids(parts):
    """Each of P partitions gets 1000 / P videos within 25% (measured: 496/504; 220 to 284
    of 250; 84 to 120 of 100, as a binomial spread would have it)."""
    sizes = Counter(partition_of(v, parts) for v in IDS)
    expected = len(IDS) / parts
    assert set(sizes) == set(range(parts))
    assert all(abs(size - expected) <= 0.25 * expected for size in sizes.values()), sizes


@pytest.mark.parametrize("num,index", [(3, 3), (3, 7), (2, -1), (0, 0)])
def test_partition_out_of_range_names_the_options(num, index):
    with pytest.raises(ConfigError, match="--num-partitions") as caught:
        select_partition(sources(IDS[:5]), num, index)
    assert "--partition" in str(caught.value) or num == 0
