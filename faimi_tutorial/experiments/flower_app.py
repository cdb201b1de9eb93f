"""A Flower app (ServerApp + ClientApp) that reuses the package's client training code.

The ClientApp's training step is
:func:`faimi_tutorial.experiments.federated.client_update`,
the very function behind :func:`faimi_tutorial.experiments.federated.train_fedavg`,
with the
same per-round seeds (:func:`faimi_tutorial.experiments.federated.client_seed`); the
ServerApp
runs Flower's own FedAvg (or FedProx) strategy. Given the same data, settings and
seed, a Flower run therefore reproduces the package's FedAvg up to floating-point
rounding, which chapter 8 and ``tests/test_flower.py`` check.

Three ways to run it:

* **In a notebook**, on Flower's simulation engine::

      settings = FlowerSettings(preset="tutorial", num_sites=4, rounds=5)
      history = run_simulation(settings)          # global model after every round

* **On one machine, as separate processes** (SuperLink, SuperNodes, ``flwr run``)
  and **across machines**: write the app folder with
  ``python -m faimi_tutorial.experiments.flower_app APP_DIR`` and follow the commands
  in the
  README section "Federated training across machines".

Where the data comes from, on each SuperNode (its ``--node-config``):

* ``data-path=/path/to/dataset`` (a folder written by
  :func:`faimi_tutorial.data.datasets.write_cohort`) and optionally ``site=NAME``: the
  node trains on that site's rows of ``participants.tsv`` (``split`` train/test);
* otherwise ``partition-id=i num-partitions=n``: the node simulates the same
  cohort as every other node (the generator is deterministic) and keeps site ``i``
  of :func:`faimi_tutorial.experiments.federated.few_large_sites` -- handy for tests
  and demos.

Flower is pinned in the ``fl`` extra (``pip install "faimi-tutorial[fl]"``).
Telemetry is switched off (``FLWR_TELEMETRY_ENABLED=0``, ``RAY_USAGE_STATS_ENABLED=0``)
and runtime dependency installation is disabled
(``FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1``) when this module is imported:
nothing is downloaded or reported at run time. Set the same variables in the
shells that start ``flower-superlink``, ``flower-supernode`` and ``flwr run``.
"""

from __future__ import annotations

import os

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION", "1")
# Ray (Flower's simulation backend): no usage reporting, no metrics agent, no device
# tips
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_enable_metrics_collection", "0")
os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")

import functools  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Mapping  # noqa: E402
from dataclasses import asdict, dataclass, fields  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from . import federated  # noqa: E402
from .. import presets
from ..data.datasets import read_dataset
from ..data.simulate import generate, SimulationConfig
from ..fairness.metrics import auroc
from ..training.loop import predict
from ..validation import (
    check_choice,
    check_integer,
    check_range,  # noqa: E402
    check_text,
)

__all__ = [
    "FLOWER_VERSION",
    "FlowerSettings",
    "site_data",
    "make_server_app",
    "make_client_app",
    "server_app",
    "client_app",
    "run_simulation",
    "write_app",
    "pyproject_text",
]

#: The Flower version this app is written for (the ``fl`` extra pins it).
FLOWER_VERSION = "1.27.0"


#: Integer settings of :class:`FlowerSettings`: (low, high), inclusive (``None``:
#: no bound).
_INTEGER_FIELDS: dict[str, tuple[int, int | None]] = {
    "dims": (2, 3),
    "n_subjects": (0, None),
    "data_seed": (0, None),
    "num_sites": (1, 26),
    "n_train": (1, None),
    "n_test": (0, None),
    "rounds": (1, None),
    "local_epochs": (1, None),
    "batch_size": (0, None),
    "seed": (0, None),
}


@dataclass
class FlowerSettings:
    """Settings of a Flower run (the app's run configuration).

    Every field maps to a run-configuration key with ``-`` for ``_``
    (``local_epochs`` -> ``local-epochs``), so ``flwr run`` can override it.

    Parameters
    ----------
    preset : str
        Simulation and training preset (``tiny``, ``tutorial``, ``paper``).
    dims : int
        2 or 3: image dimensionality of the simulated cohort.
    n_subjects : int
        Size of the simulated cohort (0: the preset's).
    data_seed : int
        Seed of the simulated cohort and of the site split.
    num_sites : int
        Number of sites (SuperNodes) taking part (>= 1).
    n_train, n_test : int
        Training and test subjects per simulated site.
    strategy : str
        ``"fedavg"`` or ``"fedprox"``.
    rounds : int
        Federated rounds (>= 1).
    local_epochs : int
        Epochs per round at each site (>= 1).
    batch_size : int
        Mini-batch size (0: the preset's).
    lr : float
        Learning rate (0: the preset's).
    proximal_mu : float
        FedProx's proximal weight (used with ``strategy="fedprox"``).
    mitigation : str
        The clients' objective (see
        :class:`~faimi_tutorial.experiments.federated.FedConfig`):
        ``"none"``, ``"reweighing"``, ``"group_balanced"``, ``"groupdro"`` or
        ``"unlearning"``.
    seed : int
        Seed of the initial model and of the client batch orders.
    save_dir : str
        When not empty, the server writes ``global-round-R.pt`` (the aggregated
        model after round R) and every client ``client-round-R-site-I.pt`` (its
        update and number of training subjects) into this folder.
    """

    preset: str = "tiny"
    dims: int = 2
    n_subjects: int = 0
    data_seed: int = 0
    num_sites: int = 2
    n_train: int = 24
    n_test: int = 4
    strategy: str = "fedavg"
    rounds: int = 2
    local_epochs: int = 1
    batch_size: int = 0
    lr: float = 0.0
    proximal_mu: float = 0.1
    mitigation: str = "none"
    seed: int = 0
    save_dir: str = ""

    def __post_init__(self) -> None:
        check_choice(self, "preset", self.preset, presets.PRESET_NAMES)
        for name, (lo, hi) in _INTEGER_FIELDS.items():
            setattr(self, name, check_integer(self, name, getattr(self, name), lo, hi))
        check_choice(self, "strategy", self.strategy, ("fedavg", "fedprox"))
        for name in ("lr", "proximal_mu"):
            setattr(self, name, check_range(self, name, getattr(self, name), 0.0))
        check_choice(self, "mitigation", self.mitigation, federated.MITIGATIONS)
        check_text(self, "save_dir", self.save_dir, empty=True)

    # ------------------------------------------------------------------ conversions
    def to_run_config(self) -> dict[str, Any]:
        """The run configuration (``[tool.flwr.app.config]`` keys and values)."""
        return {k.replace("_", "-"): v for k, v in asdict(self).items()}

    @classmethod
    def from_run_config(
        cls, run_config: Mapping[str, Any] | None, base: FlowerSettings | None = None
    ) -> FlowerSettings:
        """Settings from a Flower run configuration, on top of ``base``.

        Parameters
        ----------
        run_config : mapping
            Keys in ``-`` form (unknown keys are ignored).
        base : FlowerSettings, optional
            Defaults for keys the run configuration does not set.

        Returns
        -------
        FlowerSettings
        """
        values = asdict(base if base is not None else cls())
        known = {f.name for f in fields(cls)}
        for key, value in dict(run_config or {}).items():
            name = str(key).replace("-", "_")
            if name in known:
                values[name] = value
        return cls(**values)

    def fed_config(self) -> federated.FedConfig:
        """The :class:`~faimi_tutorial.experiments.federated.FedConfig` the clients
        train with."""
        overrides: dict[str, Any] = {
            "rounds": self.rounds,
            "local_epochs": self.local_epochs,
            "proximal_mu": self.proximal_mu,
            "mitigation": self.mitigation,
        }
        if self.batch_size:
            overrides["batch_size"] = self.batch_size
        if self.lr:
            overrides["lr"] = self.lr
        return federated.FedConfig.preset(self.preset, **overrides)

    def simulation_config(self):
        """The :class:`~faimi_tutorial.data.simulate.SimulationConfig` of the simulated
        cohort."""

        extra = {"n_subjects": self.n_subjects} if self.n_subjects else {}
        return SimulationConfig.preset(
            self.preset, dims=self.dims, seed=self.data_seed, **extra
        )

    def in_shape(self) -> tuple[int, ...]:
        """``(1, *grid)`` of the simulated images."""
        return (1, *self.simulation_config().shape)

    def federation(self) -> federated.Federation:
        """The simulated federation (the same on every node: generation is
        deterministic)."""
        return _federation(
            self.preset,
            self.dims,
            self.n_subjects,
            self.data_seed,
            self.num_sites,
            self.n_train,
            self.n_test,
        )


@functools.lru_cache(maxsize=4)
def _federation(
    preset: str,
    dims: int,
    n_subjects: int,
    data_seed: int,
    num_sites: int,
    n_train: int,
    n_test: int,
) -> federated.Federation:

    settings = FlowerSettings(
        preset=preset, dims=dims, n_subjects=n_subjects, data_seed=data_seed
    )
    cohort = generate(settings.simulation_config(), progress=False, twins=False)
    specs = federated.few_large_sites(num_sites, n_train=n_train, n_test=n_test)
    return federated.make_sites(cohort, specs, seed=data_seed)


@functools.lru_cache(maxsize=4)
def _dataset(path: str) -> Any:

    return read_dataset(path, twins=False)


#: The only address Flower's and Ray's servers bind to in this module's local runs.
LOOPBACK = "127.0.0.1"


def client_save_dir(save_dir: str, node_config: Mapping[str, Any]) -> Path | None:
    """Where a client may write its updates: ``save_dir`` inside the SuperNode's save
    root.

    ``save-dir`` comes from whoever submits the run; the folder it may write to is
    the SuperNode operator's choice: ``--node-config "save-root=/some/folder"``, else
    ``$FAIMI_FL_SAVE_ROOT``, else the SuperNode's working folder. A relative
    ``save_dir`` is taken inside that root; an absolute one must lie inside it.

    Parameters
    ----------
    save_dir : str
        The run's ``save-dir`` (empty: no saving).
    node_config : mapping
        The SuperNode's ``--node-config``.

    Returns
    -------
    pathlib.Path or None
        The folder, or ``None`` when nothing is saved.

    Raises
    ------
    ValueError
        If ``save_dir`` leads outside the root.
    """
    if not save_dir:
        return None
    root_text = str(
        node_config.get("save-root", "")
        or os.environ.get("FAIMI_FL_SAVE_ROOT", "")
        or os.getcwd()
    )
    root = Path(root_text).resolve()
    target = (root / save_dir).resolve()
    if not target.is_relative_to(root):
        raise ValueError(
            f"save-dir={save_dir!r} leads outside the folder this SuperNode allows "
            f"({root}); allowed: a folder inside it (set it with --node-config "
            '"save-root=...")'
        )
    return target


def site_data(
    settings: FlowerSettings, node_config: Mapping[str, Any]
) -> tuple[Any, Any, int]:
    """The training and test data of the node this ClientApp runs on.

    Parameters
    ----------
    settings : FlowerSettings
        The run's settings.
    node_config : mapping
        The SuperNode's ``--node-config``: ``data-path`` (and optional ``site``), or
        ``partition-id`` (and ``num-partitions``).

    Returns
    -------
    train, test : Cohort
        The site's training and test subjects (``test`` may be empty).
    site_index : int
        The node's position (``partition-id``; 0 when absent), used for its seeds.
    """
    index = int(node_config.get("partition-id", 0))
    path = str(node_config.get("data-path", "") or "")
    if path:
        cohort = _dataset(path)
        mask = np.ones(len(cohort), dtype=bool)
        site = str(node_config.get("site", "") or "")
        if site:
            if "site" not in cohort.meta:
                raise ValueError(
                    f"{path} has no site column in participants.tsv; cannot select "
                    f"site={site!r}"
                )
            mask &= cohort.meta["site"].astype(str).to_numpy() == site
        split = cohort.meta["split"].astype(str).to_numpy()
        return (
            cohort.subset(mask & (split != "test")),
            cohort.subset(mask & (split == "test")),
            index,
        )
    fed = settings.federation()
    names = [s for s in fed.site_names if s != "shared-test"]
    if not 0 <= index < len(names):
        raise ValueError(
            f"partition-id={index} is invalid; allowed: 0 to {len(names) - 1}"
        )
    return fed.train_site(names[index]), fed.test_site(names[index]), index


def _to_state(arrays: Any) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(v) for k, v in arrays.to_torch_state_dict().items()}


# ---------------------------------------------------------------------------- client


def make_client_app(base: FlowerSettings | None = None):
    """A Flower ``ClientApp`` whose training step is
    :func:`faimi_tutorial.experiments.federated.client_update`.

    Parameters
    ----------
    base : FlowerSettings, optional
        Defaults under the run configuration (``flwr run`` overrides them).

    Returns
    -------
    flwr.clientapp.ClientApp
    """
    from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        settings = FlowerSettings.from_run_config(context.run_config, base)
        train_data, _test, index = site_data(settings, context.node_config)
        config = settings.fed_config()
        server_round = int(msg.content["config"]["server-round"])
        mu = float(msg.content["config"].get("proximal-mu", 0.0))
        update = federated.client_update(
            _to_state(msg.content["arrays"]),
            train_data,
            config,
            proximal_mu=mu,
            seed=federated.client_seed(settings.seed, server_round - 1, index),
            device="cpu",
        )
        out = client_save_dir(settings.save_dir, context.node_config)
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            torch.save(
                {
                    "params": update.params,
                    "n_samples": update.n_samples,
                    "site_index": index,
                },
                out / f"client-round-{server_round}-site-{index}.pt",
            )
        metrics = MetricRecord(
            {"num-examples": update.n_samples, "train-loss": update.train_loss}
        )
        return Message(
            RecordDict({"arrays": ArrayRecord(update.params), "metrics": metrics}),
            reply_to=msg,
        )

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:

        settings = FlowerSettings.from_run_config(context.run_config, base)
        _train, test, _index = site_data(settings, context.node_config)
        metrics: dict[str, float | int] = {"num-examples": len(test)}
        if len(test):
            model = federated.model_from_params(
                settings.fed_config(),
                tuple(test.images.shape[1:]),
                _to_state(msg.content["arrays"]),
            )
            scores = predict(model, test, device="cpu")
            metrics["accuracy"] = float(np.mean((scores >= 0.5) == test.label))
            if len(np.unique(test.label)) == 2:
                metrics["auroc"] = auroc(test.label, scores)
        else:
            metrics["num-examples"] = (
                1  # Flower weights by this key; an empty site counts as one
            )
            metrics["accuracy"] = float("nan")
        return Message(RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)

    return app


# ---------------------------------------------------------------------------- server


def make_server_app(
    base: FlowerSettings | None = None,
    history: list | None = None,
    status: dict | None = None,
):
    """A Flower ``ServerApp`` running Flower's FedAvg (or FedProx) over the sites.

    Parameters
    ----------
    base : FlowerSettings, optional
        Defaults under the run configuration.
    history : list, optional
        When given, ``(round, state_dict)`` of the global model after every round
        (round 0: the initial model) is appended to it (in-process runs only).
    status : dict, optional
        When given, receives ``rounds_aggregated`` (rounds in which client updates
        arrived and were averaged) and ``train_metrics`` (per round).

    Returns
    -------
    flwr.serverapp.ServerApp
    """
    from flwr.app import ArrayRecord, ConfigRecord, Context
    from flwr.serverapp import Grid, ServerApp
    from flwr.serverapp.strategy import FedAvg, FedProx

    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        settings = FlowerSettings.from_run_config(context.run_config, base)
        config = settings.fed_config()
        initial = federated.init_params(config, settings.in_shape(), settings.seed)
        n = settings.num_sites
        kwargs = dict(
            fraction_train=1.0,
            fraction_evaluate=1.0,
            min_train_nodes=n,
            min_evaluate_nodes=n,
            min_available_nodes=n,
        )
        if settings.strategy == "fedprox":
            strategy = FedProx(proximal_mu=settings.proximal_mu, **kwargs)
        else:
            strategy = FedAvg(**kwargs)

        def record(server_round: int, arrays: ArrayRecord) -> None:
            state = _to_state(arrays)
            if history is not None:
                history.append((server_round, state))
            if settings.save_dir:
                out = Path(settings.save_dir)
                out.mkdir(parents=True, exist_ok=True)
                torch.save(state, out / f"global-round-{server_round}.pt")
            return None

        result = strategy.start(
            grid=grid,
            initial_arrays=ArrayRecord(initial),
            num_rounds=settings.rounds,
            train_config=ConfigRecord({"local-epochs": settings.local_epochs}),
            evaluate_fn=record,
        )
        train_metrics = {
            int(r): dict(m) for r, m in result.train_metrics_clientapp.items()
        }
        if status is not None:
            status["rounds_aggregated"] = len(train_metrics)
            status["train_metrics"] = train_metrics
        if settings.save_dir:
            torch.save(
                {
                    "rounds_aggregated": len(train_metrics),
                    "train_metrics": train_metrics,
                },
                Path(settings.save_dir) / "server-status.pt",
            )

    return app


def __getattr__(name: str) -> Any:
    # ``server_app`` and ``client_app`` are built on first use, so that importing this
    # module does not import Flower (``flwr run`` loads them by these names).
    if name == "server_app":
        return make_server_app()
    if name == "client_app":
        return make_client_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------- running


def run_simulation(
    settings: FlowerSettings, quiet: bool = True, num_cpus: int = 1
) -> list[tuple[int, dict]]:
    """Run the app on Flower's simulation engine (Ray), in this process.

    Parameters
    ----------
    settings : FlowerSettings
        The run (one virtual SuperNode per site).
    quiet : bool, default True
        Silence Flower's and Ray's log output.
    num_cpus : int, default 1
        CPUs per virtual client (clients run one after another when this equals
        the machine's cores).

    Returns
    -------
    list of (int, dict)
        ``(round, state_dict)`` of the global model after every round (round 0:
        the initial model).
    """
    import logging

    from flwr.simulation import run_simulation as flwr_run_simulation

    history: list[tuple[int, dict]] = []
    status: dict[str, Any] = {}
    logger = logging.getLogger("flwr")
    level = logger.level
    if quiet:
        logger.setLevel(logging.ERROR)
    backend = {
        "client_resources": {"num_cpus": num_cpus, "num_gpus": 0.0},
        "init_args": {
            "num_cpus": max(num_cpus, min(2, os.cpu_count() or 1)),
            "log_to_driver": not quiet,
            "include_dashboard": False,
            "logging_level": logging.ERROR if quiet else logging.WARNING,
            # every Ray server (GCS, raylet, object manager) on the loopback only
            "_node_ip_address": LOOPBACK,
        },
    }
    # Ray's C++ core writes a few diagnostics straight to file descriptor 2; when quiet,
    # they go to a temporary file (shown only if the run fails).
    saved_root = os.environ.get("FAIMI_FL_SAVE_ROOT")
    if (
        settings.save_dir
    ):  # a local run: the caller runs the nodes, so its save_dir is allowed
        os.environ["FAIMI_FL_SAVE_ROOT"] = str(Path(settings.save_dir).resolve())
    captured = tempfile.TemporaryFile() if quiet else None
    saved_fd = None
    if captured is not None:
        sys.stderr.flush()
        saved_fd = os.dup(2)
        os.dup2(captured.fileno(), 2)
    try:
        flwr_run_simulation(
            server_app=make_server_app(settings, history, status),
            client_app=make_client_app(settings),
            num_supernodes=settings.num_sites,
            backend_config=backend,
        )
    finally:
        if saved_root is None:
            os.environ.pop("FAIMI_FL_SAVE_ROOT", None)
        else:
            os.environ["FAIMI_FL_SAVE_ROOT"] = saved_root
        logger.setLevel(level)
        if saved_fd is not None:
            sys.stderr.flush()
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
    log_tail = ""
    if captured is not None:
        captured.seek(0)
        log_tail = captured.read()[-4000:].decode(errors="replace")
        captured.close()
    done = status.get("rounds_aggregated", 0)
    if len(history) != settings.rounds + 1 or done != settings.rounds:
        raise RuntimeError(
            f"the Flower run aggregated client updates in {done} of {settings.rounds} "
            "rounds "
            f"(a ClientApp failed; run with quiet=False to see why)\n{log_tail}"
        )
    return history


def pyproject_text(settings: FlowerSettings | None = None) -> str:
    """The ``pyproject.toml`` of the Flower app folder (what ``flwr run`` reads).

    Parameters
    ----------
    settings : FlowerSettings, optional
        Default run configuration (default: :class:`FlowerSettings`).

    Returns
    -------
    str
        TOML text: project metadata, ``[tool.flwr.app.components]`` pointing at this
        module and ``[tool.flwr.app.config]`` with every setting.
    """
    settings = FlowerSettings() if settings is None else settings

    def toml_value(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return repr(value)
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'

    config = "\n".join(
        f"{k} = {toml_value(v)}" for k, v in settings.to_run_config().items()
    )
    return f"""[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "faimi-flower-app"
version = "1.0.0"
description = "faimi-tutorial federated training on Flower (the package's client code)"
license = "MIT"
dependencies = ["faimi-tutorial[fl]"]

[tool.flwr.app]
publisher = "faimi-tutorial"

[tool.flwr.app.components]
serverapp = "faimi_tutorial.experiments.flower_app:server_app"
clientapp = "faimi_tutorial.experiments.flower_app:client_app"

[tool.flwr.app.config]
{config}
"""


def write_app(
    directory: str | os.PathLike[str], settings: FlowerSettings | None = None
) -> Path:
    """Write the Flower app folder that ``flwr run`` submits (only a
    ``pyproject.toml``).

    The app's code is this installed package, so every machine taking part needs
    ``pip install "faimi-tutorial[fl]"``; the folder only names the components and
    the default run configuration.

    Parameters
    ----------
    directory : path
        Folder to create (or reuse).
    settings : FlowerSettings, optional
        Default run configuration.

    Returns
    -------
    pathlib.Path
        The folder.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    (out / "pyproject.toml").write_text(pyproject_text(settings))
    return out


if (
    __name__ == "__main__"
):  # pragma: no cover - exercised by the README commands and tests
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print(
            "usage: python -m faimi_tutorial.experiments.flower_app APP_DIR   (writes "
            "the Flower app folder)"
        )
        raise SystemExit(0 if len(sys.argv) == 2 else 2)
    print(write_app(sys.argv[1]))
