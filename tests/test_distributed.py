"""Training on several processes: gloo on the CPU gives what one process gives."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from stddcn import checkpoint, distributed
from stddcn.distributed import SyncBatchNorm, convert_sync_batchnorm
from stddcn.models import create_model


def test_one_process_on_cuda_takes_the_current_gpu_by_its_index(monkeypatch):
    """--device cuda used to reach torch.cuda.set_device as torch.device("cuda"), which it
    refuses without an index (the first GPU run of bench/train.py); an explicit cuda:N stays."""
    chosen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: chosen.append(
        torch.cuda._utils._get_device_index(device)))
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.start("cuda").device == "cuda:0"
    assert distributed.start("cuda:3").device == "cuda:3"
    assert chosen == [0, 3]


def test_sync_batchnorm_alone_is_batchnorm():
    """Outside a process group the CPU SyncBatchNorm computes what BatchNorm2d computes,
    running statistics included."""
    torch.manual_seed(0)
    plain = nn.BatchNorm2d(4)
    synced = convert_sync_batchnorm(nn.Sequential(nn.BatchNorm2d(4)), "cpu")[0]
    assert isinstance(synced, SyncBatchNorm)
    x = torch.randn(6, 4, 5, 5) * 3 + 1
    torch.testing.assert_close(synced(x), plain(x))
    torch.testing.assert_close(synced.running_var, plain.running_var)


def _half_batch(rank: int, port: int, x: torch.Tensor, results: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        norm = SyncBatchNorm(3)
        part = x[rank * 4:(rank + 1) * 4].clone().requires_grad_(True)
        out = norm(part)
        (out * torch.arange(3.0).reshape(1, 3, 1)).sum().backward()
        results[rank] = (out.detach(), part.grad, norm.running_mean.clone())
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_sync_batchnorm_across_two_processes_equals_the_whole_batch():
    """Two gloo processes with 4 samples each: outputs, input gradients and running means
    equal one BatchNorm over all 8 (the statistics and their gradients span the processes)."""
    torch.manual_seed(1)
    x = torch.randn(8, 3, 7) * 2 - 1
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_half_batch, args=(_free_port(), x, results), nprocs=2)
        results = dict(results)
    whole = x.clone().requires_grad_(True)
    norm = nn.BatchNorm1d(3)
    out = norm(whole)
    (out * torch.arange(3.0).reshape(1, 3, 1)).sum().backward()
    torch.testing.assert_close(torch.cat([results[0][0], results[1][0]]), out.detach())
    torch.testing.assert_close(torch.cat([results[0][1], results[1][1]]), whole.grad)
    torch.testing.assert_close(results[0][2], norm.running_mean)


@pytest.mark.slow
def test_two_gloo_processes_train_the_weights_of_one(train_shards, tmp_path):
    """torchrun --nproc_per_node 2 (gloo, 2 videos per process, --sync-bn) ends with the
    weights of one process taking batches of 4, within float tolerance."""
    common = ["train", str(train_shards["shards"]), "--model", "flow", "--arch", "resnet-tiny",
              "--split", str(train_shards["split"]), "--epochs", "2", "--batch-size", "4",
              "--input-size", "32", "--dropout", "0", "--device", "cpu", "--workers", "0",
              "--lr", "0.01", "--sync-bn"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "flowkit.cli.main", *common, "--out",
                          str(tmp_path / "one")], env=env, capture_output=True, text=True)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node", "2", "-m", "flowkit.cli.main", *common, "--out",
                          str(tmp_path / "two")], env=env, capture_output=True, text=True)
    assert two.returncode == 0, two.stderr[-2000:]
    single = checkpoint.load(tmp_path / "one" / "last.pt")
    double = checkpoint.load(tmp_path / "two" / "last.pt")
    assert single["step"] == double["step"] == 4
    initial = create_model(checkpoint.config_of(single).model).state_dict()
    for name, tensor in single["model"].items():
        if not tensor.is_floating_point():
            continue
        moved = (tensor - initial[name]).norm()
        if name.endswith(("weight", "bias")):
            assert moved > 0, name  # trained: not a comparison of two untouched models
        # float rounding differs (sums split over processes), nothing else
        assert (double["model"][name] - tensor).norm() <= 1e-3 * moved + 1e-6, name
