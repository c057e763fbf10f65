"""Multi-device checks of s2s_jax.parallel, run by tests/test_parallel.py in subprocesses
that see several CPU devices (XLA_FLAGS=--xla_force_host_platform_device_count=N, read by JAX
at start-up). They write what they measured to OUTDIR and the test process asserts on it.

    python tests/parallel_checks.py OUTDIR          # one process, 4 devices: every step check
    python tests/parallel_checks.py OUTDIR --loop   # one of 2 processes x 2 devices: train()

The second form runs under S2S_DISTRIBUTED=1 with JAX_COORDINATOR_ADDRESS, S2S_NUM_PROCESSES
and S2S_PROCESS_ID set, as on the hosts of a TPU pod slice.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback

import jax
import numpy as np

from s2s_jax.config import Config, DataConfig, DecodeConfig, TrainConfig
from s2s_jax.presets import get_preset
from tests.conftest import random_batch, tiny_model

DEVICES = 4
ROWS = 2 * DEVICES
BF16_STEPS = 3


def step_config(**train) -> Config:
    """The tiny model of the step checks (a plain RNN compiles fastest); label smoothing
    exercises the token-weighted loss."""
    return Config(model=tiny_model(cell="rnn"), data=DataConfig(batch_size=ROWS),
                  train=TrainConfig(label_smoothing=0.1, **train))


def loop_config() -> Config:
    """A few steps of the copy task, one bucket (one compiled shape), no dropout."""
    return get_preset("copy").replace(
        model={"embed_dim": 8, "hidden_size": 16, "cell": "rnn"},
        data={"synthetic_sizes": (48, 16, 16), "batch_size": ROWS, "eval_batch_size": ROWS, "bucket_lengths": (16,)},
        train={"num_steps": 4, "eval_every": 4, "checkpoint_every": 4, "log_every": 2, "quiet": True},
        decode={"max_len_b": 6})


def step_batch(rows: int = ROWS, seed: int = 1) -> dict[str, np.ndarray]:
    """Rows of different lengths; the last device's two rows are empty, so per-device token counts differ."""
    batch = random_batch(rows, 7, 6, seed=seed)
    batch["src"][-2:] = 0
    batch["tgt"][-2:] = 0
    return batch


def flat(tree) -> dict[str, np.ndarray]:
    return {jax.tree_util.keystr(p): np.asarray(x, np.float32)
            for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


def max_diff(a, b) -> float:
    fa, fb = flat(a), flat(b)
    assert fa.keys() == fb.keys()
    return max(float(np.max(np.abs(fa[k] - fb[k]))) for k in fa)


def device_count_of(tree) -> int:
    return min(len(x.sharding.device_set) for x in jax.tree_util.tree_leaves(tree))


def check_steps(results: dict) -> dict:
    from s2s_jax.parallel import Parallel
    from s2s_jax.training import step as step_lib

    batch = step_batch()
    labels = batch["tgt"][:, 1:]
    results["tokens_per_device"] = [int(np.sum(labels[i:i + 2] != 0)) for i in range(0, ROWS, 2)]
    key = jax.random.key(3)
    cfg = step_config()
    state = step_lib.create_train_state(cfg, jax.random.key(0))
    ref_state, ref_m = jax.jit(step_lib.train_step_fn)(state, batch, key)  # on the first device
    ref_eval = step_lib.eval_step(ref_state, batch)
    runners = {}
    for mode in ("sharding", "pmap"):
        par = runners[mode] = Parallel(cfg.replace(train={"parallelism": mode}))
        placed = par.shard_batch(batch)
        new, m = par.train_step(par.replicate(state), placed, par.replicate(key))
        ev = par.eval_step(new, par.place(batch))
        results[mode] = {
            "metrics": {k: [float(m[k]), float(ref_m[k])] for k in ref_m},
            "param_diff": max_diff(new.params, ref_state.params),
            "opt_state_diff": max_diff(new.opt_state, ref_state.opt_state),
            "param_change": max_diff(new.params, state.params),
            "eval": {k: [float(ev[k]), float(ref_eval[k])] for k in ref_eval},
            "state_devices": device_count_of(new),
            "batch_shape": list(placed["src"].shape),
        }
    return cfg, state, runners["sharding"]


def check_indivisible(results: dict, par) -> None:
    from s2s_jax.errors import ConfigError
    from s2s_jax.parallel import Parallel

    messages = []
    for attempt in (lambda: par.shard_batch(step_batch(rows=6)), lambda: Parallel(step_config().replace(
            data={"batch_size": 6}))):
        try:
            attempt()
            messages.append(None)
        except ConfigError as e:
            messages.append(str(e))
    results["indivisible"] = messages


def check_checkpoints(results: dict, outdir: str, cfg: Config, state, par) -> None:
    """Restore the 1-device checkpoint the test process wrote; save one from 4 devices."""
    from s2s_jax.checkpoint import Checkpointer

    expected = dict(np.load(os.path.join(outdir, "ckpt1.npz")))
    ckpt = Checkpointer(os.path.join(outdir, "ckpt1"), async_save=False)
    restored, rng, _ = ckpt.restore(par.replicate(state), par.replicate(jax.random.key(0)))
    ckpt.close()
    results["restore_1_on_4"] = {"diff": max(float(np.max(np.abs(flat(restored.params)[k] - v)))
                                             for k, v in expected.items()),
                                 "devices": device_count_of(restored), "step": int(restored.step)}
    new, _ = par.train_step(restored, par.shard_batch(step_batch(seed=5)), rng)
    np.savez(os.path.join(outdir, "ckpt4.npz"), **flat(new.params))
    ckpt = Checkpointer(os.path.join(outdir, "ckpt4"), async_save=False)
    ckpt.save(new, rng, {"config": cfg.to_dict()})
    ckpt.close()


def check_bf16(results: dict, cfg: Config, state, par) -> object:
    """The same steps in float32 and bfloat16 activations, from the same parameters."""
    from s2s_jax.models.seq2seq import Seq2Seq
    from s2s_jax.parallel import Parallel

    bf_cfg = cfg.replace(model={"dtype": "bfloat16"})
    runs = {}
    for name, c, runner in (("float32", cfg, par), ("bfloat16", bf_cfg, Parallel(bf_cfg))):
        s = runner.replicate(state.replace(config=c, model=Seq2Seq(c.model)))
        losses, dtypes = [], set()
        for i in range(BF16_STEPS):
            s, m = runner.train_step(s, runner.shard_batch(step_batch(seed=10 + i)), runner.replicate(
                jax.random.key(i)))
            losses.append(float(m["loss"]))
            dtypes.add(str(m["loss"].dtype))
        runs[name] = {"losses": losses, "loss_dtypes": sorted(dtypes),
                      "param_dtypes": sorted({str(x.dtype) for x in jax.tree_util.tree_leaves(s.params)})}
        if name == "float32":
            trained = s
    results["bf16"] = runs
    return trained


def check_decoding(results: dict, state, par) -> None:
    from s2s_jax.decoding import decode

    src = random_batch(6, 7, 6, seed=7)["src"]  # 6 rows: padded to 8 for 4 devices
    one = jax.devices()[0]
    params = jax.device_put(state.params, one)
    out = {}
    for cfg in (DecodeConfig(strategy="greedy", max_len_b=6),
                DecodeConfig(strategy="beam", beam_size=2, length_penalty=0.6, max_len_b=6)):
        ref = np.asarray(decode(state.model, params, src, cfg))
        got = par.decode(state.model, state.params, src, cfg)
        out[cfg.strategy] = {"equal": bool(np.array_equal(ref, got)), "shape": list(got.shape),
                             "ref_shape": list(ref.shape), "nonpad": int(np.sum(ref != 0))}
    results["decode"] = out


def check_loop(results: dict, outdir: str) -> None:
    """train() in a process of a multi-process run: every process calls it on the same workdir."""
    from s2s_jax.loop import train

    state = train(loop_config(), os.path.join(outdir, "loop_mp"))
    results["loop"] = {"devices": device_count_of(state), "step": int(state.step),
                       "processes": jax.process_count(), "local_devices": jax.local_device_count()}
    if jax.process_index() == 0:
        np.savez(os.path.join(outdir, "loop_mp.npz"), **flat(state.params))


def check_seeds(results: dict) -> None:
    """train.seeds' step on 4 devices (sharding and pmap; one batch shared, or one per seed;
    float32 and bfloat16) against each seed's own step on one device."""
    from s2s_jax.parallel import Parallel
    from s2s_jax.training import seeds as seeds_lib
    from s2s_jax.training import step as step_lib

    seeds = (0, 1, 2)
    keys = jax.random.split(jax.random.key(5), len(seeds))
    out = {}
    for dtype in ("float32", "bfloat16"):
        cfg = step_config().replace(model={"dtype": dtype})
        states = [step_lib.create_train_state(cfg, jax.random.key(s)) for s in seeds]
        first = states[0]
        states = [s.replace(tx=first.tx, lr_fn=first.lr_fn) for s in states]
        batches = [step_batch(seed=10 + s) for s in seeds]
        for mode in ("sharding", "pmap"):
            for per_seed in (False, True):
                refs = [jax.jit(step_lib.train_step_fn)(st, batches[i] if per_seed else batches[0], keys[i])[0]
                        for i, st in enumerate(states)]
                par = Parallel(cfg.replace(train={"parallelism": mode}))
                if per_seed:
                    placed = par.shard_seed_batches({k: np.stack([b[k] for b in batches]) for k in ("src", "tgt")})
                else:
                    placed = par.shard_batch({k: batches[0][k] for k in ("src", "tgt")})
                new, _ = par.seeds_train_step(par.replicate(seeds_lib.stack(states)), placed, par.replicate(keys),
                                              per_seed)
                out[f"{dtype}/{mode}/{'per_seed' if per_seed else 'shared'}"] = {
                    "param_diff": max(max_diff(seeds_lib.unstack(new.params, i), refs[i].params)
                                      for i in range(len(seeds))),
                    "seeds_differ": max_diff(seeds_lib.unstack(new.params, 0), seeds_lib.unstack(new.params, 1)),
                    "state_devices": device_count_of(new)}
    results["seeds"] = out


def main(outdir: str, loop: bool) -> None:
    """The 4-device checks; with ``loop`` the training loop in one of several processes."""
    if loop:
        from s2s_jax.parallel import initialize_distributed

        initialize_distributed()  # before JAX picks its devices; train() calling it again is a no-op
    results: dict = {"device_count": jax.device_count(), "errors": {}, "seconds": {}}

    def run(name, fn, *args):
        start = time.perf_counter()
        try:
            return fn(*args)
        except Exception:
            results["errors"][name] = traceback.format_exc()
            return None
        finally:
            results["seconds"][name] = round(time.perf_counter() - start, 1)

    if loop:
        run("loop", check_loop, results, outdir)
    elif keep := run("steps", check_steps, results):
        cfg, state, par = keep
        run("indivisible", check_indivisible, results, par)
        run("checkpoints", check_checkpoints, results, outdir, cfg, state, par)
        trained = run("bf16", check_bf16, results, cfg, state, par)
        run("decode", check_decoding, results, trained if trained is not None else par.replicate(state), par)
        run("seeds", check_seeds, results)
    name = f"loop_results_{jax.process_index()}.json" if loop else "results.json"
    with open(os.path.join(outdir, name), "w") as f:
        json.dump(results, f, indent=1, default=str)


if __name__ == "__main__":
    main(sys.argv[1], loop="--loop" in sys.argv[2:])
