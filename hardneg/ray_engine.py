"""`--engine ray`: the same units the local engine writes (embed shards, mine chunks), run by actors
on a Ray cluster. Optional: ``pip install 'hardneg[ray]'``.

The design keeps the local engine the reference: the driver plans the units, Ray Data maps them
over a pool of actors (`ActorPoolStrategy`: each actor keeps its model or index loaded, one per
GPU, else one per CPU), and each actor writes its unit's file atomically into the artifact's work directory (``<out>.partial``) under the same name
the local engine would, and the local code then finds every unit done, exactly as when resuming,
merges and commits. So the artifact is the same whoever computed it, a killed driver resumes from
the finished units, and a failed task is retried by Ray (``max_task_retries``) without a trace in
the output. Every worker must see the work directory: ``--out`` and the inputs must be on storage
all nodes share (checked before any work). Exact search only: an HNSW index is one node's.
"""

from __future__ import annotations

import logging
import os
import socket
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hardneg.config import EmbedConfig, MineConfig
from hardneg.errors import ConfigError, HardnegError
from hardneg.progress import NULL_REPORTER, Reporter


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("--engine ray needs Ray: pip install 'hardneg[ray]'") from None
    return ray


def connect(address: str | None = None) -> Any:
    """Join the cluster at ``address`` (default ``RAY_ADDRESS``), or start a local one; reuse a
    connection this process already has."""
    ray = _ray()
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS")
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=os.cpu_count() or 1, **kwargs)
    return ray


def actor_count(ray: Any) -> tuple[int, dict[str, float]]:
    """How many actors to run and the resources of each: one per GPU when there are GPUs, else
    one per CPU."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if gpus:
        return gpus, {"num_gpus": 1, "num_cpus": 1}
    return max(1, int(resources.get("CPU", 1))), {"num_cpus": 1}


def check_shared(ray: Any, directory: Path) -> None:
    """Every node must see the work directory; a node-local path is an error, not partial output."""

    @ray.remote(num_cpus=0)
    def sees(path: str) -> tuple[str, bool]:
        return socket.gethostname(), os.path.isdir(path)

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    refs = [
        sees.options(scheduling_strategy=_on_node(ray, n["NodeID"])).remote(str(directory)) for n in nodes
    ] or [sees.remote(str(directory))]
    blind = [host for host, ok in ray.get(refs) if not ok]
    if blind:
        raise HardnegError(
            f"--engine ray: node(s) {', '.join(sorted(set(blind)))} cannot see {directory}; put --out and the inputs "
            "on storage every node shares (NFS, Lustre, a mounted bucket)"
        )


def _on_node(ray: Any, node_id: str) -> Any:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)


def _map_units(ray: Any, worker: type, constructor_args: tuple[Any, ...], units: list[Any], count: int,
               resources: dict[str, float], reporter: Reporter, label: str) -> Iterator[Any]:
    """Run ``worker(*constructor_args)(batch)`` over the units with Ray Data: an actor pool of
    ``count`` actors (``ActorPoolStrategy``), one unit per batch, results yielded as they come.
    A dead actor is restarted and its unit retried (``max_restarts``/``max_task_retries``)."""
    import pickle

    from ray.data import ActorPoolStrategy, DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = False  # hardneg's own progress and status lines are the output
    context.enable_operator_progress_bars = False
    context.print_on_execution_start = False
    context.enable_auto_log_stats = False
    context.verbose_stats_logs = False
    context.execution_options.preserve_order = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    dataset = ray.data.from_items([{"unit": pickle.dumps(u)} for u in units], override_num_blocks=len(units))
    with warnings.catch_warnings():
        # Ray >= 2.60 deprecates remote args passed as **kwargs (removed in 2.64, hence the extra's
        # `<2.64`) but names no replacement for the restart bounds: without them Ray Data restarts an
        # actor forever, so a unit that kills its actor every time (out of memory) would never end.
        warnings.filterwarnings("ignore", message=r"`ray_remote_args` is deprecated")
        mapped = dataset.map_batches(
            worker, fn_constructor_args=constructor_args, batch_size=1, batch_format="pandas",
            compute=ActorPoolStrategy(size=count), num_cpus=resources.get("num_cpus", 1), num_gpus=resources.get("num_gpus", 0),
            max_restarts=2, max_task_retries=2,
        )
    for row in mapped.iter_rows():
        reporter.progress(label, 1)
        yield pickle.loads(row["result"])


def _crash_once_for_tests() -> None:
    """Fault injection for the retry test: with HARDNEG_RAY_CRASH_ONCE=<marker path>, the first
    unit any actor starts kills that actor's process (as an OOM kill or a lost node would); Ray
    restarts the actor and retries the unit."""
    marker = os.environ.get("HARDNEG_RAY_CRASH_ONCE")
    if marker:
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.close(fd)
        os._exit(1)


# --------------------------------------------------------------------------- embed


class _Encoder:
    """A Ray Data actor holding one loaded model; encodes shards into the work directory."""

    def __init__(self, config_dict: dict[str, Any], threads: int, partial: str) -> None:
        import torch

        from hardneg.encoders import load_encoder

        torch.set_num_threads(max(1, threads))
        self.encoder = load_encoder(EmbedConfig(**{**config_dict, "engine": "local", "workers": 1}))
        self.partial = Path(partial)

    def __call__(self, batch: Any) -> Any:
        import pickle

        from hardneg.embed import encode_unit
        from hardneg.writes import shard_name

        _crash_once_for_tests()
        results = []
        for blob in batch["unit"]:
            unit = pickle.loads(blob)
            encoded, _ = encode_unit(unit, self.partial / unit.sub / shard_name(unit.index), self.encoder)
            results.append(pickle.dumps((unit.sub, unit.index, encoded, len(unit.items) - encoded)))
        return {"result": results}


class RayEncode:
    """The ``remote`` of ``hardneg.embed._embed``: missing shards encoded by actors."""

    def __init__(self, config: EmbedConfig, address: str | None, reporter: Reporter) -> None:
        import dataclasses

        self.config = dataclasses.asdict(config)
        self.address = address
        self.reporter = reporter

    def __call__(self, partial: Path, units: list[Any]) -> dict[tuple[str, int], tuple[int, int]]:
        if not units:
            return {}
        ray = connect(self.address)
        check_shared(ray, partial)
        count, resources = actor_count(ray)
        count = min(count, len(units))
        threads = max(1, int(ray.cluster_resources().get("CPU", 1)) // count)
        self.reporter.log(f"engine ray: Ray Data, {count} actor(s) encode {len(units)} shard(s)")
        out: dict[tuple[str, int], tuple[int, int]] = {}
        for sub, index, encoded, reused in _map_units(ray, _Encoder, (self.config, threads, str(partial)), units, count,
                                                      resources, NULL_REPORTER, "Encoding"):
            out[(sub, index)] = (encoded, reused)
        return out


# --------------------------------------------------------------------------- mine


class _ChunkMiner:
    """A Ray Data actor holding one loaded miner (index, query vectors, teacher); mines chunks."""

    def __init__(self, args: dict[str, Any], threads: int, partial: str) -> None:
        try:
            import torch

            torch.set_num_threads(max(1, threads))
        except ImportError:  # pragma: no cover - torch is a dependency
            pass
        from hardneg.mine import _Miner
        from hardneg.teachers import load_teacher

        config = args["config"]
        scorer = load_teacher(config.cross_encoder, config.ce_batch_size) if config.cross_encoder else None
        self.miner = _Miner(**{**args, "scorer": scorer})
        self.todo = self.miner.plan()
        self.partial = Path(partial)

    def __call__(self, batch: Any) -> Any:
        import pickle

        _crash_once_for_tests()
        results = []
        for blob in batch["unit"]:
            number = pickle.loads(blob)
            self.miner.mine_chunk(self.partial, number, self.todo)
            results.append(pickle.dumps(number))
        return {"result": results}


def mine_chunks(args: dict[str, Any], partial: Path, numbers: list[int], address: str | None, reporter: Reporter) -> None:
    """Mine the chunks ``numbers`` of a run into ``partial`` with actors (the local engine merges)."""
    if not numbers:
        return
    ray = connect(address)
    check_shared(ray, partial)
    count, resources = actor_count(ray)
    count = min(count, len(numbers))
    threads = max(1, int(ray.cluster_resources().get("CPU", 1)) // count)
    reporter.log(f"engine ray: Ray Data, {count} actor(s) mine {len(numbers)} chunk(s)")
    for _ in _map_units(ray, _ChunkMiner, (args, threads, str(partial)), numbers, count, resources, NULL_REPORTER, "Mining"):
        pass


__all__ = ["RayEncode", "connect", "mine_chunks", "MineConfig"]
