"""Data parallelism on 4 devices against 1 device.

The multi-device checks run in subprocesses (tests/parallel_checks.py): one process with 4 CPU
devices runs the step, checkpoint, bf16 and decoding checks; two processes with 2 devices each
run the training loop as the hosts of a pod slice would. This process keeps its single device
and provides the 1-device side of the comparisons while the subprocesses compile.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from s2s_jax.checkpoint import Checkpointer
from s2s_jax.errors import ConfigError
from s2s_jax.loop import train
from s2s_jax.parallel import Parallel, initialize_distributed
from s2s_jax.summary import read_metrics
from s2s_jax.training import step as step_lib
from s2s_jax.training.step import create_train_state
from tests.conftest import random_batch
from tests.parallel_checks import BF16_STEPS, DEVICES, flat, loop_config, step_config

pytestmark = pytest.mark.xdist_group("parallel")  # the subprocesses of the module fixture run once

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOL = 1e-5  # float32 sums in another order


@pytest.fixture(scope="session")  # module scope is rebuilt when xdist interleaves other modules
def run(tmp_path_factory) -> dict:
    out = str(tmp_path_factory.mktemp("parallel"))
    # A 1-device checkpoint (step 0, seed 7) for the subprocess to restore on 4 devices.
    cfg = step_config()
    state = create_train_state(cfg, jax.random.key(7))
    np.savez(os.path.join(out, "ckpt1.npz"), **flat(state.params))
    ckpt = Checkpointer(os.path.join(out, "ckpt1"), async_save=False)
    ckpt.save(state, jax.random.key(0), {"config": cfg.to_dict()})
    ckpt.close()

    with socket.socket() as s:  # a free port for the coordinator of the 2-process run
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    procs = [_launch(out, DEVICES)]
    procs += [_launch(out, DEVICES // 2, "--loop", S2S_DISTRIBUTED="1", JAX_COORDINATOR_ADDRESS=f"localhost:{port}",
                      S2S_NUM_PROCESSES="2", S2S_PROCESS_ID=str(i)) for i in range(2)]
    try:
        loop1 = train(loop_config(), os.path.join(out, "loop1"))  # the 1-device reference, meanwhile
        logs = [p.communicate(timeout=900)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    results = {}
    for name, log in zip(("results.json", "loop_results_0.json", "loop_results_1.json"), logs, strict=True):
        path = os.path.join(out, name)
        assert os.path.exists(path), f"a subprocess failed:\n{log[-4000:]}"
        with open(path) as f:
            results[name] = json.load(f)
    run = results["results.json"]
    run["errors"] |= results["loop_results_0.json"]["errors"] | results["loop_results_1.json"]["errors"]
    run["loop"] = [results[f"loop_results_{i}.json"].get("loop") for i in range(2)]
    run["out"], run["loop1"] = out, loop1
    return run


def _launch(out: str, devices: int, *args: str, **env: str) -> subprocess.Popen:
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}",
               PYTHONPATH=os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")])), **env)
    return subprocess.Popen([sys.executable, os.path.join(REPO, "tests", "parallel_checks.py"), out, *args],
                            env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _ok(run: dict, name: str) -> None:
    assert name not in run["errors"], run["errors"][name]


@pytest.mark.parametrize("mode", ["sharding", "pmap"])
def test_step_on_4_devices_equals_1_device(run, mode):
    _ok(run, "steps")
    assert run["device_count"] == DEVICES
    assert len(set(run["tokens_per_device"])) > 1 and 0 in run["tokens_per_device"]
    r = run[mode]
    for name, (got, ref) in r["metrics"].items():
        assert got == pytest.approx(ref, rel=TOL, abs=TOL), name
    for name, (got, ref) in r["eval"].items():
        assert got == pytest.approx(ref, rel=TOL, abs=TOL), name
    assert r["param_change"] > 1e-4  # the step moved the parameters...
    assert r["param_diff"] < TOL  # ...exactly as one device does
    assert r["opt_state_diff"] < TOL
    assert r["state_devices"] == DEVICES
    assert r["batch_shape"] == ([DEVICES, 2, 7] if mode == "pmap" else [2 * DEVICES, 7])


def test_batch_not_divisible_by_devices_is_refused(run):
    _ok(run, "indivisible")
    expected = f"data.batch_size=6 is not divisible by the {DEVICES} data-parallel devices."
    assert run["indivisible"] == [expected, expected]


def test_checkpoints_move_between_device_counts(run):
    _ok(run, "checkpoints")
    r = run["restore_1_on_4"]
    assert r["diff"] == 0.0 and r["devices"] == DEVICES and r["step"] == 0
    # The checkpoint written from 4 devices, restored here on 1.
    cfg = step_config()
    target = create_train_state(cfg, jax.random.key(0))
    ckpt = Checkpointer(os.path.join(run["out"], "ckpt4"), async_save=False)
    restored, _, _ = ckpt.restore(target, jax.random.key(0))
    ckpt.close()
    expected = dict(np.load(os.path.join(run["out"], "ckpt4.npz")))
    got = flat(restored.params)
    assert int(restored.step) == 1
    assert all(np.array_equal(got[k], v) for k, v in expected.items())
    assert len(jax.tree_util.tree_leaves(restored.params)[0].sharding.device_set) == 1


def test_bfloat16_loss_tracks_float32(run):
    _ok(run, "bf16")
    f32, bf16 = run["bf16"]["float32"], run["bf16"]["bfloat16"]
    assert len(bf16["losses"]) == BF16_STEPS
    assert bf16["loss_dtypes"] == ["float32"] and bf16["param_dtypes"] == ["float32"]
    assert f32["losses"] != bf16["losses"]  # the activations really were bfloat16
    np.testing.assert_allclose(bf16["losses"], f32["losses"], rtol=2e-2)
    assert f32["losses"][-1] < f32["losses"][0]


@pytest.mark.parametrize("strategy", ["greedy", "beam"])
def test_sharded_decoding_equals_single_device(run, strategy):
    _ok(run, "decode")
    r = run["decode"][strategy]
    assert r["equal"] and r["shape"] == r["ref_shape"] and r["shape"][0] == 6 and r["nonpad"] > 0


def test_training_loop_on_2_hosts_equals_1_device(run):
    """train() on 2 processes x 2 devices, each reading half of every batch, against 1 device."""
    _ok(run, "loop")
    for r in run["loop"]:
        assert r == {"devices": DEVICES, "step": 4, "processes": 2, "local_devices": DEVICES // 2}
    assert int(run["loop1"].step) == 4
    expected = flat(run["loop1"].params)
    got = dict(np.load(os.path.join(run["out"], "loop_mp.npz")))
    assert max(float(np.max(np.abs(got[k] - v))) for k, v in expected.items()) < TOL
    # One record per (step, split): only process 0 wrote metrics.
    records, ref = (read_metrics(os.path.join(run["out"], d)) for d in ("loop_mp", "loop1"))
    assert [(m["step"], m["split"]) for m in records] == [(m["step"], m["split"]) for m in ref]
    assert len(ref) >= 4  # train x2, validation, test
    for m, m1 in zip(records, ref, strict=True):
        assert m["loss"] == pytest.approx(m1["loss"], rel=TOL)
    # The checkpoint both processes saved restores here, on one device, to the same parameters.
    target = create_train_state(run["loop1"].config, jax.random.key(1), steps_per_epoch=1)
    ckpt = Checkpointer(os.path.join(run["out"], "loop_mp"), async_save=False)
    restored, _, _ = ckpt.restore(target, jax.random.key(0))
    ckpt.close()
    assert all(np.array_equal(flat(restored.params)[k], v) for k, v in got.items())


def test_one_device_runs_the_plain_step():
    """With one device the runner adds nothing: the jitted steps of step.py on the batch as it is."""
    par = Parallel(step_config())
    batch = random_batch(4, 5, 4)
    assert par.shard_batch(batch) is batch and par.place(batch) is batch
    assert par._train is step_lib.train_step and par._eval is step_lib.eval_step
    assert par.multiple == 1 and par.is_main_process


def test_distributed_setup_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("S2S_DISTRIBUTED", raising=False)
    assert initialize_distributed() is False  # a single-process run: nothing to join
    monkeypatch.setenv("S2S_DISTRIBUTED", "1")
    monkeypatch.setenv("S2S_NUM_PROCESSES", "two")
    with pytest.raises(ConfigError, match="S2S_NUM_PROCESSES='two' is not an integer"):
        initialize_distributed()


def test_many_seeds_on_4_devices_equal_each_seed_on_1_device(run):
    _ok(run, "seeds")
    assert len(run["seeds"]) == 8  # float32 and bfloat16, sharding and pmap, shared and per-seed batches
    for name, r in run["seeds"].items():
        # bfloat16 products summed in another order can flip a gradient's sign, which moves Adam's
        # update (lr 1e-3) by 2e-3.
        assert r["param_diff"] < (TOL if name.startswith("float32") else 5e-3), name
        assert r["seeds_differ"] > 1e-3 and r["state_devices"] == DEVICES, name
