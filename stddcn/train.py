"""Training on shards: ``train(config)`` from scratch, or ``train(config, resume=True)``.

What ``flowkit train`` runs: it checks the settings and that the extraction is finished, then
trains one network (stddcn.loop) or trains and fuses the two streams of a late fusion
(stddcn.fusion).
"""

from __future__ import annotations

import os

from tqdm import tqdm

from stddcn import data
from stddcn.config import FUSIONS, TrainConfig, check
from stddcn.fusion import train_two_stream
from stddcn.loop import TrainResult, train_model
from stddcn.models import list_models


def train(config: TrainConfig, resume: bool = False) -> TrainResult:
    """Train ``config.model`` on ``config.data`` into the run folder ``config.out``.

    Under torchrun every process calls this; rank 0 logs and writes checkpoints.
    ``two-stream`` trains (or takes, with ``streams``) an rgb and a flow run and fuses them.

    Raises:
        SettingsError: invalid settings, an unfinished extraction (without
            ``config.data.allow_partial``), bad splits or labels, a run folder that already
            holds a run (without ``resume``), or a resumed run whose settings differ.
    """
    check(config, list_models())
    note = data.check_extraction(config.data)
    if note and os.environ.get("RANK", "0") == "0":  # torchrun's rank: one line, from rank 0
        tqdm.write(note)
    if config.model.name in FUSIONS:
        return train_two_stream(config, resume)
    return train_model(config, resume)
