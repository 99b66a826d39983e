"""The shard-local shuffle (issue 20): a permutation per epoch that stays within a few shards."""

from __future__ import annotations

import numpy as np
import pytest

from flowkit.data.order import ShardLocalShuffle
from flowkit.errors import ConfigError

# 40 shards of 4 items each, the items of one shard far apart in the dataset
SHARDS = [f"shard-{(i * 7) % 40:05d}.h5" for i in range(160)]


def _shard_runs(order: list[int], window: int) -> list[set[str]]:
    """The shards of each stretch of items that come from one window of shards."""
    runs, current = [], set()
    for index in order:
        current.add(SHARDS[index])
        if len(current) > window:
            runs.append(current - {SHARDS[index]})
            current = {SHARDS[index]}
    return runs + [current]


def test_an_epoch_is_a_permutation_that_stays_within_window_shards():
    sampler = ShardLocalShuffle(SHARDS, window=4, seed=3)
    order = list(sampler)
    assert sorted(order) == list(range(len(SHARDS))) and len(sampler) == len(SHARDS)
    runs = _shard_runs(order, 4)
    assert len(runs) == 10 and all(len(run) == 4 for run in runs)  # 40 shards, 4 at a time
    assert len({SHARDS[i] for i in order[:20]}) > 1  # items mix across the window's shards


def test_each_epoch_and_seed_has_its_own_order_and_repeats_it():
    sampler = ShardLocalShuffle(SHARDS, window=4, seed=3)
    first = list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    assert first != second and sorted(first) == sorted(second)
    sampler.set_epoch(0)
    assert list(sampler) == first
    assert list(ShardLocalShuffle(SHARDS, window=4, seed=4)) != first


def test_ddp_ranks_share_the_order_padded_to_equal_length():
    ranks = [list(ShardLocalShuffle(SHARDS[:158], window=4, seed=1, num_replicas=3, rank=r))
             for r in range(3)]
    assert [len(r) for r in ranks] == [53, 53, 53]
    assert set().union(*map(set, ranks)) == set(range(158))
    whole = ShardLocalShuffle(SHARDS[:158], window=4, seed=1).order()
    assert ranks[1] == list(np.resize(whole, 159)[1::3])


def test_a_window_of_one_reads_shard_after_shard():
    order = list(ShardLocalShuffle(SHARDS, window=1, seed=0))
    changes = sum(SHARDS[a] != SHARDS[b] for a, b in zip(order, order[1:]))
    assert changes == 39


@pytest.mark.parametrize("kwargs", [{"window": 0}, {"num_replicas": 2, "rank": 2}])
def test_bad_settings_are_config_errors(kwargs):
    with pytest.raises(ConfigError):
        ShardLocalShuffle(SHARDS, **kwargs)


def test_a_dataset_read_in_shard_local_order_opens_each_shard_once(tmp_path):
    """20 shards of 10 videos, at most 4 files open: the shard-local order with a window of 4
    opens every shard once an epoch; a full shuffle reopens one for most items."""
    import pickle

    from flowkit.data.dataset import ShardDataset
    from flowkit.data.sampling import SegmentSampler
    from flowkit.store.writer import StorageConfig
    from test_reader_bounds import _write_shards

    _write_shards(tmp_path, [StorageConfig(rgb="raw")] * 20, 10, 2, 8, 8)
    sampler = SegmentSampler(num_segments=1)
    local = ShardDataset(tmp_path, "rgb", sampler, max_open_files=4)
    shuffled = ShardDataset(tmp_path, "rgb", sampler, max_open_files=4)
    assert len(set(local.item_shards().tolist())) == 20 and len(local) == 200
    opened = {}
    for dataset, order in ((local, ShardLocalShuffle(local.item_shards(), window=4, seed=0)),
                           (shuffled, np.random.default_rng(0).permutation(len(shuffled)))):
        dataset.reader.close()  # construction read the first video
        before = dataset.reader._files.openings
        for index in order:
            dataset[index]
        opened[dataset is local] = dataset.reader._files.openings - before
    assert opened[True] == 20 and opened[False] > 100
    assert len(pickle.dumps(local)) < 40_000  # ids, shards and counts as arrays, not objects
