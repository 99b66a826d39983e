"""Action-recognition models: build one with ``create_model(config)``.

Families (``list_models()``): rgb, flow, two-stream, stddcn (2D, TSN segments) and rgb3d, flow3d
(3D clips). Backbones (``list_archs()``): torchvision-layout ResNets, 2D and video. Importing this
package registers them; nothing here imports flowkit, so models test on random tensors.
"""

from stddcn.models.base import ActionModel, Output
from stddcn.config import ModelConfig
from stddcn.models.registry import (create_backbone, create_model, list_archs, list_models,
                                    register_arch, register_model)
from stddcn.models import resnet2d, resnet3d  # noqa: F401  (register the archs)
from stddcn.models.pretrained import cross_modality, inflate_2d_weights, load_pretrained_2d
from stddcn.models.tuning import apply_partial_bn, use_channels_last
from stddcn.models.streams import StreamModel
from stddcn.models.two_stream import TwoStream
from stddcn.models.stddcn import STDDCN

__all__ = [
    "ActionModel", "ModelConfig", "Output", "STDDCN", "StreamModel", "TwoStream",
    "apply_partial_bn", "create_backbone", "create_model", "cross_modality",
    "inflate_2d_weights", "list_archs", "list_models", "load_pretrained_2d",
    "register_arch", "register_model", "use_channels_last",
]
