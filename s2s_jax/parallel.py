"""Data parallelism over every device, on one host or several.

A one-axis device mesh (axis ``data``) spans all devices of all processes.
The global batch is split along its rows over the axis; parameters and
optimizer state are replicated on every device, so each device computes the
gradients of its rows and the devices combine them. Two routes, chosen by
``TrainConfig.parallelism``:

- ``sharding`` (the default, the route JAX recommends): the pure step of
  :mod:`s2s_jax.training.step` is jit-compiled with the batch sharded
  ``P("data")`` and the state replicated ``P()``; XLA partitions the program
  and inserts the all-reduces.
- ``pmap``: the same step under ``jax.pmap``; each device sees its rows as a
  batch of its own and the gradients and token statistics are summed over the
  axis with ``lax.psum``. The state is broadcast (``in_axes=None``) rather
  than stacked, so both routes hold the same replicated state and the same
  checkpoints.

Both are exact: the loss is the mean over the real tokens of the whole global
batch, as on one device (random draws aside: with dropout or sampled
scheduled sampling the ``pmap`` route draws per device, so its masks differ
from one device's; the ``sharding`` route draws the same as one device).
Devices hold different numbers of real tokens, so under ``pmap`` a device's
gradient of its own per-token mean is weighted by its share of the global
token count before the sum (a plain ``pmean`` would weight a device of short
rows as much as one of long rows).

Several hosts (a TPU pod slice, several GPU boxes): every host runs the same
program. :func:`initialize_distributed` joins them (``S2S_DISTRIBUTED=1``);
each host reads only its slice of each training batch's rows
(:class:`~s2s_jax.data.pipeline.BatchIterator` with ``process_index`` and
``process_count``), and :meth:`Parallel.shard_batch` assembles the global
array from the hosts' slices. Evaluation batches are held whole by every
host (:meth:`Parallel.place`). Process 0 prepares the data and tokenizers
before the others load them (:func:`main_process_first`); only process 0
writes metrics; every process calls the checkpointer, as Orbax requires.

With one device :class:`Parallel` runs the plain jitted ``train_step`` and
``eval_step`` on the batches as they are: no overhead.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import multihost_utils
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from s2s_jax.config import Config, DecodeConfig
from s2s_jax.data.pipeline import check_batch_rows
from s2s_jax.decoding import decode
from s2s_jax.errors import ConfigError
from s2s_jax.models.seq2seq import Seq2Seq
from s2s_jax.training import seeds as seeds_lib
from s2s_jax.training import step as step_lib
from s2s_jax.training.step import TrainState
from s2s_jax.vocab import PAD_ID

AXIS = "data"
DISTRIBUTED_ENV = "S2S_DISTRIBUTED"  # "1": this process is one of several (jax.distributed.initialize)
NUM_PROCESSES_ENV = "S2S_NUM_PROCESSES"  # set both outside a TPU pod, SLURM or Open MPI,
PROCESS_ID_ENV = "S2S_PROCESS_ID"  # with JAX_COORDINATOR_ADDRESS=host:port of process 0
SUMMED_STATS = ("nll_sum", "tokens", "correct")

Batch = dict[str, Any]
T = TypeVar("T")


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"the environment variable {name}={value!r} is not an integer.") from None


def initialize_distributed() -> bool:
    """Call ``jax.distributed.initialize()`` when ``S2S_DISTRIBUTED=1``; True if this is a multi-process run.

    On a Cloud TPU pod slice, under SLURM or Open MPI JAX finds the coordinator and this
    process's id itself; elsewhere set ``JAX_COORDINATOR_ADDRESS`` (host:port of process 0),
    ``S2S_NUM_PROCESSES`` and ``S2S_PROCESS_ID``. Must run before anything else uses JAX.
    """
    if os.environ.get(DISTRIBUTED_ENV, "0").lower() not in ("1", "true", "yes"):
        return False
    if not jax.distributed.is_initialized():
        jax.distributed.initialize(num_processes=_env_int(NUM_PROCESSES_ENV), process_id=_env_int(PROCESS_ID_ENV))
    return jax.process_count() > 1


def main_process_first(fn: Callable[[], T]) -> T:
    """``fn()`` on process 0, then on the other processes, which find what it wrote (data
    prepared by TFDS, tokenizers trained into the shared workdir) instead of racing to write
    it too, or training tokenizers of their own. Just ``fn()`` on a single process."""
    if jax.process_count() == 1:
        return fn()
    first = jax.process_index() == 0
    result = fn() if first else None
    multihost_utils.sync_global_devices("s2s_jax: process 0 is done")
    return result if first else fn()


def _psum(tree: Any) -> Any:
    return jax.tree_util.tree_map(lambda x: lax.psum(x, AXIS), tree)


def pmap_train_step_fn(state: TrainState, batch: Batch, key: jax.Array) -> tuple[TrainState, dict]:
    """The per-device body of the pmap train step: this device's rows [rows, ...], the
    replicated state; returns the same replicated new state and metrics as
    :func:`~s2s_jax.training.step.train_step_fn` on the global batch."""
    # Each device draws its own dropout / sampling noise (with one key they would all repeat the same masks).
    key = jax.random.fold_in(key, lax.axis_index(AXIS))
    (loss, stats), grads = step_lib.loss_and_grads(state, batch, key)
    tokens = jnp.maximum(stats["tokens"], 1.0)
    weight = tokens / jnp.maximum(lax.psum(stats["tokens"], AXIS), 1.0)  # this device's share of the tokens
    grads = _psum(jax.tree_util.tree_map(lambda g: g * weight.astype(g.dtype), grads))
    loss = lax.psum(loss * weight, AXIS)
    stats = stats | _psum({k: stats[k] for k in SUMMED_STATS})
    state, extra = step_lib.apply_gradients(state, grads)
    return state, {"loss": loss, **stats, **extra}


def pmap_eval_step_fn(state: TrainState, batch: Batch) -> dict[str, jax.Array]:
    """The per-device body of the pmap eval step: token sums over every device's rows."""
    return _psum(step_lib.eval_step_fn(state, batch))


class Parallel:
    """Runs the train and eval steps data-parallel over every device (see the module docstring).

    ``replicate`` places a state (or any pytree) on every device, ``shard_batch`` splits a
    batch's rows over the devices, ``train_step`` / ``eval_step`` are the steps of
    :mod:`s2s_jax.training.step` with the same signatures, ``decode`` decodes sharded over
    rows. ``multiple`` is the number of devices a batch's rows must divide by.
    """

    def __init__(self, cfg: Config, devices: list[jax.Device] | None = None):
        devices = jax.devices() if devices is None else devices
        self.mode = cfg.train.parallelism
        self.num_devices = self.multiple = len(devices)
        self.process_index, self.process_count = jax.process_index(), jax.process_count()
        self.is_main_process = self.process_index == 0
        self.single = self.num_devices == 1
        # Auto axes: jit propagates these shardings into unannotated code (the decoders).
        self.mesh = jax.make_mesh((self.num_devices,), (AXIS,), axis_types=(AxisType.Auto,), devices=devices)
        self.replicated = NamedSharding(self.mesh, P())
        self.rows = NamedSharding(self.mesh, P(AXIS))
        self._local_rows = NamedSharding(self.mesh.local_mesh, P(AXIS))
        if cfg.data.batch_tokens <= 0:
            check_batch_rows(cfg.data.batch_size, self.multiple)
        self._train: Callable
        self._eval: Callable
        if self.single:
            self._train, self._eval = step_lib.train_step, step_lib.eval_step
        elif self.mode == "pmap":
            pmap = dict(axis_name=AXIS, out_axes=None, devices=list(self.mesh.devices.flat))
            self._train = jax.pmap(pmap_train_step_fn, in_axes=(None, 0, None), donate_argnums=0, **pmap)
            self._eval = jax.pmap(pmap_eval_step_fn, in_axes=(None, 0), **pmap)
        else:
            rep, rows = self.replicated, self.rows
            self._train = jax.jit(step_lib.train_step_fn, in_shardings=(rep, rows, rep), out_shardings=(rep, rep),
                                  donate_argnums=0)
            self._eval = jax.jit(step_lib.eval_step_fn, in_shardings=(rep, rows), out_shardings=rep)

        self._seeds_train: dict[bool, Callable] = {}

    # -- placement ----------------------------------------------------------------------------

    def replicate(self, tree: Any) -> Any:
        """``tree`` (a TrainState, a PRNG key...) with every array on every device; identical on
        every process. A copy, so that donating it to :meth:`train_step` leaves ``tree`` intact
        (without the copy the first device's buffer would be shared). Unchanged with one device."""
        if self.single:
            return tree
        if self.process_count == 1:
            return jax.device_put(jax.tree_util.tree_map(jnp.copy, tree), self.replicated)
        return jax.tree_util.tree_map(self._replicate_across_processes, tree)

    def _replicate_across_processes(self, x: Any) -> jax.Array:
        if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            data = self._replicate_across_processes(jax.random.key_data(x))
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
        value = np.asarray(x)
        return jax.make_array_from_process_local_data(self.replicated, value, value.shape)

    def _check_rows(self, batch: Batch, local: bool) -> int:
        rows = {len(x) for x in batch.values()}
        if len(rows) != 1:
            raise ValueError(f"the arrays of a batch have different numbers of rows: {sorted(rows)}.")
        n = rows.pop()
        check_batch_rows(n * (self.process_count if local else 1), self.multiple)
        return n

    def shard_batch(self, batch: Batch) -> Batch:
        """This process's rows of a training batch -> the global batch split over the devices.

        batch: arrays [local_rows, ...]; every process passes its own rows (all of them on one
        host). Under ``pmap`` each array becomes [devices, rows per device, ...]. A global row
        count that does not divide by the number of devices is refused (:class:`ConfigError`).
        """
        self._check_rows(batch, local=True)
        if self.single:
            return batch
        if self.mode == "pmap":
            local_devices = len(self.mesh.local_devices)
            stacked = {k: np.reshape(v, (local_devices, -1, *np.shape(v)[1:])) for k, v in batch.items()}
            return jax.device_put(stacked, self._local_rows)
        return {k: jax.make_array_from_process_local_data(self.rows, np.asarray(v)) for k, v in batch.items()}

    def shard_seed_batches(self, batch: Batch) -> Batch:
        """:meth:`shard_batch` of per-seed batches stacked on a leading seed axis [seeds,
        local_rows, ...]; the rows are split over the devices (under ``pmap`` each array becomes
        [devices, seeds, rows per device, ...])."""
        self._check_rows({k: v[0] for k, v in batch.items()}, local=True)
        if self.single:
            return batch
        if self.mode == "pmap":
            local_devices = len(self.mesh.local_devices)
            stacked = {k: np.moveaxis(np.reshape(v, (v.shape[0], local_devices, -1, *v.shape[2:])), 1, 0)
                       for k, v in batch.items()}
            return jax.device_put(stacked, self._local_rows)
        rows = NamedSharding(self.mesh, P(None, AXIS))
        return {k: jax.make_array_from_process_local_data(rows, np.asarray(v)) for k, v in batch.items()}

    def place(self, batch: Batch, *, stacked: bool | None = None) -> Batch:
        """A batch that every process holds whole (evaluation) -> split over the devices.
        ``stacked`` (default: under ``pmap``) reshapes arrays to [devices, rows per device, ...]."""
        self._check_rows(batch, local=False)
        if self.single:
            return batch
        if self.mode == "pmap" if stacked is None else stacked:
            local = [i for i, d in enumerate(self.mesh.devices.flat) if d.process_index == self.process_index]
            stacked_batch = {k: np.reshape(v, (self.num_devices, -1, *np.shape(v)[1:]))[local]
                             for k, v in batch.items()}
            return jax.device_put(stacked_batch, self._local_rows)
        return {k: jax.make_array_from_process_local_data(self.rows, np.asarray(v), np.shape(v))
                for k, v in batch.items()}

    def gather(self, x: jax.Array) -> np.ndarray:
        """The whole value of a (sharded) array on every process, as numpy."""
        if not isinstance(x, jax.Array) or x.is_fully_addressable or x.is_fully_replicated:
            return np.asarray(x)
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))

    def _global(self, tree: Any) -> Any:
        """pmap returns host-local arrays when there are several processes; make them global again."""
        if self.process_count == 1:
            return tree
        return multihost_utils.host_local_array_to_global_array(tree, self.mesh, P())

    # -- steps --------------------------------------------------------------------------------

    def train_step(self, state: TrainState, batch: Batch, key: jax.Array) -> tuple[TrainState, dict]:
        """:func:`~s2s_jax.training.step.train_step` on a batch from :meth:`shard_batch`
        (donates ``state``); the state and metrics come back replicated."""
        return self._global(self._train(state, batch, key))

    def seeds_train_step(self, states: TrainState, batch: Batch, keys: jax.Array,
                         batch_per_seed: bool = False) -> tuple[TrainState, dict]:
        """:func:`~s2s_jax.training.seeds.seeds_train_step_fn` (donates ``states``) on a batch from
        :meth:`shard_batch`, or with ``batch_per_seed`` from :meth:`shard_seed_batches`."""
        return self._global(self.seeds_step(batch_per_seed)(states, batch, keys))

    def seeds_step(self, batch_per_seed: bool) -> Callable:
        """The compiled many-seed step (jit, or pmap) that :meth:`seeds_train_step` calls."""
        if batch_per_seed not in self._seeds_train:
            step = functools.partial(seeds_lib.seeds_train_step_fn, batch_per_seed=batch_per_seed)
            if self.single:
                self._seeds_train[batch_per_seed] = jax.jit(step, donate_argnums=0)
            elif self.mode == "pmap":
                body = jax.vmap(pmap_train_step_fn, in_axes=(0, 0 if batch_per_seed else None, 0))
                pmap = dict(axis_name=AXIS, out_axes=None, devices=list(self.mesh.devices.flat))
                self._seeds_train[batch_per_seed] = jax.pmap(body, in_axes=(None, 0, None), donate_argnums=0, **pmap)
            else:
                rows = NamedSharding(self.mesh, P(None, AXIS)) if batch_per_seed else self.rows
                self._seeds_train[batch_per_seed] = jax.jit(step, donate_argnums=0,
                                                            in_shardings=(self.replicated, rows, self.replicated),
                                                            out_shardings=(self.replicated, self.replicated))
        return self._seeds_train[batch_per_seed]

    def eval_step(self, state: TrainState, batch: Batch) -> dict[str, jax.Array]:
        """:func:`~s2s_jax.training.step.eval_step` on a batch from :meth:`place` or :meth:`shard_batch`."""
        return self._global(self._eval(state, batch))

    def decode(self, model: Seq2Seq, params: Any, src: np.ndarray, cfg: DecodeConfig,
               key: jax.Array | None = None) -> np.ndarray:
        """:func:`~s2s_jax.decoding.decode` with the rows of ``src`` [batch, src_len] split over
        the devices (jit carries the sharding through the decoder); every process passes the
        same ``src`` and gets all rows back. Rows are padded with empty ones to a multiple of
        the device count and the padding is dropped from the result [batch, width]."""
        if self.single:
            return np.asarray(decode(model, params, src, cfg, key))
        src = np.asarray(src)
        rows = len(src)
        padded = np.pad(src, ((0, -rows % self.multiple), (0, 0)), constant_values=PAD_ID)
        tokens = decode(model, params, self.place({"src": padded}, stacked=False)["src"], cfg, key)
        return self.gather(tokens)[:rows]
