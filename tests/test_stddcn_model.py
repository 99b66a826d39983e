"""STDDCN: two densely connected pathways with student and teacher heads, at tiny size.

resnet-tiny backbones, 32x32 inputs, B=2 samples of V=2 views, K=5 classes, flow_length 2.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stddcn.errors import ModelError
from stddcn.models import STDDCN, ModelConfig, Output, create_backbone, create_model, \
    use_channels_last
from stddcn.models.cross import Transition
from stddcn.models.heads import ConvFusion
from stddcn.models.tuning import BATCH_NORMS

B, V, K, L, SIZE = 2, 2, 5, 2, 32
HEADS = {"appearance", "motion", "fusion"}


def tiny(**overrides) -> STDDCN:
    """An stddcn model at test size; ``overrides`` replace ModelConfig fields."""
    settings = dict(arch="resnet-tiny", num_classes=K, flow_length=L, dropout=0.0)
    settings.update(overrides)
    return create_model("stddcn", **settings)


def inputs(batch: int = B, views: int = V) -> dict[str, torch.Tensor]:
    """Random aligned rgb (B, V, 3, H, W) and flow (B, V, 2L, H, W) inputs."""
    return {"rgb": torch.randn(batch, views, 3, SIZE, SIZE),
            "flow": torch.randn(batch, views, 2 * L, SIZE, SIZE)}


def transitions(model: STDDCN) -> list[Transition]:
    return [m for m in model.modules() if isinstance(m, Transition)]


def loud_heads(model: STDDCN) -> None:
    """Heads with unit-scale weights, so differences in features show in the logits."""
    with torch.no_grad():
        for head in model.heads.values():
            head.fc.weight.normal_(0.0, 1.0)


def fill_cross(model: STDDCN) -> None:
    """Non-zero weights on the other pathway's channels of every transition."""
    with torch.no_grad():
        for t in transitions(model):
            t.conv.weight[:, t.own_channels:].normal_(0.0, 0.1)


def all_heads_loss(out: Output) -> torch.Tensor:
    labels = torch.tensor([0, 3])
    return sum(F.cross_entropy(h, labels) for h in out.heads.values())


@pytest.mark.parametrize("connections, blocks", [
    ("both", (2, 3, 4)), ("both", (1, 2, 3, 4)), ("appearance-to-motion", (1,)),
    ("motion-to-appearance", (3, 4)), ("none", (2, 3, 4)),
])
def test_forward_backward(connections, blocks):
    """Three (B, K) heads, fusion is the prediction; gradients reach both backbones and the
    transitions' cross weights."""
    torch.manual_seed(0)
    model = tiny(connections=connections, connect_blocks=blocks)
    out = model(inputs())
    assert set(out.heads) == HEADS and all(h.shape == (B, K) for h in out.heads.values())
    assert torch.equal(out.logits, out.heads["fusion"]) and torch.isfinite(out.logits).all()
    all_heads_loss(out).backward()
    for backbone in model.backbones.values():
        assert backbone.conv1.weight.grad.abs().sum() > 0
        assert backbone.layer4[0].conv2.weight.grad.abs().sum() > 0
    receivers = {"both": {"appearance", "motion"}, "appearance-to-motion": {"motion"},
                 "motion-to-appearance": {"appearance"}, "none": set()}[connections]
    assert set(model.transitions) == receivers
    for name in receivers:
        assert set(model.transitions[name]) == {f"layer{k}" for k in blocks}
    if connections == "none":
        assert not transitions(model)
    for t in transitions(model):
        assert t.conv.weight.grad[:, t.own_channels:].abs().sum() > 0


def test_connected_model_starts_as_two_streams():
    """At initialisation every head of a connected model equals the unconnected model's with
    the same weights (transitions: identity on own channels, zero on the other's)."""
    torch.manual_seed(0)
    connected = tiny(connections="both", connect_blocks=(1, 2, 3, 4))
    loud_heads(connected)
    alone = tiny(connections="none")
    result = alone.load_state_dict(connected.state_dict(), strict=False)
    assert not result.missing_keys
    assert result.unexpected_keys and all(k.startswith("transitions.")
                                          for k in result.unexpected_keys)
    batch = inputs()
    with torch.no_grad():
        a, b = connected.eval()(batch), alone.eval()(batch)
    assert a.heads["fusion"].abs().max() > 0.1
    for name in HEADS:
        assert torch.allclose(a.heads[name], b.heads[name], rtol=0, atol=1e-6), name


@pytest.mark.parametrize("connections, appearance_moves", [
    ("motion-to-appearance", True), ("appearance-to-motion", False)])
def test_appearance_reads_flow_only_when_connected(connections, appearance_moves):
    """With non-zero cross weights, changing the flow changes the appearance logits only when
    motion feeds appearance; gradients then cross from the appearance head into motion."""
    torch.manual_seed(0)
    model = tiny(connections=connections, connect_blocks=(2, 3, 4)).eval()
    loud_heads(model)
    fill_cross(model)
    batch = inputs()
    moved = dict(batch, flow=batch["flow"] + torch.randn_like(batch["flow"]))
    with torch.no_grad():
        before, after = model(batch), model(moved)
    assert not torch.allclose(before.heads["motion"], after.heads["motion"])
    assert torch.equal(before.heads["appearance"], after.heads["appearance"]) \
        is not appearance_moves
    F.cross_entropy(model(batch).heads["appearance"], torch.tensor([0, 3])).backward()
    motion_grad = model.backbones["motion"].conv1.weight.grad
    assert (motion_grad is not None and bool(motion_grad.abs().sum() > 0)) is appearance_moves


def test_pretrained_loads_into_both_pathways(tmp_path):
    """A torchvision-format resnet-tiny file loads into both backbones; motion's conv1 is the
    RGB filters' mean repeated 2L times."""
    torch.manual_seed(0)
    state = dict(create_backbone("resnet-tiny").state_dict())
    for key, value in state.items():
        if value.is_floating_point():
            state[key] = torch.randn_like(value).abs() + 0.5  # unlike any fresh init
    state["fc.weight"], state["fc.bias"] = torch.randn(1000, 128), torch.randn(1000)
    torch.save(state, tmp_path / "imagenet.pth")
    model = tiny(pretrained=str(tmp_path / "imagenet.pth"))
    appearance = model.backbones["appearance"].state_dict()
    motion = model.backbones["motion"].state_dict()
    assert set(appearance) == set(state) - {"fc.weight", "fc.bias"}
    assert all(torch.equal(appearance[k], state[k]) for k in appearance)
    assert all(torch.equal(motion[k], state[k]) for k in motion if k != "conv1.weight")
    mean = state["conv1.weight"].mean(dim=1)
    assert motion["conv1.weight"].shape == (16, 2 * L, 7, 7)
    assert all(torch.allclose(motion["conv1.weight"][:, c], mean) for c in range(2 * L))


def test_channels_last_same_outputs():
    """use_channels_last converts backbones and transitions; every head's output is unchanged."""
    torch.manual_seed(0)
    model = tiny(connect_blocks=(1, 2, 3, 4)).eval()
    loud_heads(model)
    fill_cross(model)
    batch = inputs()
    with torch.no_grad():
        reference = model(batch)
        use_channels_last(model)
        converted = model(batch)
    assert model.channels_last
    assert transitions(model)[0].conv.weight.is_contiguous(memory_format=torch.channels_last)
    for name in HEADS:
        assert torch.allclose(converted.heads[name], reference.heads[name], rtol=1e-4,
                              atol=1e-5), name


def test_partial_bn_freezes_all_but_each_backbones_first():
    """With partial_bn, train() leaves only each backbone's first BN training and trainable."""
    model = tiny(partial_bn=True).train()
    groups = [[m for m in b.modules() if isinstance(m, BATCH_NORMS)]
              for b in model.backbones.values()]
    saved = [[n.running_mean.clone() for n in norms] for norms in groups]
    for norms in groups:
        assert norms[0].training and norms[0].weight.requires_grad
        assert all(not n.training and not n.weight.requires_grad for n in norms[1:])
    model(inputs())
    for norms, means in zip(groups, saved):
        assert not torch.equal(norms[0].running_mean, means[0])
        assert all(torch.equal(n.running_mean, m) for n, m in zip(norms[1:], means[1:]))
    assert all(t.training for t in transitions(model)) and model.heads.training


def test_rebuilds_from_config_and_state_dict():
    """A model rebuilt from the same ModelConfig loads the state dict and gives equal outputs."""
    config = ModelConfig(name="stddcn", arch="resnet-tiny", num_classes=K, flow_length=L,
                         connections="both", connect_blocks=(1, 3))
    torch.manual_seed(0)
    original = create_model(config).eval()
    loud_heads(original)
    fill_cross(original)
    torch.manual_seed(1)
    rebuilt = create_model(config).eval()
    assert "transitions.appearance.layer3.conv.weight" in original.state_dict()
    rebuilt.load_state_dict(original.state_dict())
    batch = inputs()
    with torch.no_grad():
        a, b = original(batch), rebuilt(batch)
    assert all(torch.equal(a.heads[name], b.heads[name]) for name in HEADS)


def test_attributes_and_default_arch():
    """stddcn reads aligned rgb and flow segments and builds resnet50 pathways by default."""
    model = create_model("stddcn", width_mult=0.125, flow_length=3)
    assert model.modalities == ("rgb", "flow") and model.layout == "segments"
    assert model.flow_length == 3 and model.in_channels == {"rgb": 3, "flow": 6}
    assert {b.arch for b in model.backbones.values()} == {"resnet50"}


@pytest.mark.parametrize("overrides, message", [
    (dict(connections="dense"), "connections must be one of both, appearance-to-motion, "
                                "motion-to-appearance, none, got 'dense'"),
    (dict(connect_blocks=(0, 2)), r"stages among 1, 2, 3, 4, got \(0, 2\)"),
    (dict(connect_blocks=(5,)), r"stages among 1, 2, 3, 4, got \(5,\)"),
    (dict(connect_blocks=()), r"at least one stage of 1, 2, 3, 4 \(or set connections to none"),
    (dict(connect_blocks=(2, 2)), r"names a stage twice: \(2, 2\); give each of 1, 2, 3, 4"),
])
def test_bad_settings_list_valid_values(overrides, message):
    """Unknown connections and bad connect_blocks raise ModelError listing the valid values."""
    with pytest.raises(ModelError, match=message):
        tiny(**overrides)


def test_unconnected_model_ignores_connect_blocks():
    """connections="none" reads no connect_blocks: an empty tuple builds, with no transitions."""
    assert not transitions(tiny(connections="none", connect_blocks=()))


def test_input_errors_say_expected_and_actual():
    """Wrong flow channels, a missing input or misaligned views raise ModelError saying why."""
    model = tiny()
    batch = inputs()
    with pytest.raises(ModelError, match=r"expected 4 flow channels \(2 x flow_length 2\), "
                                         "got 6"):
        model(dict(batch, flow=torch.zeros(B, V, 6, SIZE, SIZE)))
    with pytest.raises(ModelError, match="expected 3 rgb channels, got 1"):
        model(dict(batch, rgb=torch.zeros(B, V, 1, SIZE, SIZE)))
    with pytest.raises(ModelError, match="needs input 'flow', got rgb"):
        model({"rgb": batch["rgb"]})
    with pytest.raises(ModelError, match=r"same \(B, V\).*got \(2, 2\) and \(2, 3\)"):
        model(dict(batch, flow=torch.zeros(B, 3, 2 * L, SIZE, SIZE)))


@pytest.mark.parametrize("overrides", [
    dict(cross_norm=True), dict(fusion="conv"),
    dict(cross_norm=True, fusion="conv", connect_blocks=(1, 2, 3, 4)),
    dict(fusion="conv", connections="none"),
])
def test_new_options_forward_backward(overrides):
    """Normalised transitions and the conv-fusion teacher: (B, K) heads, gradients into both
    backbones, the transitions' norms (once cross weights are non-zero) and cross weights,
    and the fusion conv."""
    torch.manual_seed(0)
    model = tiny(**overrides)
    fill_cross(model)
    out = model(inputs())
    assert set(out.heads) == HEADS and all(h.shape == (B, K) for h in out.heads.values())
    all_heads_loss(out).backward()
    for backbone in model.backbones.values():
        assert backbone.conv1.weight.grad.abs().sum() > 0
    for t in transitions(model):
        assert t.conv.weight.grad[:, t.own_channels:].abs().sum() > 0
        if overrides.get("cross_norm"):
            assert t.norms and all(n.weight.grad.abs().sum() > 0 for n in t.norms)
        else:
            assert not t.norms
    if overrides.get("fusion") == "conv":
        assert model.fuse is not None and model.fuse.conv.weight.grad.abs().sum() > 0
        assert model.heads["fusion"].fc.in_features == model.heads["motion"].fc.in_features
    else:
        assert model.fuse is None


def test_normalised_transitions_start_as_two_streams_too():
    """BatchNorm on the cross inputs keeps the identity at initialisation (their weights are
    zero): every head equals the unconnected model's with the same weights."""
    torch.manual_seed(0)
    connected = tiny(connections="both", connect_blocks=(1, 2, 3, 4), cross_norm=True)
    loud_heads(connected)
    alone = tiny(connections="none")
    alone.load_state_dict(connected.state_dict(), strict=False)
    batch = inputs()
    for mode in (True, False):  # batch statistics (training) and running ones (eval)
        connected.train(mode), alone.train(mode)
        with torch.no_grad():
            a, b = connected(batch), alone(batch)
        for name in HEADS:
            assert torch.allclose(a.heads[name], b.heads[name], rtol=0, atol=1e-5), name


def test_conv_fusion_combines_the_pathways_place_by_place():
    """Two pathways' maps whose features sit at the same place or at two different places have
    the same pooled features, so the pooled teacher cannot tell them apart; the conv fusion,
    which combines both maps at each place before pooling, does."""
    torch.manual_seed(0)
    fuse = ConvFusion(2 * 3, 4).eval()
    with torch.no_grad():
        fuse.conv.weight.normal_(0.0, 1.0)
    first = torch.zeros(1, 3, 2, 2)
    first[0, :, 0, 0] = 1.0
    together, apart = torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)
    together[0, :, 0, 0], apart[0, :, 1, 1] = 1.0, 1.0
    assert torch.equal(together.mean((2, 3)), apart.mean((2, 3)))
    with torch.no_grad():
        assert fuse(first, together).shape == (1, 4)
        assert (fuse(first, together) - fuse(first, apart)).abs().max() > 0.1
