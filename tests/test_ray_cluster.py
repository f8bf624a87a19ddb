"""gradcam.ray on a Ray cluster of two nodes started on this machine with ``ray start``:
one CPU each, so that each node holds one actor and the tasks that read the images."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
import ray

import gradcam
import gradcam.ray as gradcam_ray
from helpers.ray import tiny_rgb

#: How long the nodes may take to start on a busy machine.
START_SECONDS = 120


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ports(*names: str) -> list[str]:
    return [f"--{name}={_free_port()}" for name in names]


def _stop(processes: list[subprocess.Popen]) -> None:
    """Stop ``ray start --block`` processes: SIGTERM makes each stop its node's processes;
    what is left after 10 s (``ray start`` itself often is), the node's process group, is
    killed."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + 10
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(max(0.0, deadline - time.monotonic()))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # the node's processes (its own session)
        process.wait()


def _wait_started(process: subprocess.Popen, log: str, deadline: float) -> None:
    """Wait until ``ray start`` says its node runs; fail with its log if it stops first."""
    while True:
        with open(log, encoding="utf-8", errors="replace") as file:
            text = file.read()
        if "Ray runtime started" in text:
            return
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"ray start did not start its node; its log ends:\n{text[-3000:]}")
        time.sleep(0.5)


@contextlib.contextmanager
def two_node_cluster(cpus_per_node: int = 1):
    """Start a head node and a worker node (``ray start --block``, each with its own
    temporary folder and ports) and connect this process to them. On exit the driver
    disconnects, the nodes are stopped and their folder removed.

    Yields:
        The head node's address.
    """
    ray_command = os.path.join(os.path.dirname(sys.executable), "ray")
    # The nodes take this process's authentication mode (newer Ray versions have one): a
    # process reads it when it imports Ray, and Ray sets it to "token" when it starts a
    # local instance (test_ray.py's); unset, it is "disabled".
    env = dict(os.environ, RAY_AUTH_MODE=os.environ.get("RAY_AUTH_MODE", "disabled"))
    folder = tempfile.mkdtemp(prefix="gcray-")  # short: Ray's socket paths must fit 107 bytes
    address = f"127.0.0.1:{_free_port()}"
    deadline = time.monotonic() + START_SECONDS
    nodes = []

    def start(name, *options):
        log = os.path.join(folder, f"{name}.log")
        # Port 0: the system picks a free one (worker ports, as Ray's own test clusters do).
        command = [ray_command, "start", "--block", f"--num-cpus={cpus_per_node}", "--num-gpus=0",
                   "--disable-usage-stats", "--node-ip-address=127.0.0.1",
                   f"--temp-dir={os.path.join(folder, name)}", f"--object-store-memory={256 * 2**20}",
                   "--min-worker-port=0", "--max-worker-port=0",
                   *_ports("node-manager-port", "object-manager-port", "dashboard-agent-listen-port",
                           "dashboard-agent-grpc-port", "runtime-env-agent-port", "metrics-export-port"),
                   *options]
        with open(log, "w") as file:
            nodes.append(subprocess.Popen(command, stdout=file, stderr=subprocess.STDOUT, env=env,
                                          start_new_session=True))
        return log

    try:
        head = ("head", "--head", f"--port={address.rsplit(':', 1)[1]}", "--include-dashboard=false",
                *_ports("ray-client-server-port"))
        for attempt in (1, 2):  # Ray gives a node 30 s to register: a busy machine may miss it
            log = start(*head)
            try:
                _wait_started(nodes[-1], log, deadline)
                break
            except RuntimeError:
                _stop(nodes[-1:])
                if attempt == 2:
                    raise
        log = start("worker", f"--address={address}")
        _wait_started(nodes[-1], log, deadline)
        ray.init(address=address, log_to_driver=False, configure_logging=False)
        while sum(node["Alive"] for node in ray.nodes()) < 2:
            assert time.monotonic() < deadline, f"the worker node did not join in {START_SECONDS} s"
            time.sleep(0.5)
        yield address
    finally:
        ray.shutdown()
        _stop(nodes)
        shutil.rmtree(folder, ignore_errors=True)


def nodes_used(stats: str, operator: str) -> int:
    """The number of nodes that ran ``operator``'s tasks, from ``Dataset.stats()``."""
    section = stats.split(f"MapBatches({operator})", 1)[1].split("\nOperator ", 1)[0]
    return int(re.search(r"Tasks per node: .*; (\d+) nodes used", section).group(1))


@pytest.fixture
def twelve_photos(tmp_path):
    """The bundled photos, twice each under two names: twelve files."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in gradcam.samples.names():
        for copy in ("a", "b"):
            os.link(gradcam.samples.path(name), folder / f"{name}_{copy}.jpg")
    return sorted(str(p) for p in folder.iterdir())


def test_two_nodes_each_explain_images(tmp_path, twelve_photos):
    """Two nodes of one CPU, two actors: both nodes' actors explain images (Ray Data's
    statistics count the nodes where the actors produced their batches), and the maps
    equal GradCAM.heatmaps."""
    model_file = str(tmp_path / "tiny.keras")
    tiny_rgb().save(model_file)
    context = ray.data.DataContext.get_current()
    wait = context.wait_for_min_actors_s
    context.wait_for_min_actors_s = START_SECONDS  # both actors up before the first batch
    try:
        with two_node_cluster():
            assert ray.cluster_resources()["CPU"] == 2
            explained = gradcam_ray.explain_images(tmp_path / "photos", model=model_file, batch_size=1,
                                                   concurrency=2)
            rows = explained.take_all()
            stats = explained.stats()
    finally:
        context.wait_for_min_actors_s = wait
    assert nodes_used(stats, "Explainer") == 2, stats
    assert sorted(row["path"] for row in rows) == twelve_photos
    docs = np.concatenate([gradcam.image_from_path(p, (4, 4)) for p in twelve_photos])
    expected = gradcam.GradCAM(tiny_rgb()).compute(docs)
    by_path = {row["path"]: row["heatmap"] for row in rows}
    np.testing.assert_allclose(np.stack([by_path[p] for p in twelve_photos]), expected.heatmaps, atol=1e-6)
