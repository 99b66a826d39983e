"""Models of stddcn: registry, torchvision-exact backbones, pretrained weights, fusion, modes.

Everything runs on random tensors at tiny size (resnet-tiny, r3d-tiny, 32x32, T=4).
"""

from __future__ import annotations

import functools
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stddcn.errors import ModelError
from stddcn.models import (ActionModel, ModelConfig, Output, TwoStream, create_backbone,
                           create_model, inflate_2d_weights, list_archs, list_models,
                           load_pretrained_2d, use_channels_last)
from stddcn.models.heads import ClassifierHead, average_views
from stddcn.models.tuning import BATCH_NORMS

B, V, K, T, SIZE, L = 2, 3, 5, 4, 32, 2

TORCHVISION_PARAMS = {  # torchvision's num_params, with its own classifier
    "resnet18": (1000, 11_689_512),
    "resnet34": (1000, 21_797_672),
    "resnet50": (1000, 25_557_032),
    "r2plus1d-18": (400, 31_505_325),
    "r3d-18": (400, 33_371_472),
}


def tiny_model(name: str, **overrides) -> ActionModel:
    """Family ``name`` at test size: resnet-tiny if it takes 2D archs, else r3d-tiny."""
    settings = dict(num_classes=K, flow_length=L, **overrides)
    try:
        return create_model(name, arch="resnet-tiny", **settings)
    except ModelError as exc:
        if not str(exc).startswith("unknown 3D arch"):
            raise
        return create_model(name, arch="r3d-tiny", **settings)


def inputs_for(model: ActionModel, batch: int = B, views: int = V) -> dict[str, torch.Tensor]:
    """Random inputs of the shapes ``model`` documents, for each modality it reads."""
    out = {}
    for modality in model.modalities:
        if model.layout == "segments":
            channels = 3 if modality == "rgb" else 2 * model.flow_length
            out[modality] = torch.randn(batch, views, channels, SIZE, SIZE)
        else:
            channels = 3 if modality == "rgb" else 2
            out[modality] = torch.randn(batch, views, channels, T, SIZE, SIZE)
    return out


def family_of(arch: str) -> str:
    return "rgb" if arch in list_archs("2d") else "rgb3d"


@functools.lru_cache(maxsize=None)
def built_backbone(arch: str) -> nn.Module:
    """One backbone per arch, shared by read-only tests (building the big ones takes time)."""
    return create_backbone(arch).eval()


def randomise_bn(module: nn.Module) -> None:
    """Non-trivial BN statistics and affine parameters, so copying them is tested."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, BATCH_NORMS):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)


def torchvision_state(arch: str, **kw) -> dict[str, torch.Tensor]:
    """A torchvision-format state dict of ``arch``: the backbone's keys plus an ``fc``."""
    backbone = create_backbone(arch, **kw)
    randomise_bn(backbone)
    state = dict(backbone.state_dict())
    state["fc.weight"] = torch.randn(1000, backbone.feature_dim)
    state["fc.bias"] = torch.randn(1000)
    return state


# --- every registered model -----------------------------------------------------------------

@pytest.mark.parametrize("name", list_models())
def test_model_forward_backward(name):
    """Every family gives finite (B, K) logits, and the loss of its prediction and every head
    gives gradients on every trainable parameter (a distilled network's students included)."""
    torch.manual_seed(0)
    model = tiny_model(name)
    out = model(inputs_for(model))
    assert isinstance(out, Output)
    assert out.logits.shape == (B, K) and torch.isfinite(out.logits).all()
    if name == "two-stream":
        assert set(out.heads) == {"rgb", "flow"}
        assert all(h.shape == (B, K) for h in out.heads.values())
    labels = torch.tensor([0, 3])
    loss = F.cross_entropy(out.logits, labels)
    (loss + sum(F.cross_entropy(h, labels) for h in out.heads.values())).backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None, f"no gradient on {pname}"
        assert torch.isfinite(param.grad).all(), pname


@pytest.mark.parametrize("name", list_models())
def test_model_attributes(name):
    """Families declare modalities, layout and flow_length as the base interface says."""
    model = tiny_model(name)
    assert model.layout in ("segments", "clips")
    assert set(model.modalities) <= {"rgb", "flow"}
    expects_stack = "flow" in model.modalities and model.layout == "segments"
    assert model.flow_length == (L if expects_stack else None)


def test_default_archs():
    """Without an arch, 2D families build resnet50 and 3D ones r2plus1d-18."""
    assert create_model("rgb").backbone.arch == "resnet50"
    assert create_model("rgb3d", width_mult=0.25).backbone.arch == "r2plus1d-18"


def test_config_and_overrides_build_the_same():
    """create_model(name, **fields) equals create_model(ModelConfig(...)) and overrides apply."""
    a = create_model("flow", arch="resnet-tiny", flow_length=3)
    b = create_model(ModelConfig(name="flow", arch="resnet-tiny"), flow_length=3)
    assert a.flow_length == b.flow_length == 3 and a.in_channels == b.in_channels == 6


# --- backbones --------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", list_archs())
def test_arch_runs_and_matches_torchvision(arch):
    """Every arch gives (N, feature_dim) features; counts equal torchvision's with its fc."""
    backbone = built_backbone(arch)
    x = torch.randn(1, 3, SIZE, SIZE) if arch in list_archs("2d") else \
        torch.randn(1, 3, T, SIZE, SIZE)
    with torch.no_grad():
        features = backbone(x)
    assert features.shape == (1, backbone.feature_dim)
    params = sum(p.numel() for p in backbone.parameters())
    if arch in TORCHVISION_PARAMS:
        classes, expected = TORCHVISION_PARAMS[arch]
        head = ClassifierHead(backbone.feature_dim, classes)
        assert params + sum(p.numel() for p in head.parameters()) == expected


def test_tiny_archs_are_tiny():
    """resnet-tiny has a few hundred thousand parameters at most; r3d-tiny under a million."""
    assert sum(p.numel() for p in built_backbone("resnet-tiny").parameters()) < 400_000
    assert sum(p.numel() for p in built_backbone("r3d-tiny").parameters()) < 1_000_000


def test_width_mult_and_in_channels():
    """width_mult scales every width (rounded); in_channels sets the first conv's inputs."""
    half = create_backbone("resnet-tiny", in_channels=10, width_mult=0.5)
    assert half.conv1.weight.shape == (8, 10, 7, 7) and half.feature_dim == 64
    video = create_backbone("r2plus1d-18", in_channels=2, width_mult=0.25)
    assert video.stem[0].weight.shape == (11, 2, 1, 7, 7) and video.feature_dim == 128


def test_resnet2d_state_dict_names():
    """2D keys are torchvision's: conv1, bn1, layerN.M.convJ/bnJ, downsample.0/1; no fc."""
    keys = built_backbone("resnet18").state_dict().keys()
    for key in ("conv1.weight", "bn1.running_var", "layer1.0.conv2.weight",
                "layer2.0.downsample.0.weight", "layer2.0.downsample.1.num_batches_tracked",
                "layer4.1.bn2.bias"):
        assert key in keys
    assert not any(k.startswith("fc.") for k in keys)
    assert built_backbone("resnet50").state_dict()["layer1.0.conv3.weight"].shape == \
        (256, 64, 1, 1)


def test_resnet3d_state_dict_names():
    """Video keys are torchvision's: stem.N, layerN.M.conv1.0.0 (2+1D), conv1.0 (3D), ..."""
    state = built_backbone("r2plus1d-18").state_dict()
    assert state["stem.0.weight"].shape == (45, 3, 1, 7, 7)
    assert state["stem.3.weight"].shape == (64, 45, 3, 1, 1)
    assert state["layer1.0.conv1.0.0.weight"].shape == (144, 64, 1, 3, 3)
    assert state["layer1.0.conv1.0.3.weight"].shape == (64, 144, 3, 1, 1)
    for key in ("layer1.0.conv1.0.1.running_mean", "layer1.0.conv1.1.weight",
                "layer1.0.conv2.1.bias", "layer2.0.downsample.0.weight",
                "layer2.0.downsample.1.running_var"):
        assert key in state
    r3d = built_backbone("r3d-18").state_dict()
    assert r3d["stem.0.weight"].shape == (64, 3, 3, 7, 7)
    assert r3d["layer1.0.conv1.0.weight"].shape == (64, 64, 3, 3, 3)
    assert r3d["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1, 1)


# --- pretrained 2D weights ----------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["resnet-tiny", "resnet18"])
def test_pretrained_rgb_loads_exactly(tmp_path, arch):
    """An rgb model built with a torchvision-format file holds exactly its weights (fc dropped)."""
    state = torchvision_state(arch)
    torch.save(state, tmp_path / "imagenet.pth")
    model = create_model("rgb", arch=arch, num_classes=K, pretrained=str(tmp_path / "imagenet.pth"))
    loaded = model.backbone.state_dict()
    assert set(loaded) == set(state) - {"fc.weight", "fc.bias"}
    assert all(torch.equal(loaded[k], state[k]) for k in loaded)


def test_pretrained_flow_cross_modality(tmp_path):
    """A flow model's conv1 is the RGB filters' mean replicated 2L times; the rest is equal."""
    state = torchvision_state("resnet-tiny")
    torch.save(state, tmp_path / "imagenet.pth")
    model = create_model("flow", arch="resnet-tiny", flow_length=5,
                         pretrained=str(tmp_path / "imagenet.pth"))
    loaded = model.backbone.state_dict()
    conv1 = loaded["conv1.weight"]
    assert conv1.shape == (16, 10, 7, 7)
    mean = state["conv1.weight"].mean(dim=1)
    assert all(torch.allclose(conv1[:, c], mean) for c in range(10))
    assert all(torch.equal(loaded[k], state[k]) for k in loaded if k != "conv1.weight")


def test_pretrained_bad_files(tmp_path):
    """Missing, non-state-dict and mismatched files raise ModelError naming the file."""
    missing = tmp_path / "missing.pth"
    with pytest.raises(ModelError, match="missing.pth"):
        create_model("rgb", arch="resnet-tiny", pretrained=str(missing))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="garbage.pth"):
        create_model("rgb", arch="resnet-tiny", pretrained=str(garbage))
    tensor = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(ModelError, match="tensor.pth.*not a state dict"):
        create_model("rgb", arch="resnet-tiny", pretrained=str(tensor))
    other = tmp_path / "wide.pth"
    torch.save(torchvision_state("resnet-tiny", width_mult=2.0), other)
    with pytest.raises(ModelError, match=r"wide.pth do not fit resnet-tiny: shapes.*"
                                         r"looks like resnet-tiny with width_mult 2"):
        create_model("rgb", arch="resnet-tiny", pretrained=str(other))


def test_pretrained_other_depth_names_keys_and_arch(tmp_path):
    """Weights of another depth name the keys that differ and the arch the file fits."""
    path = tmp_path / "imagenet.pth"
    torch.save(torchvision_state("resnet18"), path)
    with pytest.raises(ModelError, match=r"imagenet.pth do not fit resnet-tiny: unexpected keys "
                                         r"layer1.1.*\(the file looks like resnet18\)"):
        load_pretrained_2d(create_backbone("resnet-tiny"), str(path))
    state = torchvision_state("resnet-tiny")
    del state["layer3.0.bn2.running_mean"]
    with pytest.raises(ModelError, match="the given state dict.*missing keys layer3.0.bn2"):
        load_pretrained_2d(create_backbone("resnet-tiny"), state)


# --- inflation into 3D ----------------------------------------------------------------------

def inflated_pair() -> tuple[nn.Module, nn.Module]:
    """A random resnet-tiny (with non-trivial BN) and r3d-tiny inflated from it, in eval mode."""
    torch.manual_seed(0)
    net2d = create_backbone("resnet-tiny")
    randomise_bn(net2d)
    net3d = inflate_2d_weights(create_backbone("r3d-tiny"), net2d.state_dict())
    return net2d.eval(), net3d.eval()


def test_inflation_spreads_filters_over_time():
    """Each inflated filter is the 2D one repeated over t and divided by t; BN is copied."""
    net2d, net3d = inflated_pair()
    w2d, w3d = net2d.state_dict(), net3d.state_dict()
    assert torch.allclose(w3d["stem.0.weight"], w2d["conv1.weight"].unsqueeze(2).expand(
        -1, -1, 3, -1, -1) / 3)
    assert torch.allclose(w3d["layer2.0.conv2.0.weight"].sum(dim=2), w2d["layer2.0.conv2.weight"])
    assert torch.equal(w3d["layer3.0.conv1.1.running_var"], w2d["layer3.0.bn1.running_var"])
    assert torch.allclose(w3d["layer4.0.downsample.0.weight"][:, :, 0],
                          w2d["layer4.0.downsample.0.weight"])


def test_inflated_stem_matches_2d_on_static_clip():
    """On a clip of one repeated frame, the inflated stem's inner time steps equal the 2D stem."""
    net2d, net3d = inflated_pair()
    frame = torch.randn(2, 3, SIZE, SIZE)
    clip = frame.unsqueeze(2).expand(-1, -1, T, -1, -1)
    with torch.no_grad():
        stem2d = net2d.relu(net2d.bn1(net2d.conv1(frame)))
        stem3d = net3d.stem(clip)
    for t in range(1, T - 1):  # the first and last frame see the temporal zero padding
        assert torch.allclose(stem3d[:, :, t], stem2d, atol=1e-5)
    assert not torch.allclose(stem3d[:, :, 0], stem2d, atol=1e-5)


def test_inflated_network_matches_2d_on_static_clip():
    """With padding that makes clip ends ordinary frames, inflated features equal the 2D ones.

    Circular padding in both nets stands for an endless static clip (temporal zero padding would
    dim the clip's first and last frames); the 2D net skips its max pool, which the video stem
    lacks. Everything else, BN statistics included, is what inflation produced.
    """
    net2d, net3d = inflated_pair()
    for net in (net2d, net3d):
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Conv3d)):
                m.padding_mode = "circular"
    net2d.maxpool = nn.Identity()
    frame = torch.randn(2, 3, SIZE, SIZE)
    clip = frame.unsqueeze(2).expand(-1, -1, 8, -1, -1).contiguous()
    with torch.no_grad():
        features2d, features3d = net2d(frame), net3d(clip)
    assert features2d.abs().max() > 0.1
    assert torch.allclose(features3d, features2d, rtol=1e-4, atol=1e-5)


def test_inflation_flow_and_r2plus1d(tmp_path):
    """flow3d inflates with cross-modality init; r2plus1d-18 refuses 2D weights, loads video."""
    state = torchvision_state("resnet-tiny")
    torch.save(state, tmp_path / "imagenet.pth")
    model = create_model("flow3d", arch="r3d-tiny", pretrained=str(tmp_path / "imagenet.pth"))
    stem = model.backbone.stem[0].weight
    expected = state["conv1.weight"].mean(dim=1, keepdim=True) / 3
    assert stem.shape == (16, 2, 3, 7, 7) and torch.allclose(stem[:, 1:, 2], expected)
    with pytest.raises(ModelError, match="inflation needs an r3d arch"):
        create_model("rgb3d", arch="r2plus1d-18", width_mult=0.25,
                     pretrained=str(tmp_path / "imagenet.pth"))
    video = torchvision_state("r2plus1d-18", width_mult=0.25)
    torch.save(video, tmp_path / "kinetics.pth")
    model = create_model("rgb3d", arch="r2plus1d-18", width_mult=0.25,
                         pretrained=str(tmp_path / "kinetics.pth"))
    loaded = model.backbone.state_dict()
    assert all(torch.equal(loaded[k], video[k]) for k in loaded)


# --- training modes ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["rgb", "rgb3d", "two-stream"])
def test_partial_bn(name):
    """Training with partial BN updates only each backbone's first BN; the others stay frozen."""
    model = tiny_model(name, partial_bn=True).train()
    backbones = [m.backbone for m in model.modules() if hasattr(m, "backbone")]
    norms = [[m for m in b.modules() if isinstance(m, BATCH_NORMS)] for b in backbones]
    before = [[n.running_mean.clone() for n in group] for group in norms]
    model(inputs_for(model))
    for group, saved in zip(norms, before):
        first, rest = group[0], group[1:]
        assert first.training and first.weight.requires_grad
        assert not torch.equal(first.running_mean, saved[0])
        for norm, mean in zip(rest, saved[1:]):
            assert not norm.training and not norm.weight.requires_grad
            assert not norm.bias.requires_grad and torch.equal(norm.running_mean, mean)
    for stream in model.modules():
        if hasattr(stream, "partial_bn"):
            stream.partial_bn = False
    model.train()
    assert all(n.training and n.weight.requires_grad for group in norms for n in group)


@pytest.mark.parametrize("name", ["rgb", "rgb3d", "two-stream"])
def test_channels_last_same_outputs(name):
    """use_channels_last changes the memory format of weights and inputs, not the outputs."""
    torch.manual_seed(0)
    model = tiny_model(name).eval()
    inputs = inputs_for(model)
    with torch.no_grad():
        reference = model(inputs).logits
        use_channels_last(model)
        converted = model(inputs).logits
    conv = next(m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d)))
    fmt = torch.channels_last if conv.weight.ndim == 4 else torch.channels_last_3d
    assert conv.weight.is_contiguous(memory_format=fmt)
    assert torch.allclose(converted, reference, rtol=1e-4, atol=1e-5)
    use_channels_last(model, enabled=False)
    assert conv.weight.is_contiguous()


# --- fusion -----------------------------------------------------------------------------------

class FixedLogits(ActionModel):
    """A stream that returns given logits, to check fusion arithmetic."""

    def __init__(self, modality: str, logits: torch.Tensor, layout: str = "segments") -> None:
        super().__init__()
        self.modalities, self.layout, self.logits = (modality,), layout, logits

    def forward(self, inputs):
        return Output(logits=self.logits)


def test_two_stream_fusion_weights():
    """Fused probabilities are (1 softmax(rgb) + 1.5 softmax(flow)) / 2.5, heads per stream."""
    rgb, flow = torch.randn(B, K), torch.randn(B, K) * 5
    model = TwoStream({"rgb": FixedLogits("rgb", rgb), "flow": FixedLogits("flow", flow)},
                      (1.0, 1.5))
    out = model({"rgb": torch.zeros(B, 1, 3, 4, 4), "flow": torch.zeros(B, 1, 4, 4, 4)})
    expected = (1.0 * rgb.softmax(-1) + 1.5 * flow.softmax(-1)) / 2.5
    assert torch.allclose(out.logits.softmax(-1), expected, atol=1e-6)
    assert torch.allclose(out.logits.exp().sum(-1), torch.ones(B))
    assert torch.equal(out.head("rgb"), rgb) and torch.equal(out.head("flow"), flow)
    extreme = TwoStream({"rgb": FixedLogits("rgb", torch.tensor([[1000.0, 0.0]])),
                         "flow": FixedLogits("flow", torch.tensor([[1000.0, 0.0]]))}, (1, 1))
    assert torch.isfinite(extreme({"rgb": torch.zeros(1, 1, 3, 4, 4),
                                   "flow": torch.zeros(1, 1, 4, 4, 4)}).logits).all()


def test_two_stream_loads_separate_streams():
    """Separately trained rgb and flow state dicts load into the two-stream's streams."""
    torch.manual_seed(0)
    rgb, flow = tiny_model("rgb").eval(), tiny_model("flow").eval()
    model = tiny_model("two-stream").eval()
    model.streams["rgb"].load_state_dict(rgb.state_dict())
    model.streams["flow"].load_state_dict(flow.state_dict())
    inputs = inputs_for(model)
    with torch.no_grad():
        out = model(inputs)
        assert torch.allclose(out.heads["rgb"], rgb(inputs).logits)
        assert torch.allclose(out.heads["flow"], flow(inputs).logits)
    assert model.weights == (1.0, 1.5) and model.flow_length == L


def test_two_stream_rejects_bad_streams():
    """Streams of different layouts, or weights not one per stream, raise ModelError."""
    a, b = FixedLogits("rgb", torch.zeros(1, 2)), FixedLogits("flow", torch.zeros(1, 2), "clips")
    with pytest.raises(ModelError, match="share a layout"):
        TwoStream({"rgb": a, "flow": b}, (1, 1))
    with pytest.raises(ModelError, match="one per stream"):
        tiny_model("two-stream", fusion_weights=(1.0,))


# --- heads -----------------------------------------------------------------------------------

def test_head_init_and_consensus():
    """The head starts as TSN's (std 0.001, bias 0); average_views means over views."""
    head = ClassifierHead(2048, 101, dropout=0.8)
    assert head.fc.weight.std().item() == pytest.approx(0.001, rel=0.05)
    assert torch.equal(head.fc.bias, torch.zeros(101))
    logits = torch.arange(12.0).view(6, 2)
    assert torch.equal(average_views(logits, 2, 3), torch.tensor([[2.0, 3.0], [8.0, 9.0]]))
    with pytest.raises(ModelError, match=r"\(8, K\).*got \(6, 2\)"):
        average_views(logits, 2, 4)


# --- errors ----------------------------------------------------------------------------------

def test_unknown_names_list_valid_ones():
    """Unknown models, archs and fields, and archs of the wrong kind, list what is valid."""
    with pytest.raises(ModelError, match="unknown model 'tsm'; valid models: d3d, flow, flow3d, rgb"):
        create_model("tsm")
    with pytest.raises(ModelError, match="unknown arch 'resnet9'; valid archs: .*resnet18"):
        create_backbone("resnet9")
    with pytest.raises(ModelError, match="unknown 3D arch 'resnet18'; valid 3D archs: "
                                         "r2plus1d-18, r3d-18, r3d-tiny"):
        create_model("rgb3d", arch="resnet18")
    with pytest.raises(ModelError, match="unknown 2D arch 'r3d-18'; valid 2D archs: resnet-tiny"):
        create_model("flow", arch="r3d-18")
    with pytest.raises(ModelError, match="unknown ModelConfig field.*dropuot"):
        create_model("rgb", dropuot=0.5)


@pytest.mark.parametrize("field, value", [
    ("num_classes", 0), ("dropout", 1.0), ("dropout", -0.1), ("width_mult", 0.0),
    ("flow_length", 0), ("fusion_weights", (1.0, -1.5)),
])
def test_config_out_of_range(field, value):
    """A setting out of range raises ModelError naming the setting and the value."""
    with pytest.raises(ModelError, match=field):
        create_model("rgb", arch="resnet-tiny", **{field: value})


def test_input_errors_say_expected_and_actual():
    """Missing inputs, wrong ranks and channel counts raise ModelError with expected vs actual."""
    flow = create_model("flow", arch="resnet-tiny", flow_length=5)
    with pytest.raises(ModelError, match="expected 10 flow channels \\(2 x flow_length 5\\), "
                                         "got 6"):
        flow({"flow": torch.zeros(1, 1, 6, SIZE, SIZE)})
    with pytest.raises(ModelError, match=r"needs input 'flow', got rgb"):
        flow({"rgb": torch.zeros(1, 1, 3, SIZE, SIZE)})
    with pytest.raises(ModelError, match=r"\(B, V, C, H, W\), got \(1, 10, 32, 32\)"):
        flow({"flow": torch.zeros(1, 10, SIZE, SIZE)})
    rgb3d = tiny_model("rgb3d")
    with pytest.raises(ModelError, match="expected 3 rgb channels, got 2"):
        rgb3d({"rgb": torch.zeros(1, 1, 2, T, SIZE, SIZE)})
    flow3d = tiny_model("flow3d")
    with pytest.raises(ModelError, match=r"expected 2 flow channels \(x, y\), got 3"):
        flow3d({"flow": torch.zeros(1, 1, 3, T, SIZE, SIZE)})


def test_models_do_not_import_flowkit():
    """stddcn.models imports nothing from flowkit, so models test on random tensors alone."""
    code = ("import sys, stddcn.models; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'flowkit'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"
