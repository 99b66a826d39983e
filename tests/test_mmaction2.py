"""MMAction2 1.2 itself reads `flowkit export` output: its RawframeDataset with the pipelines of
the TSN configs it ships (RGB 1x1x3 and Flow 5x1x3; train, val, test) loads every item, and what
it loads is exactly what the shards hold, at the indices it chose (flow exported as PNG: the
stored uint8 flow). Its own register_all_modules() runs, and a TSN model built from each
shipped config takes a training step on the export.

Skipped unless MMAction2 is installed; it is not in the ``test`` extra. To run it (see
docs/interop.md), install it without its dependencies, which would replace flowkit's OpenCV::

    pip install --no-deps mmaction2==1.2.0 mmengine "mmcv-lite==2.1.0"
    pip install -e ".[mmaction]"      # addict, einops, rich, scipy, termcolor, yapf
    python -m pytest -q tests/test_mmaction2.py

The training tests also need what docs/interop.md gives for training (the files MMAction2
1.2.0's wheel leaves out, and torchvision built for the installed torch); they are skipped,
saying which is missing, where register_all_modules() fails for those reasons.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

mmaction = pytest.importorskip(
    "mmaction", reason="MMAction2 is not installed (pip install --no-deps mmaction2==1.2.0 "
    "mmengine 'mmcv-lite==2.1.0', then pip install -e '.[mmaction]'; see docs/interop.md)")

import torch  # noqa: E402
from mmaction.datasets import RawframeDataset  # noqa: E402
from mmaction.datasets.transforms import RawFrameDecode  # noqa: E402
from mmaction.registry import DATASETS, MODELS, TRANSFORMS  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.dataset import pseudo_collate  # noqa: E402
from mmengine.optim import OptimWrapper  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

from flowkit.cli.main import main  # noqa: E402
from flowkit.config import ExtractConfig  # noqa: E402
from flowkit.extract.inputs import collect_videos  # noqa: E402
from flowkit.extract.run import extract  # noqa: E402
from flowkit.store.manifest import MANIFEST_NAME, Manifest  # noqa: E402
from flowkit.store.reader import open_shards  # noqa: E402
from flowkit.store.writer import StorageConfig  # noqa: E402
from flowkit.video.decode import DecodeConfig  # noqa: E402
from flowkit.video.synth import SynthConfig, make_synthetic_videos  # noqa: E402

CONFIGS = Path(mmaction.__file__).parent / ".mim" / "configs" / "recognition" / "tsn"
RGB_CONFIG = CONFIGS / "tsn_imagenet-pretrained-r50_8xb32-1x1x3-100e_kinetics400-rgb.py"
FLOW_CONFIG = CONFIGS / "tsn_imagenet-pretrained-r50_8xb32_5x1x3-110e_kinetics400-flow.py"
SPLITS = ("train", "val", "test")
TRAIN_DRAWS = 5             # the train pipelines sample at random: each item is loaded this often


@pytest.fixture(scope="module", autouse=True)
def _mmaction_scope():
    init_default_scope("mmaction")
    np.random.seed(0)  # SampleFrames and the random crops and flips draw from numpy's global RNG


def _export(root: Path, num_frames: int, flow_dtype: str, flow_format: str):
    """Four 64x48 lossless synthetic videos (right, left, down, up) of ``num_frames`` frames,
    extracted with Farneback flow (RGB as JPEG, flow as ``flow_dtype``), then ``flowkit export
    --layout mmaction2 --flow-format FLOW_FORMAT``. Returns (shards, rawframes, truth by
    folder)."""
    make_synthetic_videos(root / "videos", SynthConfig(num_videos=4, num_frames=num_frames,
                                                       width=64, height=48, codec="ffv1"))
    config = ExtractConfig(decode=DecodeConfig(short_side=None), flow="farneback",
                           storage=StorageConfig(rgb="jpeg", flow_dtype=flow_dtype))
    report = extract(collect_videos([root / "videos" / "labels.txt"]), root / "shards", config,
                     workers=1, progress=False)
    assert report.all_ok
    result = CliRunner().invoke(main, ["export", str(root / "shards"), "--out",
                                       str(root / "rawframes"), "--layout", "mmaction2",
                                       "--flow-format", flow_format])
    assert result.exit_code == 0, result.output
    truth = {item["id"].rsplit(".", 1)[0]: item
             for item in json.loads((root / "videos" / "truth.json").read_text())}
    return root / "shards", root / "rawframes", truth


@pytest.fixture(scope="module", params=[5, 12], ids=["5_frames", "12_frames"])
def exported(request, tmp_path_factory):
    """Flow stored as JPEG, exported byte for byte (5 or 12 frames)."""
    return _export(tmp_path_factory.mktemp(f"mm_{request.param}"), request.param, "jpeg",
                   "jpeg")


@pytest.fixture(scope="module")
def exported_png(tmp_path_factory):
    """Flow stored as uint8 (the default), exported as lossless PNG (12 frames)."""
    return _export(tmp_path_factory.mktemp("mm_png"), 12, "uint8", "png")


@functools.lru_cache(maxsize=None)
def _pipelines(config_path: Path) -> dict[str, list[dict]]:
    """The train/val/test pipelines of a shipped config, video decoding (DecordInit +
    DecordDecode) replaced by RawFrameDecode as MMAction2's rawframe configs do."""
    cfg = Config.fromfile(str(config_path))
    pipelines = {}
    for split in SPLITS:
        steps = []
        for step in cfg[f"{split}_dataloader"]["dataset"]["pipeline"]:
            step = copy.deepcopy(dict(step))
            if step["type"] == "DecordInit":
                continue
            if step["type"] == "DecordDecode":
                # cv2 named, not left to MMAction2's default: the images compared are cv2's
                step = dict(type="RawFrameDecode", decoding_backend="cv2")
            steps.append(step)
        pipelines[split] = steps
    return pipelines


def _dataset(config_path: Path, split: str, rawframes: Path, modality: str,
             flow_tmpl: str | None = None) -> RawframeDataset:
    """MMAction2's RawframeDataset as the config's ``{split}_dataloader`` builds it, on the
    exported folder and the list for the modality (flow file names ``flow_tmpl`` instead of
    the config's, when given: "{}_{:05d}.png" for a PNG export)."""
    cfg = Config.fromfile(str(config_path))
    settings = cfg[f"{split}_dataloader"]["dataset"]
    kwargs = ({"filename_tmpl": flow_tmpl or settings["filename_tmpl"]} if modality == "Flow"
              else {})
    if modality == "Flow":
        assert settings["modality"] == "Flow" and settings["filename_tmpl"] == "{}_{:05d}.jpg"
    ann_file = rawframes / ("rawframes_list_flow.txt" if modality == "Flow"
                            else "rawframes_list.txt")
    return RawframeDataset(ann_file=str(ann_file),
                           pipeline=copy.deepcopy(_pipelines(config_path)[split]),
                           data_prefix={"img": str(rawframes)}, modality=modality,
                           test_mode=bool(settings.get("test_mode", False)), **kwargs)


def _run(dataset: RawframeDataset, index: int) -> tuple[dict, dict]:
    """Item ``index`` through every transform of the pipeline, as ``dataset[index]`` does;
    returns (what RawFrameDecode gave, the packed item)."""
    results = dataset.get_data_info(index)
    decoded = None
    for transform in dataset.pipeline.transforms:
        results = transform(results)
        assert results is not None, f"{type(transform).__name__} dropped item {index}"
        if isinstance(transform, RawFrameDecode):
            decoded = {"frame_inds": results["frame_inds"].copy(),
                       "imgs": [img.copy() for img in results["imgs"]]}
    assert decoded is not None
    return decoded, results


def _load_every_item(config_path: Path, split: str, exported, modality: str,
                     flow_tmpl: str | None = None) -> dict[str, dict]:
    """Build the dataset of the config's ``split`` and load every item (train items several
    times) through every transform, checking that counts and labels are the manifest's, that
    every index SampleFrames chose is a file of the list's range, that RawFrameDecode's images
    are the stored arrays (decoded RGB JPEG frames; uint8 quantised flow planes, x and y) at
    file index - 1, and the packed shape and label. Returns the last decode by folder."""
    shards, rawframes, _ = exported
    dataset = _dataset(config_path, split, rawframes, modality, flow_tmpl)
    sample = next(s for s in dataset.pipeline.transforms if type(s).__name__ == "SampleFrames")
    crops = 10 if any(step["type"] == "TenCrop" for step in _pipelines(config_path)[split]) else 1
    if modality == "Flow":  # FormatShape NCHW stacks a clip's x/y planes as channels
        shape = (sample.num_clips * crops, 2 * sample.clip_len, 224, 224)
    else:
        shape = (sample.num_clips * crops * sample.clip_len, 3, 224, 224)
    manifest = {entry.video_id.rsplit(".", 1)[0]: entry
                for entry in Manifest.read(shards / MANIFEST_NAME)}
    assert len(dataset) == len(manifest) == 4
    last = {}
    with open_shards(shards) as reader:
        for index in range(len(dataset)):
            info = dataset.get_data_info(index)
            folder = Path(info["frame_dir"]).relative_to(rawframes).as_posix()
            entry = manifest[folder]
            video = reader[entry.video_id]
            if modality == "Flow":
                count, stored = entry.num_flows, video.flows.quantized(slice(None))
                assert count == entry.num_frames - 1
            else:
                count, stored = entry.num_frames, video.frames
            assert (info["total_frames"], info["label"]) == (count, entry.label)
            for _ in range(TRAIN_DRAWS if split == "train" else 1):
                decoded, packed = _run(dataset, index)
                inds = decoded["frame_inds"]
                assert len(inds) == sample.num_clips * sample.clip_len
                assert inds.min() >= 1 and inds.max() <= count
                for file_index, image in zip(inds, decoded["imgs"]):
                    assert image.dtype == np.uint8
                    np.testing.assert_array_equal(image, stored[int(file_index) - 1])
                assert tuple(packed["inputs"].shape) == shape
                assert packed["data_samples"].gt_label.item() == entry.label
            item = dataset[index]  # the ordinary path a DataLoader takes
            assert item["data_samples"].gt_label.item() == entry.label
            last[folder] = decoded
    return last


@pytest.mark.parametrize("split", SPLITS)
def test_rgb_pipelines_load_the_stored_frames(exported, split):
    """RGB TSN 1x1x3 pipelines (clip_len 1; train 3 random clips, val 3, test 25 with TenCrop)
    on rawframes_list.txt: counts and labels are the manifest's, every item runs through every
    transform, and RawFrameDecode's images are the shards' decoded JPEG frames, pixel for pixel,
    at the indices SampleFrames chose (1-based files, 0-based flowkit frames)."""
    _load_every_item(RGB_CONFIG, split, exported, "RGB")


@pytest.mark.parametrize("split", SPLITS)
def test_flow_pipelines_load_the_stored_quantised_flow(exported, split):
    """Flow TSN 5x1x3 pipelines (modality Flow, '{}_{:05d}.jpg', clip_len 5; train, val, test
    with 25 clips) on rawframes_list_flow.txt: counts are the manifest's num_flows, every index
    names a file that is there, and the x/y planes RawFrameDecode loads are the stored uint8
    quantised flow (128 = zero) of flowkit flow index-1: a rightward video has x above 128."""
    shards, _, truth = exported
    with open_shards(shards) as reader:
        assert reader.shard_attrs(reader[reader.videos[0]].entry.shard)["flow_dtype"] == "jpeg"
    decoded = _load_every_item(FLOW_CONFIG, split, exported, "Flow")
    assert set(decoded) == set(truth)
    for folder, last in decoded.items():
        # Sign: the flow points the way the content moves, x right and y down, around 128.
        image, motion = last["imgs"][0], truth[folder]
        for axis, true in ((0, motion["dx"]), (1, motion["dy"])):
            median = float(np.median(image[..., axis][4:-4, 4:-4]))
            if true > 0:
                assert median > 128, (folder, axis, median)
            elif true < 0:
                assert median < 128, (folder, axis, median)
            else:
                assert abs(median - 128) <= 2, (folder, axis, median)


def test_mmaction2_is_the_release_the_docs_name():
    """The pipelines above are those of MMAction2 1.2.0's shipped TSN configs."""
    assert mmaction.__version__ == "1.2.0"
    assert RGB_CONFIG.is_file() and FLOW_CONFIG.is_file()
    for config, clip_len in ((RGB_CONFIG, 1), (FLOW_CONFIG, 5)):
        sampling = [next(step for step in _pipelines(config)[split]
                         if step["type"] == "SampleFrames") for split in SPLITS]
        assert [(step["clip_len"], step["num_clips"], step.get("test_mode", False))
                for step in sampling] == [(clip_len, 3, False), (clip_len, 3, True),
                                          (clip_len, 25, True)]
        assert [step["type"] for step in _pipelines(config)["test"]][-4:] == [
            "Resize", "TenCrop", "FormatShape", "PackActionInputs"]
    assert TRANSFORMS.get("RawFrameDecode") is RawFrameDecode


@pytest.mark.parametrize("split", SPLITS)
def test_flow_pipelines_read_a_png_export_as_the_stored_uint8_flow(exported_png, split):
    """Flow TSN 5x1x3 pipelines with filename_tmpl '{}_{:05d}.png' on a --flow-format png
    export of uint8-stored flow: every x/y plane RawFrameDecode loads is the stored uint8 flow
    exactly (a JPEG export moves some values by several steps)."""
    shards, _, _ = exported_png
    with open_shards(shards) as reader:
        assert reader.shard_attrs(reader[reader.videos[0]].entry.shard)["flow_dtype"] == "uint8"
    _load_every_item(FLOW_CONFIG, split, exported_png, "Flow", flow_tmpl="{}_{:05d}.png")


def _register_all_modules() -> None:
    """MMAction2's own ``register_all_modules()``, as its training scripts call it. einops
    missing fails (the mmaction extra provides it); the two gaps docs/interop.md fixes for
    training (the model files 1.2.0's wheel leaves out, torchvision for the installed torch)
    skip, naming which."""
    from mmaction.utils import register_all_modules

    try:
        register_all_modules(init_default_scope=True)
    except ModuleNotFoundError as exc:
        if exc.name == "einops":
            pytest.fail("einops is missing: pip install -e '.[mmaction]' (setup.cfg's extra)")
        if exc.name == "mmaction.models.localizers.drn":
            pytest.skip("MMAction2 1.2.0's wheel lacks mmaction/models/localizers/drn "
                        "(open-mmlab/mmaction2#2714): copy it in, see docs/interop.md")
        if exc.name == "torchvision":
            pytest.skip("MMAction2's models import torchvision, not installed: see "
                        "docs/interop.md")
        raise
    except RuntimeError as exc:
        if "torchvision::" not in str(exc):
            raise
        pytest.skip(f"torchvision does not load with this torch ({exc}): install the build "
                    "for it, see docs/interop.md")


def test_register_all_modules_registers_what_tsn_training_builds():
    """register_all_modules() imports every MMAction2 module (models, datasets, evaluation,
    engine, visualization) with the mmaction extra installed, and registers the TSN parts."""
    _register_all_modules()
    for name in ("Recognizer2D", "ResNet", "TSNHead", "ActionDataPreprocessor"):
        assert MODELS.get(name) is not None, name
    assert DATASETS.get("RawframeDataset") is RawframeDataset
    assert TRANSFORMS.get("RawFrameDecode") is RawFrameDecode


@pytest.mark.slow
@pytest.mark.parametrize("exported", [12], indirect=True, ids=["12_frames"])
@pytest.mark.parametrize("modality, flow_format", [("RGB", "jpeg"), ("Flow", "jpeg"),
                                                   ("Flow", "png")])
def test_a_shipped_tsn_config_trains_a_step_on_the_export(exported, exported_png, modality,
                                                          flow_format):
    """The TSN model of the shipped RGB / Flow config (ResNet-50, no download: pretrained
    off) and its train dataset on our export (RGB: RawframeDataset instead of VideoDataset,
    the edit docs/interop.md gives; PNG: filename_tmpl '{}_{:05d}.png') take one SGD step
    through MMAction2's own train_step: a finite loss, changed weights, and 400 class scores
    per video from test_step on the val pipeline."""
    _register_all_modules()
    config_path = RGB_CONFIG if modality == "RGB" else FLOW_CONFIG
    _, rawframes, _ = exported_png if flow_format == "png" else exported
    cfg = Config.fromfile(str(config_path))
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.pretrained = None
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    flow_list = modality == "Flow"
    settings = dict(type="RawframeDataset", data_prefix=dict(img=str(rawframes)),
                    ann_file=str(rawframes / ("rawframes_list_flow.txt" if flow_list
                                              else "rawframes_list.txt")),
                    modality=modality)
    if flow_list:
        settings["filename_tmpl"] = f"{{}}_{{:05d}}.{'png' if flow_format == 'png' else 'jpg'}"
    train = DATASETS.build(dict(settings, pipeline=_pipelines(config_path)["train"]))
    val = DATASETS.build(dict(settings, pipeline=_pipelines(config_path)["val"],
                              test_mode=True))
    batch = pseudo_collate([train[0], train[1]])
    optimizer = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9))
    before = model.cls_head.fc_cls.weight.detach().clone()
    model.train()
    losses = model.train_step(batch, optimizer)
    assert torch.isfinite(losses["loss"]) and losses["loss"].item() > 0
    assert not torch.equal(before, model.cls_head.fc_cls.weight)
    model.eval()
    predictions = model.test_step(pseudo_collate([val[0], val[1]]))
    assert [p.pred_score.shape for p in predictions] == [torch.Size([400])] * 2
    assert [p.gt_label.item() for p in predictions] == [val.get_data_info(i)["label"]
                                                        for i in (0, 1)]
