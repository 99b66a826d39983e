"""Training runs under what clusters do to them: a second run into a held folder, a kill at any
point of the checkpoint sequence, SIGTERM (preemption), damaged checkpoints, moved runs."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from flowkit import FolderLock
from flowkit.cli.main import main
from flowkit.errors import LockError
from stddcn import checkpoint, loop, runlog
from stddcn.config import DataConfig, ModelConfig, OptimConfig, TrainConfig
from stddcn.errors import CheckpointError, Preempted, SettingsError, TrainingError
from stddcn.runlog import read_log
from stddcn.train import train


@pytest.fixture(scope="module")
def shards(train_shards) -> dict[str, Path]:
    return train_shards


def _config(shards: dict[str, Path], out: Path, epochs: int = 2, validate: bool = False,
            **changes) -> TrainConfig:
    """A flow run of 4 steps per epoch whose every random draw matters (dropout, flips, SGD
    momentum, a DataLoader worker), so that an inexact resume shows in the weights."""
    config = TrainConfig(
        out=str(out), model=ModelConfig(name="flow", num_classes=0, arch="resnet-tiny",
                                        dropout=0.5),
        data=DataConfig(root=str(shards["shards"]), split=str(shards["split"]), input_size=32,
                        batch_size=2, workers=1, flip=True,
                        val_split=str(shards["split"]) if validate else None),
        optim=OptimConfig(optimizer="sgd", lr=0.05, weight_decay=0.0, schedule="cosine"),
        epochs=epochs, device="cpu")
    return dataclasses.replace(config, **changes)


def _same_weights(a: Path, b: Path) -> bool:
    first, second = checkpoint.load(a)["model"], checkpoint.load(b)["model"]
    return all(torch.equal(first[name], second[name]) for name in first)


def _epoch_records(run: Path) -> list[tuple[int, int, float, float]]:
    """(epoch, step, loss, val top-1) of each epoch line: what must not change on resume."""
    return [(r["epoch"], r["step"], r["loss"], r.get("val_top1"))
            for r in read_log(run, "epoch")]


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


# -- one run per folder -------------------------------------------------------------------


def test_a_run_into_a_held_folder_is_refused_naming_the_holder(shards, tmp_path):
    """A second run, or a second --resume, into a folder another run holds: one line, exit 2,
    the holder's pid; nothing of the holder's is touched."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "note.txt").write_text("the holder's")
    with FolderLock(run):
        with pytest.raises(LockError, match=rf"pid {os.getpid()}"):
            train(_config(shards, run, epochs=1))
        for extra in ([], ["--resume"]):
            code, output = _cli("train", str(shards["shards"]), "--model", "flow", "--arch",
                                "resnet-tiny", "--input-size", "32", "--device", "cpu",
                                "--workers", "0", "--epochs", "1", "--out", str(run), *extra)
            assert code == 2, output
            assert output.count("\n") == 1 and "another flowkit run" in output, output
    assert sorted(p.name for p in run.iterdir()) == [".flowkit.lock", "note.txt"]


def test_a_run_refused_at_its_start_leaves_no_folder(shards, tmp_path):
    """The lock is taken before the data is checked; a run that never started removes the
    folder it made."""
    absent = tmp_path / "absent.csv"
    absent.write_text("video_id,label\nright/right_0.mkv,0\nnope/a.mkv,1\n")
    config = _config(shards, tmp_path / "run", data=dataclasses.replace(
        _config(shards, tmp_path).data, split=str(absent)))
    with pytest.raises(Exception, match="not stored"):
        train(config)
    assert not (tmp_path / "run").exists()


def test_checkpoint_temporaries_are_unique_per_writer_and_cleared_on_resume(shards, tmp_path):
    """Two writers never share a temporary name; what a killed writer left is removed by the
    next resume (which holds the lock, so no writer is alive)."""
    names = set()
    real_save = torch.save

    def recording(state, handle, *args, **kwargs):
        names.add(Path(handle.name).name)
        return real_save(state, handle, *args, **kwargs)

    run = tmp_path / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(checkpoint.torch, "save", recording)
        train(_config(shards, run, epochs=1))
    assert len(names) == 1 and str(os.getpid()) in names.pop()
    stale = run / f".last.pt.{os.getpid() + 1}-0000.partial"
    stale.write_bytes(b"half a checkpoint")
    train(_config(shards, run, epochs=1), resume=True)
    assert not stale.exists()


# -- a kill anywhere in the save sequence -------------------------------------------------


class _Killed(BaseException):
    """Stands for kill -9: nothing after it runs (but for `finally` blocks)."""


def _save_events(monkeypatch, kill_at: int | None) -> list[str]:
    """Count the steps of the save sequence (the epoch's log line, each checkpoint's write and
    rename) and 'kill' the run at step ``kill_at``."""
    events: list[str] = []

    def event(name: str) -> None:
        events.append(name)
        if kill_at is not None and len(events) == kill_at:
            raise _Killed(name)

    real_write, real_save, real_replace = runlog.RunLog.write, torch.save, pathlib.Path.replace

    def write(self, kind, *args, **kwargs):
        if kind == "epoch":
            event("log epoch")
        return real_write(self, kind, *args, **kwargs)

    def save(state, handle, *args, **kwargs):
        event(f"write {Path(handle.name).name.split('.')[1]}")
        return real_save(state, handle, *args, **kwargs)

    def replace(self, target):
        if Path(target).name in (checkpoint.LAST, checkpoint.BEST):
            event(f"rename {Path(target).name}")
        return real_replace(self, target)

    monkeypatch.setattr(runlog.RunLog, "write", write)
    monkeypatch.setattr(checkpoint.torch, "save", save)
    monkeypatch.setattr(pathlib.Path, "replace", replace)
    return events


def test_a_kill_at_any_step_of_the_save_sequence_resumes_to_agreeing_checkpoints(
        shards, tmp_path, monkeypatch):
    """After a kill at every step of every epoch's save sequence and a --resume, last.pt,
    best.pt and log.jsonl agree with each other and with an uninterrupted run."""
    straight = tmp_path / "straight"
    events = _save_events(monkeypatch, None)
    train(_config(shards, straight, epochs=2, validate=True))
    sequence = list(events)
    assert sequence[:5] == ["log epoch", "write best", "rename best.pt", "write last",
                            "rename last.pt"]  # epoch 1 always improves: best first
    expected = _epoch_records(straight)
    best_epoch = checkpoint.load(straight / "best.pt")["epoch"]
    for kill_at in range(1, len(sequence) + 1):
        run = tmp_path / f"killed_{kill_at}"
        events = _save_events(monkeypatch, kill_at)
        with pytest.raises(_Killed):
            train(_config(shards, run, epochs=2, validate=True))
        events = _save_events(monkeypatch, None)
        train(_config(shards, run, epochs=2, validate=True), resume=True)
        where = f"killed at {sequence[kill_at - 1]} (step {kill_at} of {sequence})"
        last, best = checkpoint.load(run / "last.pt"), checkpoint.load(run / "best.pt")
        assert last["best"]["epoch"] == best["epoch"] == best_epoch, where
        assert _same_weights(run / "last.pt", straight / "last.pt"), where
        assert _same_weights(run / "best.pt", straight / "best.pt"), where
        assert _epoch_records(run) == expected, where
        steps = [r["step"] for r in read_log(run, "step")]
        assert steps == sorted(set(steps)), where


# -- checksums ----------------------------------------------------------------------------


def _flip_a_weight_byte(path: Path) -> None:
    """Change one byte inside the stored bytes of the checkpoint's largest tensor."""
    state = checkpoint.load(path)
    name = max(state["model"], key=lambda n: state["model"][n].numel())
    needle = state["model"][name].contiguous().numpy().tobytes()[:64]
    raw = bytearray(path.read_bytes())
    at = raw.find(needle)
    assert at >= 0
    raw[at + 10] ^= 0x40
    path.write_bytes(bytes(raw))


def test_a_damaged_checkpoint_is_one_line_in_eval_predict_and_resume(shards, tmp_path):
    """Flipped bits in a checkpoint's weights: torch still loads it, the checksum does not
    hold; eval, predict and --resume name the file."""
    run = tmp_path / "run"
    train(_config(shards, run, epochs=1, validate=True))
    for name in ("best.pt", "last.pt"):
        torch.load(run / name, weights_only=False)  # a plain torch checkpoint
        _flip_a_weight_byte(run / name)
        torch.load(run / name, weights_only=False)  # which torch alone cannot tell
        with pytest.raises(CheckpointError, match=rf"{name}: the checkpoint is damaged"):
            checkpoint.load(run / name)
    code, output = _cli("eval", str(run), "--data", str(shards["shards"]), "--split",
                        str(shards["split"]), "--device", "cpu", "--workers", "0")
    assert code == 2 and output.count("\n") == 1, output
    assert "best.pt: the checkpoint is damaged" in output, output
    video = next((shards["root"] / "videos").rglob("*.mkv"))
    code, output = _cli("predict", str(run), str(video), "--device", "cpu")
    assert code == 2 and "best.pt: the checkpoint is damaged" in output, output
    with pytest.raises(CheckpointError, match="last.pt: the checkpoint is damaged"):
        train(_config(shards, run, epochs=2, validate=True), resume=True)


def test_checkpoints_written_before_checksums_still_load(shards, tmp_path):
    run = tmp_path / "run"
    train(_config(shards, run, epochs=1))
    state = checkpoint.load(run / "last.pt")
    state.pop("checksum")
    state["version"] = 1
    torch.save(state, run / "old.pt")
    assert checkpoint.load(run / "old.pt")["epoch"] == 1


# -- preemption ---------------------------------------------------------------------------


def _sigterm_on_call(monkeypatch, module, name: str, call: int) -> None:
    """Send this process SIGTERM when ``module.name`` is called for the ``call``-th time."""
    real = getattr(module, name)
    calls = []

    def sending(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, sending)


@pytest.mark.parametrize("where, module, name, call, batches", [
    ("in a forward pass: abandoned", loop.data, "model_inputs", 3, 2),
    ("in a commit: finished", torch.amp.GradScaler, "step", 3, 3),
    # calls 5-8: validation's 4 batches
    ("in the next epoch's first forward pass", loop.data, "model_inputs", 9, 0),
    ("in validation", loop, "predict", 1, 4),
])
def test_sigterm_writes_a_checkpoint_that_resumes_exactly(shards, tmp_path, monkeypatch,
                                                          where, module, name, call, batches):
    """SIGTERM anywhere in an epoch stops at once or after the step under way, with last.pt
    holding the run as of its last step; --resume continues weight for weight."""
    straight = tmp_path / "straight"
    train(_config(shards, straight, validate=True))
    run = tmp_path / "stopped"
    _sigterm_on_call(monkeypatch, module, name, call)
    with pytest.raises(Preempted, match="stopped by SIGTERM .*continue it with --resume"):
        train(_config(shards, run, validate=True))
    monkeypatch.undo()
    state = checkpoint.load(run / "last.pt")
    assert (state["epoch"], (state.get("within_epoch") or {}).get("batches", 0)) == \
        ((1, batches) if call == 9 else (0, batches)), where
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler before
    train(_config(shards, run, validate=True), resume=True)
    assert _same_weights(run / "last.pt", straight / "last.pt"), where
    assert _same_weights(run / "best.pt", straight / "best.pt"), where
    assert _epoch_records(run) == _epoch_records(straight), where


def test_a_checkpoint_without_the_schedule_state_resumes_exactly(shards, tmp_path,
                                                                 monkeypatch):
    """A last.pt written before checkpoints held the scheduler's state (stopped mid-warm-up
    here): the resume steps a fresh scheduler to its step, so every later step's rate and the
    final weights are the uninterrupted run's."""
    optim = OptimConfig(optimizer="sgd", lr=0.05, weight_decay=0.0, schedule="cosine",
                        warmup_epochs=1.5)
    straight = tmp_path / "straight"
    train(_config(shards, straight, optim=optim, log_every=1))
    run = tmp_path / "stopped"
    _sigterm_on_call(monkeypatch, torch.amp.GradScaler, "step", 3)
    with pytest.raises(Preempted):
        train(_config(shards, run, optim=optim, log_every=1))
    monkeypatch.undo()
    state = checkpoint.load(run / "last.pt")
    assert state["lr_schedule"]["scheduler"]["last_epoch"] == state["step"] == 3
    del state["lr_schedule"]
    checkpoint.save(run / "last.pt", state)  # as flowkit wrote it before
    train(_config(shards, run, optim=optim, log_every=1), resume=True)
    rates = {r["step"]: r["lr"] for r in read_log(run, "step")}
    assert rates == {r["step"]: r["lr"] for r in read_log(straight, "step")}
    assert rates[1] == pytest.approx(0.05 / 6, rel=1e-3) and rates[6] == pytest.approx(0.05)
    assert _same_weights(run / "last.pt", straight / "last.pt")


def test_sigterm_to_a_cli_run_exits_143_within_seconds_and_resumes(shards, tmp_path):
    """As a scheduler does it: SIGTERM to the whole process group (DataLoader workers too)."""
    run = tmp_path / "run"
    args = [sys.executable, "-m", "flowkit", "train", str(shards["shards"]), "--split",
            str(shards["split"]), "--model", "flow", "--arch", "resnet-tiny", "--input-size",
            "32", "--batch-size", "2", "--workers", "1", "--device", "cpu", "--log-every", "1",
            "--out", str(run)]
    process = subprocess.Popen([*args, "--epochs", "100"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while not read_log(run, "step") and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGTERM)
    sent = time.monotonic()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert time.monotonic() - sent < 10
    assert stderr.strip().splitlines() == [stderr.strip()], stderr
    assert "stopped by SIGTERM" in stderr and "--resume" in stderr
    state = checkpoint.load(run / "last.pt")
    done = state["epoch"]
    result = subprocess.run([*args, "--epochs", str(done + 1), "--resume"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    steps = [r["step"] for r in read_log(run, "step")]
    assert steps == list(range(1, 4 * (done + 1) + 1))


# -- the run folder -----------------------------------------------------------------------


def test_a_moved_run_folder_resumes_where_it_is(shards, tmp_path):
    train(_config(shards, tmp_path / "here", epochs=1))
    shutil.move(tmp_path / "here", tmp_path / "there")
    result = train(_config(shards, tmp_path / "there", epochs=2), resume=True)
    assert result.epochs == 2
    assert checkpoint.config_of(checkpoint.load(tmp_path / "there" / "last.pt")).out == \
        str(tmp_path / "there")


def test_resume_before_the_first_checkpoint_keeps_the_runs_settings(shards, tmp_path,
                                                                    monkeypatch):
    """A run stopped in its first epoch has config.yaml but no checkpoint: --resume with other
    settings is refused, as after a checkpoint, instead of replacing config.yaml."""
    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    run = tmp_path / "run"
    monkeypatch.setattr(loop, "train_one_epoch", stopped)
    with pytest.raises(KeyboardInterrupt):
        train(_config(shards, run))
    monkeypatch.undo()
    assert (run / "config.yaml").exists() and not (run / "last.pt").exists()
    before = (run / "config.yaml").read_text()
    other = _config(shards, run, optim=OptimConfig(optimizer="sgd", lr=0.5, schedule="cosine"))
    with pytest.raises(SettingsError, match=r"optim.lr: 0.05 -> 0.5"):
        train(other, resume=True)
    assert (run / "config.yaml").read_text() == before
    train(_config(shards, run), resume=True)
    assert json.loads((run / "log.jsonl").read_text().splitlines()[-1])["epoch"] == 2


# -- a non-finite loss --------------------------------------------------------------------


def test_a_non_finite_loss_names_the_batch_and_whether_its_inputs_were_finite(
        shards, tmp_path, monkeypatch):
    """NaN in one item's input is blamed on that video's data, not on the learning rate."""
    real = loop.data.model_inputs
    poisoned = []

    def with_nan(batch, inputs, device):
        tensors, labels = real(batch, inputs, device)
        tensors["flow"][1].view(-1)[0] = float("nan")
        poisoned.append(batch["video_id"][1])
        return tensors, labels

    monkeypatch.setattr(loop.data, "model_inputs", with_nan)
    with pytest.raises(TrainingError) as error:
        train(_config(shards, tmp_path / "run", epochs=1, data=dataclasses.replace(
            _config(shards, tmp_path).data, workers=0)))
    message = str(error.value)
    assert f"the inputs of {poisoned[0]} are not finite" in message, message
    assert "flowkit verify" in message and "--lr" not in message
