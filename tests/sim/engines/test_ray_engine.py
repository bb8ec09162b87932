"""The ray engine, as a user runs it: `edge-agent simulate --engine ray` against a two-node Ray cluster (a head and a
second `ray start --address` node, each with a CPU and an object store of its own) and against the local Ray it
starts without --address, compared bit for bit with the local engine.

Everything Ray runs inside a loopback-only network namespace of this module's own (ray_cluster.py), stopped by its
processes' ids at the end, so no Ray of another run is touched and nothing listens beyond 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from ray_cluster import RayNamespace, two_node_cluster, unavailable_reason

from edge_agent.cli.main import cli
from edge_agent.sim.engines.base import EngineUsage
from edge_agent.sim.engines.ray_engine import describe_nodes, describe_usage

EDGE_AGENT = str(Path(sys.executable).parent / "edge-agent")
EXAMPLE_MODEL = Path(__file__).parents[3] / "examples" / "sensor_model.py"
SMOKE = ("simulate", "--setting", "smoke", "--workers", "2")
LOCAL_ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
TASK_RECORDS = """
import json, sys, ray
from ray.util.state import list_tasks
ray.init(address=sys.argv[1], logging_level="WARNING")
tasks = list_tasks(filters=[("job_id", "=", sys.argv[2])], limit=10_000, raise_on_missing_output=False)
print(json.dumps([[task.func_or_class_name, task.node_id, task.state] for task in tasks]))
"""
NO_RAY = """
import sys
class _NoRay:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "ray":
            raise ImportError("No module named 'ray'")
        return None
sys.meta_path.insert(0, _NoRay())
from edge_agent.cli.main import cli
cli()
"""

needs_namespace = pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))


def simulate(out: Path, *args: str, namespace: RayNamespace | None = None) -> str:
    """`edge-agent simulate --setting smoke --workers 2 --out OUT ARGS` (inside `namespace` if given); its stderr."""
    argv = [EDGE_AGENT, *SMOKE, "--out", str(out), *args]
    done = (namespace.run(argv) if namespace is not None else
            subprocess.run(argv, env=LOCAL_ENV, capture_output=True, text=True, timeout=300, check=False))
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stderr


def assert_same_run(left: Path, right: Path) -> None:
    """state.npz arrays equal bit for bit, and every round record equal but for when it was written and its seconds."""
    with np.load(left / "state.npz") as a, np.load(right / "state.npz") as b:
        for key in ("rounds_done", "weights", "velocity", "cumulative_bytes_per_client"):
            assert a[key].tobytes() == b[key].tobytes(), key
    assert records(left) == records(right)


def records(out: Path) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in (out / "rounds.jsonl").read_text().splitlines()]
    return [{key: value for key, value in line.items() if key not in ("time", "seconds")} for line in lines]


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """The local engine's 3-round smoke run of an algorithm, made once per module."""
    made: dict[str, Path] = {}

    def run(algorithm: str) -> Path:
        if algorithm not in made:
            made[algorithm] = tmp_path_factory.mktemp(f"local-{algorithm}")
            simulate(made[algorithm], "--algorithm", algorithm, "--rounds", "3")
        return made[algorithm]

    return run


@pytest.fixture(scope="module")
def cluster() -> Iterator[RayNamespace]:
    """A head with one CPU and a second node with one CPU, on 127.0.0.1 in a namespace of their own."""
    if unavailable_reason() is not None:
        pytest.skip(str(unavailable_reason()))
    with two_node_cluster() as namespace:
        yield namespace


@pytest.fixture(scope="module")
def cluster_spark(cluster: RayNamespace, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """SPARK's 3-round smoke run on the two-node cluster: its output folder and stderr."""
    out = tmp_path_factory.mktemp("ray-spark")
    assert cluster.address is not None
    return out, simulate(out, "--algorithm", "spark", "--rounds", "3", "--engine", "ray", "--address",
                         cluster.address, namespace=cluster)


@needs_namespace
def test_spark_on_a_ray_cluster_gives_the_local_engines_weights_and_bytes(
        cluster_spark: tuple[Path, str], local_run: Callable[[str], Path]) -> None:
    out, stderr = cluster_spark
    assert_same_run(local_run("spark"), out)
    assert re.search(r"ray: joined the cluster at 127\.0\.0\.1:\d+ as job \w+: 2 nodes, 2 CPUs", stderr), stderr
    assert "round 3/3: aggregated accuracy" in stderr


@needs_namespace
def test_dfedavg_on_the_ray_engine_gives_the_local_engines_weights_and_bytes(
        cluster: RayNamespace, local_run: Callable[[str], Path], tmp_path: Path) -> None:
    assert cluster.address is not None
    stderr = simulate(tmp_path, "--algorithm", "dfedavg", "--rounds", "3", "--engine", "ray", "--address",
                      cluster.address, namespace=cluster)
    assert_same_run(local_run("dfedavg"), tmp_path)
    assert "ray: dfedavg trains all clients in this process" in stderr


@needs_namespace
def test_spark_tasks_land_on_both_nodes_as_rays_task_records_show(cluster: RayNamespace,
                                                                 cluster_spark: tuple[Path, str]) -> None:
    _, stderr = cluster_spark
    job = re.search(r"as job (\w+):", stderr)
    printed = re.search(r"ray: 30 tasks per node: (.+); workers' peak RSS", stderr)
    assert job and printed, stderr
    shown = {node: int(count) for node, count in re.findall(r"127\.0\.0\.1 node (\w{8}) (\d+)", printed.group(1))}
    steps = ray_tasks(cluster, job.group(1), "requester_step", 30)
    assert len(steps) == 30 and {state for _, state in steps} == {"FINISHED"}  # 10 requesters x 3 rounds
    per_node: dict[str, int] = {}
    for node, _ in steps:
        per_node[node[:8]] = per_node.get(node[:8], 0) + 1
    assert len(per_node) == 2 and min(per_node.values()) > 0  # both nodes ran requesters
    assert per_node == shown  # and the run's own count agrees with Ray's records


def ray_tasks(cluster: RayNamespace, job: str, name: str, count: int) -> list[tuple[str, str]]:
    """(node, state) of the job's tasks of function `name`, once `count` of them finished (or a minute passed)."""
    deadline = time.monotonic() + 60
    while True:  # task events reach Ray's state API a moment after the tasks end
        done = cluster.run([sys.executable, "-c", TASK_RECORDS, str(cluster.address), job], timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        tasks = [(node, state) for task, node, state in json.loads(done.stdout.splitlines()[-1])
                 if task.endswith(name)]
        if (len(tasks) == count and all(state == "FINISHED" for _, state in tasks)) or time.monotonic() > deadline:
            return tasks
        time.sleep(1)


@needs_namespace
def test_a_user_models_clients_are_evaluated_on_the_cluster_as_the_local_engine_would(
        cluster: RayNamespace, tmp_path: Path) -> None:
    """A model other than the MLP is evaluated a model at a time: its clients' test accuracies are Ray tasks, one
    part of the clients per CPU, and the records equal the local engine's."""
    rng = np.random.default_rng(0)
    y = np.arange(400) % 3
    np.savez(tmp_path / "mine.npz", x=(rng.normal(size=(3, 12))[y] + rng.normal(size=(400, 12))).astype(np.float32),
             y=y)
    mine = ("--algorithm", "spark", "--rounds", "2", "--clients", "4", "--samples", "40", "--solver", "euler",
            "--model", f"{EXAMPLE_MODEL}:sensor_net", "--data", str(tmp_path / "mine.npz"))
    simulate(tmp_path / "local", *mine)
    assert cluster.address is not None
    stderr = simulate(tmp_path / "ray", *mine, "--engine", "ray", "--address", cluster.address, namespace=cluster)
    assert_same_run(tmp_path / "local", tmp_path / "ray")
    job = re.search(r"as job (\w+):", stderr)
    assert job, stderr
    parts = ray_tasks(cluster, job.group(1), "accuracies_part", 4)
    assert len(parts) == 4 and {state for _, state in parts} == {"FINISHED"}  # 2 rounds x one part per CPU


@needs_namespace
def test_a_run_moves_between_engines_and_a_ray_started_for_it_is_stopped(
        local_run: Callable[[str], Path], tmp_path: Path) -> None:
    spread = ("--algorithm", "spark", "--schedule-rounds", "3")  # so round k is round k of the 3-round run
    simulate(tmp_path, *spread, "--rounds", "1")
    with RayNamespace() as namespace:
        stderr = simulate(tmp_path, *spread, "--rounds", "2", "--resume", "--engine", "ray", namespace=namespace)
        assert re.search(r"ray: started a local Ray for this run \(object store \d+ MiB\): 1 node, 2 CPUs", stderr)
        assert "resuming" in stderr and "ray: 10 tasks per node" in stderr
        deadline = time.monotonic() + 20
        while namespace.pids() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert namespace.pids() == []  # the local Ray went with the run that started it
    simulate(tmp_path, *spread, "--rounds", "3", "--resume")
    assert_same_run(local_run("spark"), tmp_path)


def test_engine_ray_without_ray_says_in_one_line_how_to_get_it(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", NO_RAY, *SMOKE, "--engine", "ray", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "Error: --engine ray needs Ray, which is not installed here: pip install 'edge-agent[ray]'"]
    assert not tmp_path.joinpath("rounds.jsonl").exists()


def test_address_without_engine_ray_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, [*SMOKE, "--address", "auto", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == "Error: --address joins a Ray cluster: it needs --engine ray"


def test_a_runs_cluster_and_usage_lines_name_each_node_with_its_cpus_and_tasks() -> None:
    nodes = [{"NodeID": "3cba2886be20", "Alive": True, "NodeManagerAddress": "10.0.0.5", "Resources": {"CPU": 1.0}},
             {"NodeID": "e8f4339e0000", "Alive": True, "NodeManagerAddress": "10.0.0.6", "Resources": {"CPU": 4.0}},
             {"NodeID": "dead00000000", "Alive": False, "NodeManagerAddress": "10.0.0.7", "Resources": {"CPU": 8.0}}]
    assert describe_nodes(nodes) == "2 nodes, 5 CPUs (10.0.0.5 node 3cba2886: 1 CPU; 10.0.0.6 node e8f4339e: 4 CPUs)"
    usage = EngineUsage({"10.0.0.6 node e8f4339e": 7, "10.0.0.5 node 3cba2886": 3},
                        {"a pid 1": 200 << 20, "a pid 2": 310 << 20})
    assert describe_usage(usage) == ("10 tasks per node: 10.0.0.5 node 3cba2886 3, 10.0.0.6 node e8f4339e 7; "
                                     "workers' peak RSS up to 310 MiB (2 workers)")
