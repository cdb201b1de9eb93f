"""The Flower app on Flower's deployment engine: one SuperLink and two SuperNodes on 127.0.0.1.

The test starts every Flower process itself (separate processes, bound to 127.0.0.1,
telemetry and runtime installs off), submits the app with ``flwr run``, waits (bounded)
for two rounds on the tiny preset, and always stops what it started. It then checks
that the aggregated model of each round equals what the package's FedAvg computes from
the same client updates, and that the clients' updates are what the package's own
client code produces.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytest.importorskip("flwr")

from faimi_tutorial import federated  # noqa: E402
from faimi_tutorial import flower_app as fa  # noqa: E402

BIN = Path(sys.executable).parent
TIMEOUT_S = 300


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _wait_port(port: int, proc: subprocess.Popen, deadline: float) -> None:
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.args[0]} exited early with {proc.returncode}")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def _stop(proc: subprocess.Popen) -> None:
    """Stop a process this test started, and the children it started (its own session)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def deployment_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("flower")
    out = root / "out"
    settings = fa.FlowerSettings(preset="tiny", dims=2, num_sites=2, rounds=2, save_dir=str(out))
    app = fa.write_app(root / "app", settings)
    home = root / "flwr-home"
    home.mkdir()
    serverappio, fleet, control, cio0, cio1 = _free_ports(5)
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "local-test"\n\n[superlink.local-test]\n'
        f'address = "127.0.0.1:{control}"\ninsecure = true\n'
    )
    env = dict(os.environ)
    env.update(
        FLWR_HOME=str(home),
        FLWR_TELEMETRY_ENABLED="0",
        FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION="1",
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
        # the SuperLink and SuperNodes start flower-superexec and the apps from this venv
        PATH=str(BIN) + os.pathsep + os.environ.get("PATH", ""),
    )
    logs = root / "logs"
    logs.mkdir()
    procs: list[subprocess.Popen] = []
    files = []

    def start(name: str, args: list[str]) -> subprocess.Popen:
        log = open(logs / f"{name}.log", "w")
        files.append(log)
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root,
                                start_new_session=True)
        procs.append(proc)
        return proc

    def tails() -> str:
        return "\n".join(f"--- {Path(f.name).name}\n" + Path(f.name).read_text()[-3000:] for f in files)

    started = time.time()
    deadline = started + TIMEOUT_S
    try:
        link = start("superlink", [
            str(BIN / "flower-superlink"), "--insecure",
            "--serverappio-api-address", f"127.0.0.1:{serverappio}",
            "--fleet-api-address", f"127.0.0.1:{fleet}",
            "--control-api-address", f"127.0.0.1:{control}",
            "--storage-dir", str(root / "ffs"),
        ])
        for port in (fleet, control, serverappio):
            _wait_port(port, link, deadline)
        for i, cio in enumerate((cio0, cio1)):
            start(f"supernode-{i}", [
                str(BIN / "flower-supernode"), "--insecure",
                "--superlink", f"127.0.0.1:{fleet}",
                "--clientappio-api-address", f"127.0.0.1:{cio}",
                "--node-config", f"partition-id={i} num-partitions=2",
            ])
        run = subprocess.run(
            [str(BIN / "flwr"), "run", str(app), "local-test", "--format", "json"],
            env=env, cwd=root, capture_output=True, text=True, timeout=max(10, deadline - time.time()),
        )
        assert run.returncode == 0, run.stdout + run.stderr + tails()
        status = out / "server-status.pt"
        while not status.exists() and time.time() < deadline:
            for p in procs:
                assert p.poll() is None, f"{p.args[0]} exited with {p.returncode}\n{tails()}"
            time.sleep(0.5)
        if not status.exists():
            raise TimeoutError(f"the Flower run did not finish within {TIMEOUT_S} s\n{tails()}")
        yield {"settings": settings, "out": out, "seconds": time.time() - started,
               "status": torch.load(status, weights_only=True)}
    finally:
        for p in reversed(procs):
            _stop(p)
        for f in files:
            f.close()


def test_deployment_engine_two_rounds_match_package_fedavg(deployment_run):
    out, settings = deployment_run["out"], deployment_run["settings"]
    assert deployment_run["status"]["rounds_aggregated"] == 2
    for r in (1, 2):
        updates = [torch.load(out / f"client-round-{r}-site-{i}.pt", weights_only=True) for i in (0, 1)]
        expected = federated.fedavg([u["params"] for u in updates], [u["n_samples"] for u in updates])
        aggregated = torch.load(out / f"global-round-{r}.pt", weights_only=True)
        assert set(aggregated) == set(expected)
        for key in expected:
            torch.testing.assert_close(aggregated[key], expected[key], rtol=1e-5, atol=1e-6)
        # the two sites really differ, so the average is not trivially one of them
        diff = max(float((updates[0]["params"][k] - updates[1]["params"][k]).abs().max()) for k in expected)
        assert diff > 1e-4


def test_deployment_clients_run_the_package_client_code(deployment_run):
    out, settings = deployment_run["out"], deployment_run["settings"]
    fed = settings.federation()
    config = settings.fed_config()
    initial = torch.load(out / "global-round-0.pt", weights_only=True)
    reference = federated.init_params(config, settings.in_shape(), settings.seed)
    for key in reference:
        torch.testing.assert_close(initial[key], reference[key])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the SuperNodes (OMP_NUM_THREADS=1): same float rounding
    try:
        mine_all = [
            federated.client_update(initial, fed.train_site(site), config,
                                    seed=federated.client_seed(settings.seed, 0, i), device="cpu")
            for i, site in enumerate(fed.site_names)
        ]
    finally:
        torch.set_num_threads(threads)
    for i, mine in enumerate(mine_all):
        theirs = torch.load(out / f"client-round-1-site-{i}.pt", weights_only=True)
        assert theirs["n_samples"] == mine.n_samples == settings.n_train
        for key in mine.params:
            torch.testing.assert_close(theirs["params"][key], mine.params[key], rtol=1e-4, atol=1e-5)


def test_deployment_run_was_bounded(deployment_run):
    assert deployment_run["seconds"] < TIMEOUT_S
