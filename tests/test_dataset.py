"""ShardDataset: what items hold, index correspondence, flips, reproducibility, DataLoader."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from flowkit.data.dataset import ShardDataset
from flowkit.data.sampling import ClipSampler, FrameIndices, SegmentSampler, VideoExtent
from flowkit.data.transforms import Compose, HorizontalFlip
from flowkit.errors import ConfigError
from flowkit.store.manifest import MANIFEST_NAME, OK, Manifest, ManifestEntry
from flowkit.store.reader import ShardReader
from flowkit.store.writer import ShardWriter, StorageConfig

H, W = 8, 10


def _write_indexed_videos(root, lengths=(20, 12, 3)):
    """Videos whose frame t has every pixel = t and whose flow t is u = t, v = -t/2 (float16)."""
    entries = []
    storage = StorageConfig(rgb="raw", flow_dtype="float16")
    with ShardWriter(root / "shard-00000.h5", storage, {"flow_backend": "test", "flow_step": 1}) as shard:
        for number, length in enumerate(lengths):
            video_id = f"class{number}/v{number}.mp4"
            with shard.video(video_id, {"bound": 20.0, "step": 1}) as video:
                for t in range(length):
                    video.append_frame(np.full((H, W, 3), t, np.uint8))
                for t in range(length - 1):
                    flow = np.empty((H, W, 2), np.float32)
                    flow[..., 0], flow[..., 1] = t, -t / 2
                    video.append_flow(flow)
                video.finish({"height": H, "width": W})
            entries.append(ManifestEntry(video_id, "/x", number, "shard-00000.h5", OK, length,
                                         length - 1))
    Manifest(entries).write(root / MANIFEST_NAME)


@pytest.fixture
def indexed(tmp_path):
    _write_indexed_videos(tmp_path)
    return tmp_path


def test_rgb_frame_and_flow_stack_start_at_the_same_index(indexed):
    """rgb+flow: segment k's RGB frame is frame s_k and its stack holds flows s_k..s_k+L-1."""
    dataset = ShardDataset(indexed, "rgb+flow", SegmentSampler(num_segments=3, flow_length=5))
    for index in range(len(dataset)):
        item = dataset[index]
        starts = item["frame_indices"].numpy()
        assert item["rgb"].shape == (3, 3, H, W) and item["flow"].shape == (3, 10, H, W)
        rgb_value = item["rgb"][:, 0, 0, 0].numpy().astype(int)
        np.testing.assert_array_equal(rgb_value, starts)
        u = item["flow"][:, 0::2, 0, 0].numpy()
        v = item["flow"][:, 1::2, 0, 0].numpy()
        np.testing.assert_array_equal(u, item["flow_indices"].numpy())
        np.testing.assert_allclose(v, -item["flow_indices"].numpy() / 2)
        num_flows = dataset.reader.info(item["video_id"])["num_flows"]
        expected = np.minimum(starts[:, None] + np.arange(5), num_flows - 1)
        np.testing.assert_array_equal(item["flow_indices"].numpy(), expected)


def test_short_videos_repeat_the_last_flow(indexed):
    """A 3-frame video (2 flows) still gives full stacks of 5, the last flow repeated."""
    dataset = ShardDataset(indexed, "flow", SegmentSampler(num_segments=3, train=False))
    item = dataset[2]
    assert item["video_id"] == "class2/v2.mp4" and item["flow"].shape == (3, 10, H, W)
    assert item["flow_indices"].max() == 1 and item["flow_indices"].min() >= 0


def test_flip_mirrors_and_negates_u(indexed):
    """A flipped sample of rightward flow has negative u and unchanged v."""
    plain = ShardDataset(indexed, "flow", SegmentSampler(train=False))
    flipped = ShardDataset(indexed, "flow", SegmentSampler(train=False),
                           transform=Compose([HorizontalFlip(p=1.0)]))
    a, b = plain[0]["flow"], flipped[0]["flow"]
    assert a[:, 0::2].mean() > 0
    torch.testing.assert_close(b[:, 0::2], -a[:, 0::2].flip(-1))
    torch.testing.assert_close(b[:, 1::2], a[:, 1::2].flip(-1))


def test_same_seed_same_samples_new_epoch_new_samples(indexed):
    """Items depend only on (seed, epoch, index): equal for equal seeds, different across epochs."""
    first = ShardDataset(indexed, "rgb", SegmentSampler(num_segments=3), seed=7)
    second = ShardDataset(indexed, "rgb", SegmentSampler(num_segments=3), seed=7)
    draws = [tuple(first[0]["frame_indices"].tolist()) for _ in range(3)]
    assert len(set(draws)) == 1 and draws[0] == tuple(second[0]["frame_indices"].tolist())
    seen = set()
    for epoch in range(6):
        first.set_epoch(epoch)
        seen.add(tuple(first[0]["frame_indices"].tolist()))
    assert len(seen) > 1


def test_clip_sampler_gives_c_t_h_w(indexed):
    """A ClipSampler item is (3, T, H, W) RGB and (2, T, H, W) flow, frames stride apart."""
    dataset = ShardDataset(indexed, "rgb+flow", ClipSampler(clip_len=4, frame_stride=2, train=False))
    item = dataset[0]
    assert item["rgb"].shape == (3, 4, H, W) and item["flow"].shape == (2, 4, H, W)
    frames = item["frame_indices"].numpy().reshape(-1)
    np.testing.assert_array_equal(np.diff(frames), [2, 2, 2])
    np.testing.assert_array_equal(item["rgb"][0, :, 0, 0].numpy(), frames)
    np.testing.assert_array_equal(item["flow"][0, :, 0, 0].numpy(), frames)


def test_split_selects_videos_and_labels(indexed):
    """A split picks videos and overrides labels; a missing video is an error unless skipped."""
    dataset = ShardDataset(indexed, "rgb", split={"class1/v1.mp4": 5})
    assert len(dataset) == 1 and dataset[0]["label"].item() == 5
    assert [label for _, label in ShardDataset(indexed, "rgb").items] == [0, 1, 2]
    with pytest.raises(ConfigError, match="not stored"):
        ShardDataset(indexed, "rgb", split={"nope.mp4": 0})
    assert len(ShardDataset(indexed, "rgb", split={"nope.mp4": 0}, skip_missing=True)) == 0


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_dataloader_workers_give_the_same_batches(indexed, context):
    """Two DataLoader workers (fork or spawn) yield exactly the batches of zero workers."""
    dataset = ShardDataset(indexed, "rgb+flow", SegmentSampler(num_segments=3), seed=3)
    dataset[0]  # open the shard in the parent first: workers must not reuse its handle

    def batches(**kwargs):
        loader = DataLoader(dataset, batch_size=2, shuffle=False, **kwargs)
        return [(b["rgb"].clone(), b["flow"].clone(), list(b["video_id"])) for b in loader]

    reference = batches(num_workers=0)
    parallel = batches(num_workers=2, multiprocessing_context=context)
    assert len(reference) == len(parallel) == 2
    for (rgb_a, flow_a, ids_a), (rgb_b, flow_b, ids_b) in zip(reference, parallel):
        assert ids_a == ids_b
        torch.testing.assert_close(rgb_a, rgb_b)
        torch.testing.assert_close(flow_a, flow_b)


def test_any_sampler_with_the_call_signature_works(indexed):
    """The dataset relies on the sampler protocol only: a user's own sampler drives it."""

    class LastFrames:
        """Two segments at the video's last frame and its last flow stack of 2."""

        def __call__(self, video: VideoExtent, rng=None) -> FrameIndices:
            frames = np.full((2, 1), video.num_frames - 1)
            flows = np.full((2, 2), video.num_flows - 1)
            return FrameIndices(frames, flows, clips=False)

    item = ShardDataset(indexed, "rgb+flow", LastFrames())[1]
    assert item["rgb"].shape == (2, 3, H, W) and item["flow"].shape == (2, 4, H, W)
    assert item["frame_indices"].tolist() == [11, 11]
    assert item["rgb"][:, 0, 0, 0].tolist() == [11, 11]
    assert item["flow"][:, 0, 0, 0].tolist() == [10, 10]


def test_a_modality_the_shards_do_not_store_is_named(tmp_path):
    """Flow asked of shards extracted with --flow none: one error saying so, not a list of
    'missing' videos."""
    storage = StorageConfig(rgb="raw", flow_dtype="float16")
    with ShardWriter(tmp_path / "shard-00000.h5", storage, {"flow_backend": "none"}) as shard:
        with shard.video("a.mp4", {}) as video:
            for t in range(3):
                video.append_frame(np.full((H, W, 3), t, np.uint8))
            video.finish({"height": H, "width": W})
    Manifest([ManifestEntry("a.mp4", "/x", 0, "shard-00000.h5", OK, 3, 0)]).write(
        tmp_path / MANIFEST_NAME)
    assert len(ShardDataset(tmp_path, "rgb")) == 1
    assert ShardReader(tmp_path)["a.mp4"].flow_bound is None  # was a TypeError
    for modality in ("flow", "rgb+flow"):
        with pytest.raises(ConfigError, match=r"store no flow \(extracted with --flow none\)"):
            ShardDataset(tmp_path, modality)
