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
        result = {"settings": settings, "out": out, "seconds": time.time() - started,
                  "status": torch.load(status, weights_only=True)}
    finally:
        # stop everything as soon as the run is over (also when it failed)
        for p in reversed(procs):
            _stop(p)
        for f in files:
            f.close()
    result["all_stopped"] = all(p.poll() is not None for p in procs)
    return result


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
    # Adam divides by the root of tiny second moments, so rounding differences between
    # processes (memory alignment picks other SIMD paths on some CPUs) grow to ~lr-sized
    # differences in single weights: a 1e-7 perturbation of the start moves the update by
    # ~7 % of its length, while a wrong seed or the other site's data moves it by 140-170 %.
    # So compare whole updates relative to their length, not weight by weight.
    def flat(state):
        return torch.cat([state[k].double().flatten() for k in sorted(state)])

    for i, mine in enumerate(mine_all):
        theirs = torch.load(out / f"client-round-1-site-{i}.pt", weights_only=True)
        assert theirs["n_samples"] == mine.n_samples == settings.n_train
        assert set(theirs["params"]) == set(mine.params)
        step = (flat(mine.params) - flat(initial)).norm()
        gap = (flat(theirs["params"]) - flat(mine.params)).norm()
        other = (flat(theirs["params"]) - flat(mine_all[1 - i].params)).norm()
        assert gap < 0.3 * step, f"site {i}: update differs by {float(gap / step):.2f} of its length"
        assert other > 0.5 * step  # the sites' updates are distinguishable at this tolerance


def test_deployment_run_was_bounded_and_cleaned_up(deployment_run):
    assert deployment_run["seconds"] < TIMEOUT_S
    assert deployment_run["all_stopped"]


# ----------------------------------------------------------------------------- app pieces


def test_settings_validate_and_round_trip_run_config():
    settings = fa.FlowerSettings(rounds=3, strategy="fedprox", save_dir="x")
    again = fa.FlowerSettings.from_run_config(settings.to_run_config())
    assert again == settings
    assert fa.FlowerSettings.from_run_config({"local-epochs": 2, "unknown-key": 1}).local_epochs == 2
    assert settings.fed_config().rounds == 3
    assert settings.in_shape() == (1, 32, 32)
    for kwargs, field in (({"rounds": 0}, "rounds"), ({"strategy": "travelling"}, "strategy"),
                          ({"num_sites": 0}, "num_sites"), ({"lr": -1.0}, "lr"), ({"preset": "huge"}, "preset")):
        with pytest.raises(ValueError, match=field):
            fa.FlowerSettings(**kwargs)


def test_settings_mitigation_reaches_the_clients_objective():
    settings = fa.FlowerSettings(mitigation="reweighing")
    assert settings.fed_config().mitigation == "reweighing"
    assert fa.FlowerSettings.from_run_config(settings.to_run_config()) == settings
    assert type(settings.fed_config().objective()).__name__ == "Reweighing"
    with pytest.raises(ValueError, match="mitigation"):
        fa.FlowerSettings(mitigation="fairness")


def test_write_app_names_the_components_and_every_setting(tmp_path):
    import tomllib

    app = fa.write_app(tmp_path / "app", fa.FlowerSettings(rounds=4))
    config = tomllib.loads((app / "pyproject.toml").read_text())
    components = config["tool"]["flwr"]["app"]["components"]
    assert components == {"serverapp": "faimi_tutorial.experiments.flower_app:server_app",
                          "clientapp": "faimi_tutorial.experiments.flower_app:client_app"}
    assert config["tool"]["flwr"]["app"]["config"]["rounds"] == 4
    assert set(config["tool"]["flwr"]["app"]["config"]) == set(fa.FlowerSettings().to_run_config())
    assert fa.pyproject_text().startswith("[build-system]")
    # the module-level apps that flwr loads by name
    from flwr.clientapp import ClientApp
    from flwr.serverapp import ServerApp

    assert isinstance(fa.server_app, ServerApp) and isinstance(fa.client_app, ClientApp)
    assert isinstance(fa.make_server_app(), ServerApp) and isinstance(fa.make_client_app(), ClientApp)


def test_site_data_from_simulation_and_from_a_dataset_folder(tmp_path):
    from faimi_tutorial import datasets

    settings = fa.FlowerSettings()
    train, test, index = fa.site_data(settings, {"partition-id": 1, "num-partitions": 2})
    fed = settings.federation()
    assert index == 1 and len(train) == settings.n_train and len(test) == settings.n_test
    assert train.meta["subject_id"].tolist() == fed.train_site("site-B").meta["subject_id"].tolist()
    with pytest.raises(ValueError, match="partition-id"):
        fa.site_data(settings, {"partition-id": 5})
    path = datasets.write_cohort(fed.cohort, tmp_path / "sites")
    train2, test2, index2 = fa.site_data(settings, {"data-path": str(path), "site": "site-A", "partition-id": 0})
    assert index2 == 0
    assert sorted(train2.meta["subject_id"]) == sorted(fed.train_site("site-A").meta["subject_id"])
    assert sorted(test2.meta["subject_id"]) == sorted(fed.test_site("site-A").meta["subject_id"])
    torch.testing.assert_close(train2.images.mean(), fed.train_site("site-A").images.mean(), atol=1e-4, rtol=0)


def _listening(pids: set[int]) -> set[tuple[str, int, int]]:
    psutil = pytest.importorskip("psutil")
    out = set()
    for conn in psutil.net_connections(kind="inet"):
        if conn.status == psutil.CONN_LISTEN and conn.pid in pids:
            out.add((conn.laddr.ip, conn.laddr.port, conn.pid))
    return out


def _is_loopback(ip: str) -> bool:
    import ipaddress

    address = ipaddress.ip_address(ip.split("%")[0])
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def test_run_simulation_matches_package_fedavg():
    import threading

    psutil = pytest.importorskip("psutil")
    settings = fa.FlowerSettings(rounds=1)
    # list the sockets of this process and of every process it starts (Ray's gcs_server,
    # raylet, workers) while the run goes on: each must listen on the loopback only
    seen: set[tuple[str, int, int]] = set()
    done = threading.Event()

    def watch() -> None:
        me = psutil.Process()
        while not done.is_set():
            try:
                pids = {me.pid} | {c.pid for c in me.children(recursive=True)}
                seen.update(_listening(pids))
            except psutil.Error:
                pass
            done.wait(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        history = fa.run_simulation(settings)
    finally:
        done.set()
        watcher.join()
    assert len({port for _, port, _ in seen}) >= 2, seen  # Ray's servers were seen
    exposed = sorted((ip, port) for ip, port, _ in seen if not _is_loopback(ip))
    assert not exposed, f"listening beyond 127.0.0.1: {exposed}"
    assert [r for r, _ in history] == [0, 1]
    seen = []
    federated.train_fedavg(settings.federation(), settings.fed_config(), seed=settings.seed,
                           callback=lambda r, u, p: seen.append(p))
    config, in_shape = settings.fed_config(), settings.in_shape()
    flower = federated.FedResult("fedavg", history[1][1], {}, config, in_shape, None, 0)
    package = federated.FedResult("fedavg", seen[0], {}, config, in_shape, None, 0)
    test = settings.federation().test
    # same function (weights that only carry rounding noise, such as a convolution bias
    # in front of an instance norm, may differ with the number of threads)
    assert float(abs(flower.predict(test) - package.predict(test)).max()) < 1e-3
    initial = federated.init_params(config, in_shape, settings.seed)
    moved = max(float((seen[0][k] - initial[k]).abs().max()) for k in initial)
    assert moved > 1e-3  # the round did train


def test_client_save_dir_stays_inside_the_nodes_root(tmp_path, monkeypatch):
    monkeypatch.delenv("FAIMI_FL_SAVE_ROOT", raising=False)
    root = tmp_path / "allowed"
    node = {"save-root": str(root)}
    assert fa.client_save_dir("", node) is None
    assert fa.client_save_dir("run-1", node) == root.resolve() / "run-1"
    assert fa.client_save_dir(str(root / "a" / "b"), node) == root.resolve() / "a" / "b"
    for bad in ("/", "/etc", "..", "../elsewhere", "a/../../x", str(tmp_path)):
        with pytest.raises(ValueError, match="save-dir.*outside"):
            fa.client_save_dir(bad, node)
    monkeypatch.chdir(tmp_path)  # default root: the SuperNode's working folder
    assert fa.client_save_dir("out", {}) == tmp_path.resolve() / "out"
    with pytest.raises(ValueError, match="outside"):
        fa.client_save_dir("/tmp", {})
    monkeypatch.setenv("FAIMI_FL_SAVE_ROOT", str(root))
    with pytest.raises(ValueError, match="outside"):
        fa.client_save_dir(str(tmp_path / "x"), {})
