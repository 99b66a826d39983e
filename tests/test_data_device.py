"""uint8 items (quantized_flow) and normalize_batch: the tensors a CPU Normalize would give."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, default_collate

from flowkit.data import normalize_batch
from flowkit.data.dataset import ShardDataset
from flowkit.data.sampling import ClipSampler, SegmentSampler
from flowkit.data.transforms import (Normalize, clip_train_transform, tsn_test_transform,
                                     tsn_train_transform)
from flowkit.errors import ConfigError
from flowkit.store.manifest import MANIFEST_NAME, OK, Manifest, ManifestEntry
from flowkit.store.writer import ShardWriter, StorageConfig

H, W, BOUND = 40, 52, 15.3  # a bound float32 cannot hold exactly

# two segments of three-flow stacks (6 flow channels)
SEGMENTS = SegmentSampler(num_segments=2, flow_length=3)


def _write_videos(root, flow_dtype="uint8", lengths=(14, 9, 12)):
    """Random RGB frames and smooth random flow within +-BOUND, stored quantised."""
    rng = np.random.default_rng(0)
    storage = StorageConfig(rgb="raw", flow_dtype=flow_dtype, bound=BOUND)
    entries = []
    with ShardWriter(root / "shard-00000.h5", storage, {}) as shard:
        for number, length in enumerate(lengths):
            video_id = f"c{number}/v{number}.mp4"
            with shard.video(video_id, {"bound": BOUND, "step": 1}) as video:
                for _ in range(length):
                    video.append_frame(rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
                y, x = np.mgrid[0:H, 0:W]
                for t in range(length - 1):
                    flow = np.stack([np.sin(x / 7 + t) * 9, np.cos(y / 5 - t) * 6], -1)
                    video.append_flow(flow.astype(np.float32))
                video.finish({"height": H, "width": W})
            entries.append(ManifestEntry(video_id, "/x", number, "shard-00000.h5", OK, length,
                                         length - 1))
    Manifest(entries).write(root / MANIFEST_NAME)
    return root


@pytest.fixture
def quantized_root(tmp_path):
    return _write_videos(tmp_path)


def _batch(dataset, size=3):
    return default_collate([dataset[i] for i in range(size)])


def test_quantized_items_are_uint8_with_bound_and_scale(quantized_root):
    dataset = ShardDataset(quantized_root, "rgb+flow", SEGMENTS,
                           transform=tsn_train_transform(32, normalize=None),
                           quantized_flow=True)
    item = dataset[0]
    assert item["rgb"].dtype == torch.uint8 and item["rgb"].shape == (2, 3, 32, 32)
    assert item["flow"].dtype == torch.uint8 and item["flow"].shape == (2, 6, 32, 32)
    assert item["flow_bound"].dtype == torch.float64 and float(item["flow_bound"]) == BOUND
    crop_sides = (40, 35, 32, 26)  # TSN scales of the 40 px short side (30 snaps to 32)
    factors = {float(np.float32(32 / side)) for side in crop_sides}
    assert item["flow_scale"].shape == (2,) and set(item["flow_scale"].tolist()) <= factors


def test_normalize_batch_equals_cpu_normalize_bit_for_bit(quantized_root):
    """The same quantised items, normalised by Normalize in the Dataset or by normalize_batch
    after collation: identical tensors (same float32 operations), for pixels and bound."""
    for normalize in (Normalize(), Normalize(flow="bound", bound=12.0)):
        staged = ShardDataset(quantized_root, "rgb+flow", SEGMENTS,
                              transform=tsn_train_transform(32, normalize=None),
                              quantized_flow=True)
        finished = ShardDataset(quantized_root, "rgb+flow", SEGMENTS,
                                transform=tsn_train_transform(32, normalize=normalize),
                                quantized_flow=True)
        got = normalize_batch(_batch(staged), "cpu", normalize)
        expected = _batch(finished)
        assert "flow_bound" not in got and "flow_scale" not in got
        assert torch.equal(got["rgb"], expected["rgb"])
        assert torch.equal(got["flow"], expected["flow"])
        assert got["rgb"].dtype == got["flow"].dtype == torch.float32


def test_quantized_pipeline_is_within_a_step_of_the_float_pipeline(quantized_root):
    """Same draws as the float pipeline; RGB identical, flow within one step (2B/255) times the
    resize factor, the rounding of uint8 interpolation."""
    for sampler, transform, clips in (
            (SEGMENTS, tsn_train_transform, False),
            (SegmentSampler(num_segments=2, train=False, flow_length=3),
             lambda size, **kw: tsn_test_transform(size, crops=3, **kw), False),
            (ClipSampler(clip_len=4), clip_train_transform, True)):
        fast = ShardDataset(quantized_root, "rgb+flow", sampler,
                            transform=transform(32, normalize=None), quantized_flow=True)
        slow = ShardDataset(quantized_root, "rgb+flow", sampler,
                            transform=transform(32))
        batch = _batch(fast)
        got, expected = normalize_batch(batch, "cpu", clips=clips), _batch(slow)
        assert torch.equal(got["rgb"], expected["rgb"])
        assert torch.equal(got["frame_indices"], expected["frame_indices"])
        limit = float(batch["flow_scale"].max()) * 2 * BOUND / 255 + 1e-5
        assert (got["flow"] - expected["flow"]).abs().max() <= limit


def test_quantized_flow_through_dataloader_workers(quantized_root):
    """uint8 items cross worker processes like float ones: the same batches as 0 workers."""
    dataset = ShardDataset(quantized_root, "flow", SEGMENTS,
                           transform=tsn_train_transform(32, normalize=None),
                           quantized_flow=True)
    batches = [[b["flow"] for b in DataLoader(dataset, batch_size=2, num_workers=workers)]
               for workers in (0, 2)]
    assert all(torch.equal(a, b) for a, b in zip(*batches))


def test_float16_storage_has_no_quantised_form(tmp_path):
    root = _write_videos(tmp_path, flow_dtype="float16")
    dataset = ShardDataset(root, "flow", SegmentSampler(), quantized_flow=True)
    with pytest.raises(ConfigError, match="float16"):
        dataset[0]


def test_normalize_batch_refuses_wrong_layout_and_missing_bound(quantized_root):
    dataset = ShardDataset(quantized_root, "rgb+flow", ClipSampler(clip_len=4),
                           transform=clip_train_transform(32, normalize=None),
                           quantized_flow=True)
    batch = _batch(dataset)
    with pytest.raises(ConfigError, match="clips=True"):
        normalize_batch(batch, "cpu")  # clip batches have channels on axis -4
    del batch["flow_bound"]
    with pytest.raises(ConfigError, match="quantized_flow=True"):
        normalize_batch(batch, "cpu", clips=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_normalize_batch_on_cuda_matches_cpu(quantized_root):
    dataset = ShardDataset(quantized_root, "rgb+flow", SEGMENTS,
                           transform=tsn_train_transform(32, normalize=None),
                           quantized_flow=True)
    batch = _batch(dataset)
    cpu, cuda = normalize_batch(batch, "cpu"), normalize_batch(batch, "cuda")
    assert cuda["flow"].device.type == "cuda"
    torch.testing.assert_close(cuda["rgb"].cpu(), cpu["rgb"], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(cuda["flow"].cpu(), cpu["flow"], rtol=1e-6, atol=1e-5)
