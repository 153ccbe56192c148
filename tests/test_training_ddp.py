"""Multi-process training: the training component under torchrun (DDP, gloo on CPU) trains the same global
batch as one process, rank 0 alone writes the run folder, a killed run resumes; one process that sees
several GPUs keeps the configured global batch instead of multiplying it by DataParallel."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from s2lbench.errors import ConfigError
from s2lbench.gym import GymConfig, build_gym
from s2lbench.training.trainer import TrainConfig, split_global_batch

HELPER = Path(__file__).parent / "helpers" / "ddp_train.py"
#: DDP averages gradients of equal-sized halves of each global batch: the same update as one process up to
#: float summation order (measured: under 1e-5 relative on these 8 steps); 1e-4 leaves room for other CPUs
LOSS_RTOL = 1e-4


@pytest.fixture(scope="module")
def gym_dir(tmp_path_factory):
    paths = build_gym(tmp_path_factory.mktemp("gym"), GymConfig.small(pool_size=120, test_size=5))
    return paths.pool.parent


def launch(gym_dir: Path, out: Path, processes: int, *extra: str) -> subprocess.CompletedProcess:
    if processes == 1:
        cmd = [sys.executable, str(HELPER)]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               str(HELPER)]
    env = {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    import os

    return subprocess.run(cmd + [str(gym_dir), str(out), *extra], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **env})


def report(out: Path, rank: int) -> dict:
    return json.loads((out.parent / f"{out.name}.rank{rank}.json").read_text())


@pytest.fixture(scope="module")
def one_and_two(gym_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    single, ddp = root / "single", root / "ddp"
    for out, n in ((single, 1), (ddp, 2)):
        done = launch(gym_dir, out, n)
        assert done.returncode == 0, done.stderr[-3000:]
    return single, ddp


@pytest.mark.slow
def test_two_processes_train_the_same_global_batch_as_one(one_and_two):
    single, ddp = one_and_two
    one, two = report(single, 0)["losses"], report(ddp, 0)["losses"]
    assert len(one) == len(two) == 8
    assert two == pytest.approx(one, rel=LOSS_RTOL)
    assert one[-1] < one[0]  # it learned: equal curves of a model that does nothing would prove little
    manifest = json.loads((ddp / "run.json").read_text())
    assert manifest["processes"] == 2 and manifest["per_device_batch"] == 4
    assert manifest["epochs"] == json.loads((single / "run.json").read_text())["epochs"]


@pytest.mark.slow
def test_rank_zero_alone_writes_checkpoints_and_manifests(one_and_two):
    _, ddp = one_and_two
    rank0, rank1 = report(ddp, 0)["writes"], report(ddp, 1)["writes"]
    assert "run.json" in rank0 and "final" in rank0
    assert any("checkpoint-4" in w for w in rank0)
    assert rank1 == []
    assert sorted(p.name for p in ddp.glob("checkpoint-*")) == ["checkpoint-4", "checkpoint-8"]
    assert not (ddp / ".staging").exists()
    # each rank's RNG state travels with the newest checkpoint, so a resumed run continues exactly
    assert {p.name for p in (ddp / "checkpoint-8").glob("rng_state_*.pth")} == {"rng_state_0.pth", "rng_state_1.pth"}
    assert not list((ddp / "checkpoint-4").glob("rng_state_*.pth"))


@pytest.mark.slow
def test_a_killed_ddp_run_resumes_from_its_checkpoint(gym_dir, one_and_two, tmp_path):
    _, ddp = one_and_two
    out = tmp_path / "killed"
    killed = launch(gym_dir, out, 2, "--stop-at", "4")
    assert killed.returncode != 0 and (out / "checkpoint-4").exists() and not (out / "final").exists()
    resumed = launch(gym_dir, out, 2)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stderr
    final = json.loads((out / "run.json").read_text())
    assert final["status"] == "finished"
    losses = [h["loss"] for h in final["log_history"] if "loss" in h]
    assert losses[-4:] == pytest.approx(report(ddp, 0)["losses"][-4:], rel=LOSS_RTOL)


def test_the_global_batch_is_split_over_processes_and_gpus():
    config = TrainConfig(model="gym-proxy", tokenizer="t", total_steps=4, batch_size=16)
    assert split_global_batch(config, 1, 0) == 16
    assert split_global_batch(config, 2, 1) == 8
    assert split_global_batch(config, 1, 4) == 4
    with pytest.raises(ConfigError, match=r"batch_size: 16 .* 3 process\(es\).*multiple of 3"):
        split_global_batch(config, 3, 1)


@pytest.mark.slow
def test_one_process_seeing_four_gpus_keeps_the_configured_global_batch(gym_dir, tmp_path, monkeypatch, caplog):
    """Trainer wraps the model in DataParallel when ``n_gpu > 1`` and multiplies the batch by it: faked here
    (DataParallel without CUDA runs the module as is), the run must still take batch_size examples a step."""
    from transformers import Trainer, TrainingArguments

    from s2lbench.pool.loaders import load_local
    from s2lbench.training.trainer import train

    monkeypatch.setattr(TrainingArguments, "n_gpu", property(lambda self: 4))
    seen = {}
    original = Trainer.train

    def spy(self, *args, **kwargs):
        seen["train_batch_size"] = self._train_batch_size
        seen["dataloader_batch"] = self.get_train_dataloader().total_batch_size
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "train", spy)
    pool = load_local(gym_dir / "pool.jsonl")
    pool = pool.subset(list(range(64)))
    config = TrainConfig(model="gym-proxy", tokenizer=str(gym_dir / "tokenizer"), total_steps=8, batch_size=16,
                         learning_rate=3e-3, max_length=64, logging_steps=4, bf16=False)
    result = train(pool, config, tmp_path / "run")
    assert seen == {"train_batch_size": 16, "dataloader_batch": 16}
    assert result.epochs == pytest.approx(8 * 16 / 64)
    trainer_epoch = [h["epoch"] for h in result.log_history if "loss" in h][-1]
    assert trainer_epoch == pytest.approx(result.epochs, rel=0.01)  # what Trainer counted is what we record
    assert json.loads((tmp_path / "run" / "run.json").read_text())["per_device_batch"] == 4
    assert "DataParallel" in caplog.text and "accelerate launch" in caplog.text
