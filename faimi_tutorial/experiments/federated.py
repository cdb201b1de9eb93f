"""Sites and federated training: local-only, centralised, FedAvg, FedProx, travelling
model.

Hospitals rarely pool their images. This module splits a simulated cohort into
*sites* that differ in their scanner (an intensity transform, contrast and noise:
:class:`Scanner`) and in their population (disease prevalence, bias-group mix and
size, down to sites with one or two subjects: :class:`SiteSpec`), and trains one
classifier with five strategies (:data:`STRATEGIES`):

``"local"``
    Every site trains its own model on its own data only.
``"central"``
    All data pooled in one place (what federation tries to approach).
``"fedavg"``
    Federated averaging (McMahan et al., 2017): in each round every site trains
    the current global model for ``local_epochs`` and the server averages the
    returned weights, weighted by site size.
``"fedprox"``
    FedAvg with a proximal term ``mu/2 ||w - w_global||^2`` in each site's loss
    (Li et al., 2020), which keeps local models near the global one.
``"travelling"``
    The travelling model (Souza et al., JAMIA 2023): one model visits the sites
    one after another, trains there, and moves on with its optimiser state; the
    order of the sites is reshuffled in every cycle.

All five use the same client training function, :func:`client_update` (one visit of
a model to one site), and so does the Flower app in
:mod:`faimi_tutorial.experiments.flower_app`; it runs the package's one training
loop, :func:`faimi_tutorial.training.loop.run_epochs`, with the clients' objective: any
mitigation of chapter 5 (``FedConfig(mitigation="groupdro")``, computed on each
site's own data), plus FedProx's proximal term for ``"fedprox"``. Evaluation per
site and per subgroup goes through
:func:`faimi_tutorial.fairness.metrics.subgroup_report`.

Example::

    cohort = ft.simulate.generate(ft.simulate.SimulationConfig.preset("tutorial",
    dims=2))
    fed = ft.federated.make_sites(cohort, ft.federated.few_large_sites())
    cfg = ft.federated.FedConfig.preset("tutorial")
    result = ft.federated.train(fed, "fedavg", cfg, seed=0)
    ft.federated.evaluate(result, fed, groups="site").table
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import presets
from ..data.simulate import Cohort
from ..fairness.metrics import (
    auroc,
    counterfactual_flip_rate,
    OVERALL,
    signed_gaps,
    subgroup_report,
    UndefinedMetricWarning,
)
from ..models.networks import build_model, ModelConfig
from ..runtime import choose_device
from ..training.loop import as_data, predict, run_epochs
from ..training.objectives import MITIGATIONS, FedProx, Objective, from_mitigation
from ..validation import (
    check_choice,
    check_integer,
    check_numbers,
    check_positive_int,
    check_probability,
    check_range,
    check_text,
    config_error,
)
from .runner import step

__all__ = [
    "STRATEGIES",
    "SCANNERS",
    "Scanner",
    "SiteSpec",
    "Federation",
    "make_sites",
    "few_large_sites",
    "many_small_sites",
    "shortcut_sites",
    "FedConfig",
    "ClientUpdate",
    "FedResult",
    "init_params",
    "client_seed",
    "client_update",
    "model_from_params",
    "fedavg",
    "train",
    "train_local",
    "train_central",
    "train_fedavg",
    "train_travelling",
    "site_scores",
    "evaluate",
    "summarise",
    "compare",
]

#: Training strategies understood by :func:`train`.
STRATEGIES: tuple[str, ...] = ("local", "central", "fedavg", "fedprox", "travelling")


def _fail(name: str, value: Any, allowed: str) -> None:
    raise ValueError(f"{name}={value!r} is invalid; allowed: {allowed}")


# ----------------------------------------------------------------------------- scanners


@dataclass(frozen=True)
class Scanner:
    """How one site's scanner renders an image: an intensity transform, contrast and
    noise.

    An image ``x`` in [0, 1] becomes
    ``clip((x ** gamma - 0.5) * contrast + 0.5 + brightness + noise, 0, 1)`` with
    Gaussian ``noise`` of standard deviation ``noise_sd``. The reference scanner
    leaves images unchanged.

    Parameters
    ----------
    name : str
        A label for tables and plots.
    gamma : float, default 1.0
        Intensity transform exponent, in [0.25, 4].
    contrast : float, default 1.0
        Contrast factor about mid-grey, in (0, 4].
    brightness : float, default 0.0
        Intensity offset, in [-0.5, 0.5].
    noise_sd : float, default 0.0
        Standard deviation of additive Gaussian noise, in [0, 0.5].
    """

    name: str = "reference"
    gamma: float = 1.0
    contrast: float = 1.0
    brightness: float = 0.0
    noise_sd: float = 0.0

    def __post_init__(self) -> None:
        check_text(self, "name", self.name)
        check_range(self, "gamma", self.gamma, 0.25, 4.0)
        check_range(self, "contrast", self.contrast, 0.0, 4.0, low_open=True)
        check_range(self, "brightness", self.brightness, -0.5, 0.5)
        check_range(self, "noise_sd", self.noise_sd, 0.0, 0.5)

    @property
    def is_identity(self) -> bool:
        """True when the scanner changes nothing."""
        return (self.gamma, self.contrast, self.brightness, self.noise_sd) == (
            1.0,
            1.0,
            0.0,
            0.0,
        )

    def apply(self, images: torch.Tensor, seed: int = 0) -> torch.Tensor:
        """Render ``images`` (values in [0, 1]) as this scanner would.

        Parameters
        ----------
        images : torch.Tensor
            ``(N, 1, *grid)`` float images.
        seed : int, default 0
            Seed of the noise (the same seed gives the same noise, so a subject and
            its counterfactual twin receive identical noise).

        Returns
        -------
        torch.Tensor
            A new float32 tensor of the same shape, in [0, 1].
        """
        x = torch.as_tensor(images, dtype=torch.float32).clamp(0.0, 1.0)
        if self.is_identity:
            return x.clone()
        x = x.pow(float(self.gamma))
        x = (x - 0.5) * float(self.contrast) + 0.5 + float(self.brightness)
        if self.noise_sd > 0:
            generator = torch.Generator().manual_seed(int(seed))
            x = x + float(self.noise_sd) * torch.randn(
                x.shape, generator=generator, dtype=torch.float32
            )
        return x.clamp(0.0, 1.0)


#: Named scanner profiles used by the scenario helpers (any :class:`Scanner` works).
SCANNERS: dict[str, Scanner] = {
    "reference": Scanner("reference"),
    "bright": Scanner("bright", gamma=0.8, brightness=0.06),
    "low_contrast": Scanner("low_contrast", contrast=0.75, gamma=1.15),
    "noisy": Scanner("noisy", noise_sd=0.06),
    "dark": Scanner("dark", gamma=1.3, brightness=-0.04, contrast=1.1),
}


def _scanner(value: Scanner | str) -> Scanner:
    if isinstance(value, Scanner):
        return value
    if isinstance(value, str) and value in SCANNERS:
        return SCANNERS[value]
    _fail("scanner", value, f"a Scanner or one of {', '.join(SCANNERS)}")
    raise AssertionError  # pragma: no cover


# ----------------------------------------------------------------------------- sites


@dataclass
class SiteSpec:
    """What one site holds: how many subjects, which population, which scanner.

    Parameters
    ----------
    name : str
        Site name (recorded in the ``site`` column).
    n_train : int
        Training subjects at the site (>= 1; one or two are allowed).
    n_test : int, default 0
        Held-out test subjects at the site (>= 0), drawn from the cohort's test split.
    prevalence : float, default 0.5
        Share of diseased subjects, in [0, 1].
    bias_prevalence : float or (float, float), optional
        Share of the bias group: one number for both classes, or
        ``(P(bias | disease), P(bias | control))``; default: the cohort's own rates.
    scanner : Scanner or str, default "reference"
        The site's scanner (a :class:`Scanner` or a name in :data:`SCANNERS`).
    test_prevalence : float, optional
        Disease share of the site's test subjects (default: ``prevalence``).

    Notes
    -----
    Counts per (label, bias group) cell are ``n * share`` rounded stochastically
    (up with probability equal to the fractional part), so a site of one subject
    is diseased with probability ``prevalence`` and large sites match their
    shares exactly when ``n * share`` is a whole number.
    """

    name: str
    n_train: int
    n_test: int = 0
    prevalence: float = 0.5
    bias_prevalence: float | tuple[float, float] | None = None
    scanner: Scanner | str = "reference"
    test_prevalence: float | None = None

    def __post_init__(self) -> None:
        check_text(self, "name", self.name)
        self.n_train = check_integer(self, "n_train", self.n_train, 1)
        self.n_test = check_integer(self, "n_test", self.n_test, 0)
        check_probability(self, "prevalence", self.prevalence)
        check_probability(self, "test_prevalence", self.test_prevalence, optional=True)
        bp = self.bias_prevalence
        if bp is not None:
            one = isinstance(bp, (int, float)) and not isinstance(bp, bool)
            try:
                pair = (bp, bp) if one else bp
                self.bias_prevalence = check_numbers(
                    self, "bias_prevalence", pair, 2, 0.0, 1.0
                )
            except ValueError:
                raise config_error(
                    self,
                    "bias_prevalence",
                    bp,
                    "None, a share in [0, 1] or a pair of shares",
                ) from None
        self.scanner = _scanner(self.scanner)


def few_large_sites(
    n_sites: int = 4,
    n_train: int = 240,
    n_test: int = 60,
    scanners: Sequence[str] | None = None,
    prevalences: Sequence[float] | None = None,
    bias_prevalences: Sequence[float | tuple[float, float] | None] | None = None,
) -> list[SiteSpec]:
    """A few large sites with different scanners (and, optionally, populations).

    Parameters
    ----------
    n_sites : int, default 4
        Number of sites (>= 1).
    n_train, n_test : int, default 240 and 60
        Training and test subjects per site.
    scanners : sequence of str, optional
        Scanner name per site (default: cycling through :data:`SCANNERS`).
    prevalences : sequence of float, optional
        Disease share per site (default 0.5 everywhere).
    bias_prevalences : sequence, optional
        Bias-group share per site (default: the cohort's rates).

    Returns
    -------
    list of SiteSpec
        Sites named ``site-A``, ``site-B``, ...
    """
    if (
        isinstance(n_sites, bool)
        or not isinstance(n_sites, int)
        or not 1 <= n_sites <= 26
    ):
        _fail("n_sites", n_sites, "an integer in [1, 26]")
    names = list(SCANNERS)
    specs = []
    for i in range(n_sites):
        specs.append(
            SiteSpec(
                name=f"site-{chr(ord('A') + i)}",
                n_train=n_train,
                n_test=n_test,
                prevalence=0.5 if prevalences is None else prevalences[i],
                bias_prevalence=None
                if bias_prevalences is None
                else bias_prevalences[i],
                scanner=(
                    scanners[i] if scanners is not None else names[i % len(names)]
                ),
            )
        )
    return specs


def many_small_sites(
    n_sites: int = 200,
    sizes: Sequence[int] = (1, 2),
    n_test: int = 0,
    scanners: Sequence[str] | None = None,
    seed: int = 0,
) -> list[SiteSpec]:
    """Many tiny sites of one or two subjects each (the travelling-model setting).

    Parameters
    ----------
    n_sites : int, default 200
        Number of sites (>= 1).
    sizes : sequence of int, default (1, 2)
        Possible site sizes, drawn uniformly per site.
    n_test : int, default 0
        Test subjects per site (tiny sites usually contribute no test data; evaluate
        them on a shared test set, see :func:`make_sites`'s ``extra_test``).
    scanners : sequence of str, optional
        Scanner names to draw from (default: all of :data:`SCANNERS`).
    seed : int, default 0
        Seed of the size and scanner draws.

    Returns
    -------
    list of SiteSpec
        Sites named ``site-001``, ``site-002``, ...
    """
    if isinstance(n_sites, bool) or not isinstance(n_sites, int) or n_sites < 1:
        _fail("n_sites", n_sites, "an integer >= 1")
    if not sizes or any(int(s) < 1 for s in sizes):
        _fail("sizes", sizes, "a non-empty sequence of integers >= 1")
    rng = np.random.default_rng([int(seed), 101])
    names = list(SCANNERS) if scanners is None else list(scanners)
    width = max(3, len(str(n_sites)))
    return [
        SiteSpec(
            name=f"site-{i + 1:0{width}d}",
            n_train=int(rng.choice(np.asarray(sizes))),
            n_test=n_test,
            scanner=names[int(rng.integers(len(names)))],
        )
        for i in range(n_sites)
    ]


def shortcut_sites(
    n_train: int = 240, n_test: int = 60, prevalences: tuple[float, float] = (0.8, 0.2)
) -> list[SiteSpec]:
    """Two sites whose scanner predicts the disease: a site-level shortcut.

    ``site-A`` (a bright scanner) sees mostly patients, ``site-B`` (the reference
    scanner) mostly controls, as when a referral centre and a screening programme
    federate. Test subjects are 50 % diseased at both sites, so a model that uses
    the scanner as evidence shows a higher FPR at ``site-A`` and a lower TPR at
    ``site-B``.

    Parameters
    ----------
    n_train, n_test : int, default 240 and 60
        Subjects per site.
    prevalences : (float, float), default (0.8, 0.2)
        Disease share of the training data at the two sites.

    Returns
    -------
    list of SiteSpec
    """
    return [
        SiteSpec(
            "site-A",
            n_train,
            n_test,
            prevalence=prevalences[0],
            scanner="bright",
            test_prevalence=0.5,
        ),
        SiteSpec(
            "site-B",
            n_train,
            n_test,
            prevalence=prevalences[1],
            scanner="reference",
            test_prevalence=0.5,
        ),
    ]


def _stochastic_round(x: float, rng: np.random.Generator) -> int:
    base = math.floor(x + 1e-9)
    frac = x - base
    return int(base + (1 if frac > 1e-9 and rng.random() < frac else 0))


def _cell_counts(
    n: int, prevalence: float, bias: tuple[float, float], rng: np.random.Generator
) -> dict:
    n_dis = min(n, _stochastic_round(n * prevalence, rng))
    out = {}
    for label, n_class, p in ((1, n_dis, bias[0]), (0, n - n_dis, bias[1])):
        k = min(n_class, _stochastic_round(n_class * p, rng))
        out[(label, 1)] = k
        out[(label, 0)] = n_class - k
    return out


@dataclass
class Federation:
    """A cohort split into sites.

    Attributes
    ----------
    cohort : faimi_tutorial.data.simulate.Cohort
        The selected subjects as each site's scanner renders them (images and
        twins); ``meta`` gains ``site`` and ``scanner`` columns and ``split`` is
        ``"train"`` or ``"test"``. Write it with
        :func:`faimi_tutorial.data.datasets.write_cohort` and ``participants.tsv``
        records every subject's site.
    specs : list of SiteSpec
        The sites, in order.
    raw_images : torch.Tensor
        The same subjects before any scanner transform (to re-render a subject
        with another site's scanner: :meth:`rescan`).
    seed : int
        The seed of the site assignment and the scanner noise.
    raw_twins : torch.Tensor or None
        The twins before any scanner transform.
    """

    cohort: Any
    specs: list[SiteSpec]
    raw_images: torch.Tensor
    seed: int = 0
    raw_twins: torch.Tensor | None = None

    @property
    def site_names(self) -> list[str]:
        """Site names in order."""
        return [s.name for s in self.specs]

    @property
    def meta(self) -> pd.DataFrame:
        """The metadata table (one row per subject, with ``site``)."""
        return self.cohort.meta

    def _mask(self, split: str, site: str | None = None) -> np.ndarray:
        mask = self.meta["split"].astype(str).to_numpy() == split
        if site is not None:
            if site not in self.site_names:
                _fail("site", site, ", ".join(self.site_names))
            mask &= self.meta["site"].astype(str).to_numpy() == site
        return mask

    def train_site(self, site: str) -> Any:
        """Training subjects of one site (a cohort)."""
        return self.cohort.subset(self._mask("train", site))

    def test_site(self, site: str) -> Any:
        """Test subjects of one site (a cohort; may be empty)."""
        return self.cohort.subset(self._mask("test", site))

    @property
    def train(self) -> Any:
        """All training subjects, pooled (what centralised training sees)."""
        return self.cohort.subset(self._mask("train"))

    @property
    def test(self) -> Any:
        """All test subjects, pooled, with their ``site`` column."""
        return self.cohort.subset(self._mask("test"))

    def train_parts(self) -> list[Any]:
        """Training cohorts of every site, in site order."""
        return [self.train_site(s) for s in self.site_names]

    @property
    def sizes(self) -> pd.Series:
        """Number of training subjects per site."""
        counts = self.meta[self._mask("train")].groupby("site", sort=False).size()
        return counts.reindex(self.site_names).fillna(0).astype(int)

    def summary(self) -> pd.DataFrame:
        """One row per site: sizes, disease share, bias-group share and scanner.

        Returns
        -------
        pandas.DataFrame
            Indexed by site: ``n_train``, ``n_test``, ``disease_share``,
            ``bias_share`` (training data) and ``scanner``.
        """
        rows = []
        for spec in self.specs:
            tr = self.meta[self._mask("train", spec.name)]
            rows.append(
                {
                    "site": spec.name,
                    "n_train": len(tr),
                    "n_test": int(self._mask("test", spec.name).sum()),
                    "disease_share": float(tr["label"].mean())
                    if len(tr)
                    else float("nan"),
                    "bias_share": float(tr["bias_group"].mean())
                    if len(tr)
                    else float("nan"),
                    "scanner": spec.scanner.name,
                }
            )
        return pd.DataFrame(rows).set_index("site")

    def rescan(self, cohort: Any, scanner: Scanner | str, seed: int = 0) -> Any:
        """The subjects of ``cohort`` (a subset of this federation) seen by another
        scanner.

        Parameters
        ----------
        cohort : Cohort
            Subjects of this federation (matched by ``subject_id``).
        scanner : Scanner or str
            The scanner to render them with.
        seed : int, default 0
            Seed of the scanner noise.

        Returns
        -------
        Cohort
            Same subjects and metadata, images (and twins) re-rendered.
        """

        scanner = _scanner(scanner)
        position = {sid: i for i, sid in enumerate(self.meta["subject_id"].astype(str))}
        try:
            idx = [position[s] for s in cohort.meta["subject_id"].astype(str)]
        except KeyError as err:
            raise ValueError(
                f"subject {err.args[0]!r} is not part of this federation"
            ) from None
        raw = self.raw_images[torch.as_tensor(idx, dtype=torch.long)]
        images = scanner.apply(raw, seed)
        twins = None
        if cohort.twins is not None and self.raw_twins is not None:
            raw_twins = self.raw_twins[torch.as_tensor(idx, dtype=torch.long)]
            twins = scanner.apply(raw_twins, seed)
        meta = cohort.meta.copy()
        meta["scanner"] = scanner.name
        return Cohort(images, twins, meta, cohort.config)


def make_sites(
    cohort: Any,
    specs: Sequence[SiteSpec],
    seed: int = 0,
    extra_test: int = 0,
) -> Federation:
    """Split a cohort into sites with their own populations and scanners.

    Training subjects are drawn from the cohort's ``train`` and ``val`` splits, test
    subjects from its ``test`` split, without replacement, per (label, bias group)
    cell so that each site gets the disease and bias-group shares of its
    :class:`SiteSpec`. Each site's scanner is then applied to its images and
    twins (the same noise for a subject and its twin).

    Parameters
    ----------
    cohort : Cohort
        A simulated cohort (:func:`faimi_tutorial.data.simulate.generate`), 2D or 3D.
    specs : sequence of SiteSpec
        The sites (unique names).
    seed : int, default 0
        Seed of the draws and of the scanner noise.
    extra_test : int, default 0
        Additional shared test subjects (site ``"shared-test"``, reference scanner,
        balanced classes), useful when the sites themselves hold no test data.

    Returns
    -------
    Federation

    Raises
    ------
    ValueError
        If names repeat, or the cohort has too few subjects of some cell for the sites.
    """

    specs = list(specs)
    if not specs:
        _fail("specs", specs, "at least one SiteSpec")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        _fail("specs", names, "sites with unique names")
    if (
        isinstance(extra_test, bool)
        or not isinstance(extra_test, int)
        or extra_test < 0
    ):
        _fail("extra_test", extra_test, "an integer >= 0")
    meta = cohort.meta
    label = meta["label"].to_numpy(dtype=np.int64)
    group = meta["bias_group"].to_numpy(dtype=np.int64)
    split = meta["split"].astype(str).to_numpy()
    rng = np.random.default_rng([int(seed), 7])
    pools: dict[str, dict[tuple[int, int], list[int]]] = {}
    for part, members in (
        ("train", np.isin(split, ["train", "val"])),
        ("test", split == "test"),
    ):
        pools[part] = {
            (y, a): list(
                rng.permutation(np.flatnonzero(members & (label == y) & (group == a)))
            )
            for y in (0, 1)
            for a in (0, 1)
        }
    dev = np.isin(split, ["train", "val"])

    def rates(mask: np.ndarray) -> tuple[float, float]:
        out = []
        for y in (1, 0):
            sel = mask & (label == y)
            out.append(float(group[sel].mean()) if sel.any() else 0.0)
        return out[0], out[1]

    cohort_bias = rates(dev)
    chosen: list[int] = []
    site_col: list[str] = []
    split_col: list[str] = []
    # (name, scanner, bias rates, [(part, n, prevalence), ...]) per site
    plan = []
    for spec in specs:
        bias = spec.bias_prevalence if spec.bias_prevalence is not None else cohort_bias
        test_prev = (
            spec.prevalence if spec.test_prevalence is None else spec.test_prevalence
        )
        plan.append(
            (
                spec.name,
                spec.scanner,
                bias,
                [
                    ("train", spec.n_train, spec.prevalence),
                    ("test", spec.n_test, test_prev),
                ],
            )
        )
    if extra_test:
        plan.append(
            (
                "shared-test",
                SCANNERS["reference"],
                cohort_bias,
                [("test", extra_test, 0.5)],
            )
        )
    for name, _scn, bias, parts in plan:
        for part, n, prevalence in parts:
            if n == 0:
                continue
            for cell, k in _cell_counts(n, prevalence, bias, rng).items():
                pool = pools[part][cell]
                if k > len(pool):
                    raise ValueError(
                        f"site {name!r} needs {k} {part} subjects with label={cell[0]} "
                        "and "
                        f"bias_group={cell[1]} but only {len(pool)} are left; generate "
                        "a larger cohort "
                        f"(n_subjects) or make the sites smaller"
                    )
                for _ in range(k):
                    chosen.append(int(pool.pop()))
                    site_col.append(name)
                    split_col.append(part)
    idx = np.asarray(chosen, dtype=np.int64)
    sub = cohort.subset(idx)
    raw = sub.images.clone()
    raw_twins = None if sub.twins is None else sub.twins.clone()
    images = sub.images.clone()
    twins = None if sub.twins is None else sub.twins.clone()
    site_arr = np.asarray(site_col)
    scanner_col = np.empty(len(site_arr), dtype=object)
    for name, scn, _bias, _parts in plan:
        rows = np.flatnonzero(site_arr == name)
        scanner_col[rows] = scn.name
        if len(rows) == 0 or scn.is_identity:
            continue
        t = torch.as_tensor(rows)
        noise_seed = zlib.crc32(f"{seed}:{name}".encode())
        images[t] = scn.apply(raw[t], noise_seed)
        if twins is not None:
            twins[t] = scn.apply(raw_twins[t], noise_seed)
    new_meta = sub.meta.copy()
    new_meta["site"] = site_col
    new_meta["scanner"] = list(scanner_col)
    new_meta["split"] = pd.Categorical(split_col, categories=["train", "val", "test"])
    out = Cohort(images, twins, new_meta, cohort.config)
    specs_out = list(specs)
    if extra_test:
        specs_out.append(
            SiteSpec("shared-test", n_train=1, n_test=extra_test, scanner="reference")
        )
    return Federation(out, specs_out, raw, int(seed), raw_twins)


# ----------------------------------------------------------------------------- training


@dataclass
class FedConfig:
    """How to train in every strategy: architecture, optimiser, rounds.

    Parameters
    ----------
    rounds : int
        Communication rounds (FedAvg, FedProx), cycles through all sites
        (travelling model); local and central models train ``rounds * local_epochs``
        epochs. At least 1.
    local_epochs : int
        Epochs per visit of a model to a site (>= 1).
    batch_size : int
        Mini-batch size (>= 1).
    lr : float
        Learning rate of AdamW, in (0, 10].
    weight_decay : float
        Weight decay of AdamW (>= 0).
    proximal_mu : float
        FedProx's proximal weight ``mu`` (>= 0; used by ``"fedprox"``).
    mitigation : str
        The clients' objective, one of
        :data:`~faimi_tutorial.training.objectives.MITIGATIONS`
        (``"none"``: plain cross-entropy); each site computes it on its own data, in
        every strategy (:meth:`objective`).
    groupdro_eta, unlearning_alpha : float
        Settings of the ``"groupdro"`` (> 0) and ``"unlearning"`` (>= 0) objectives.
    model, channels, strides, num_res_units, dropout
        Architecture (see :class:`faimi_tutorial.models.networks.ModelConfig`).
    """

    rounds: int = 10
    local_epochs: int = 1
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.0
    proximal_mu: float = 0.1
    mitigation: str = "none"
    groupdro_eta: float = 0.01
    unlearning_alpha: float = 1.0
    model: str = "classifier"
    channels: tuple[int, ...] = (8, 16, 32)
    strides: tuple[int, ...] = (2, 2, 2)
    num_res_units: int = 0
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("rounds", "local_epochs", "batch_size"):
            setattr(self, name, check_positive_int(self, name, getattr(self, name)))
        # numbers are checked, not converted: an int stays an int in cache keys
        check_range(self, "lr", self.lr, 0.0, 10.0, low_open=True)
        check_range(self, "weight_decay", self.weight_decay, 0.0)
        check_range(self, "proximal_mu", self.proximal_mu, 0.0)
        check_range(self, "unlearning_alpha", self.unlearning_alpha, 0.0)
        check_range(self, "groupdro_eta", self.groupdro_eta, 0.0, low_open=True)
        check_choice(self, "mitigation", self.mitigation, MITIGATIONS)
        self.channels = tuple(int(v) for v in self.channels)
        self.strides = tuple(int(v) for v in self.strides)
        self.model_config((1, 32, 32))  # validates the architecture fields

    @classmethod
    def preset(cls, name: str | None = None, **overrides: Any) -> FedConfig:
        """Settings for a preset: the preset's optimiser and a small fast network.

        Parameters
        ----------
        name : str, optional
            ``tiny``, ``tutorial`` or ``paper`` (default: the active preset).
        **overrides
            Any field of :class:`FedConfig`.

        Returns
        -------
        FedConfig
        """
        name = presets.active_preset() if name is None else presets.check_preset(name)
        settings = dict(presets.FEDERATED[name])
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(
                f"unknown FedConfig field(s) {sorted(unknown)}; allowed: "
                f"{[f.name for f in fields(cls)]}"
            )
        settings.update(overrides)
        return cls(**settings)

    def model_config(self, in_shape: Sequence[int]):
        """The :class:`~faimi_tutorial.models.networks.ModelConfig` for images of
        ``in_shape``."""
        return ModelConfig(
            in_shape=tuple(int(v) for v in in_shape),
            model=self.model,
            channels=self.channels,
            strides=self.strides,
            num_res_units=self.num_res_units,
            dropout=self.dropout,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-type dictionary (for run configurations and caches)."""
        return asdict(self)

    def objective(self) -> Objective:
        """A fresh clients' objective for ``mitigation`` (:func:`from_mitigation`)."""
        return from_mitigation(
            self.mitigation,
            lr=self.lr,
            groupdro_eta=self.groupdro_eta,
            unlearning_alpha=self.unlearning_alpha,
        )


@dataclass
class ClientUpdate:
    """What one visit of a model to one site returns.

    Attributes
    ----------
    params : dict of str to torch.Tensor
        The trained weights (a CPU ``state_dict``).
    optimizer_state : dict
        The AdamW state after training (what travels with a travelling model).
    n_samples : int
        Training subjects at the site (the FedAvg weight).
    train_loss : float
        Mean training loss (binary cross-entropy, without the proximal term).
    steps : int
        Optimiser steps taken.
    """

    params: dict[str, torch.Tensor]
    optimizer_state: dict
    n_samples: int
    train_loss: float
    steps: int


def client_seed(seed: int, round_index: int, site_index: int) -> int:
    """The seed of one client visit (batch order), the same in every runner.

    Parameters
    ----------
    seed : int
        Seed of the whole run.
    round_index : int
        Round (or cycle) number, from 0.
    site_index : int
        Position of the site in the federation, from 0.

    Returns
    -------
    int
        A 31-bit seed.
    """
    return int(
        np.random.default_rng(
            [int(seed), int(round_index), int(site_index), 5]
        ).integers(2**31 - 1)
    )


def init_params(
    config: FedConfig, in_shape: Sequence[int], seed: int = 0
) -> dict[str, torch.Tensor]:
    """Freshly initialised weights (seeded; the global RNG state is left untouched).

    Parameters
    ----------
    config : FedConfig
        Architecture.
    in_shape : sequence of int
        ``(channels, *grid)`` of one image.
    seed : int, default 0
        Seed of the initialisation.

    Returns
    -------
    dict of str to torch.Tensor
        A CPU ``state_dict``.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = build_model(config.model_config(in_shape))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


_MODEL_CACHE: dict[tuple, nn.Module] = {}


def _build(
    config: FedConfig,
    in_shape: Sequence[int],
    params: Mapping[str, torch.Tensor] | None,
    device,
    reuse: bool = False,
) -> nn.Module:
    """A network with ``params`` loaded; ``reuse`` recycles one cached module per
    architecture."""
    model_config = config.model_config(in_shape)
    key = (tuple(sorted(model_config.to_dict().items())), str(device))
    model = _MODEL_CACHE.get(key) if reuse else None
    if model is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = build_model(model_config).to(device)
        if reuse:
            _MODEL_CACHE.clear()
            _MODEL_CACHE[key] = model
    if params is not None:
        model.load_state_dict({k: torch.as_tensor(v) for k, v in params.items()})
    return model


def model_from_params(
    config: FedConfig,
    in_shape: Sequence[int],
    params: Mapping[str, torch.Tensor],
    device: str | torch.device = "cpu",
) -> nn.Module:
    """The network of ``config`` with ``params`` loaded, in eval mode.

    Parameters
    ----------
    config : FedConfig
        Architecture.
    in_shape : sequence of int
        ``(channels, *grid)`` of one image.
    params : mapping of str to tensor
        A ``state_dict`` (e.g. a global model sent by a server).
    device : str or torch.device, default "cpu"
        Where the network lives.

    Returns
    -------
    torch.nn.Module
        A new network (not shared with the clients' cached one).
    """
    return _build(config, in_shape, params, torch.device(device)).eval()


def client_update(
    params: Mapping[str, torch.Tensor] | None,
    data: Any,
    config: FedConfig,
    *,
    optimizer_state: Mapping[str, Any] | None = None,
    epochs: int | None = None,
    proximal_mu: float = 0.0,
    seed: int = 0,
    device: str | torch.device | None = None,
    objective: Objective | None = None,
) -> ClientUpdate:
    """Train a model at one site, starting from given weights (and optimiser state).

    This is the one client training step of every strategy and of the Flower
    ClientApp: it rebuilds the network, loads ``params`` and trains ``epochs``
    epochs over the site's data with :func:`faimi_tutorial.training.loop.run_epochs`
    (the loop of every model in the package): AdamW (loading ``optimizer_state``
    when given), seeded mini-batches, and the clients' objective, which is the
    configuration's ``mitigation`` (:meth:`FedConfig.objective`) computed on the
    site's own data, with FedProx's ``proximal_mu / 2 * ||w - params||^2`` added
    when ``proximal_mu > 0``.

    Parameters
    ----------
    params : mapping of str to tensor, or None
        Starting weights (``None``: initialise from ``seed``).
    data : cohort-like
        The site's training data (anything :func:`faimi_tutorial.training.loop.as_data`
        accepts).
    config : FedConfig
        Architecture and optimiser settings.
    optimizer_state : mapping, optional
        An AdamW ``state_dict`` to continue from (travelling model).
    epochs : int, optional
        Local epochs (default ``config.local_epochs``).
    proximal_mu : float, default 0.0
        FedProx proximal weight (>= 0).
    seed : int, default 0
        Seed of the batch order and of the objective's heads (see
        :func:`client_seed`).
    device : str or torch.device, optional
        Default: :func:`faimi_tutorial.choose_device`.
    objective : Objective, optional
        What the client minimises (default: ``config.objective()``).

    Returns
    -------
    ClientUpdate
    """
    if proximal_mu < 0:
        _fail("proximal_mu", proximal_mu, ">= 0")
    epochs = config.local_epochs if epochs is None else int(epochs)
    if epochs < 1:
        _fail("epochs", epochs, "an integer >= 1")
    site = as_data(data)
    if len(site) == 0:
        raise ValueError("the site has no training data (0 subjects)")
    device = choose_device(None if device is None else str(device))
    if params is None:
        params = init_params(config, site.in_shape, seed)
    model = _build(config, site.in_shape, params, device, reuse=True)
    objective = config.objective() if objective is None else objective
    if proximal_mu > 0:
        objective = FedProx(proximal_mu, inner=objective)
    run = run_epochs(
        model,
        site,
        objective,
        epochs=epochs,
        batch_size=config.batch_size,
        lr=config.lr,
        weight_decay=config.weight_decay,
        seed=seed,
        optimizer_state=optimizer_state,
        head_seed=seed,
    )
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    opt_state = _to_cpu(run.optimiser.state_dict())
    return ClientUpdate(state, opt_state, len(site), run.train_loss, run.steps)


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj


def fedavg(
    params: Sequence[Mapping[str, torch.Tensor]], weights: Sequence[float] | None = None
) -> dict[str, torch.Tensor]:
    """Weighted average of model weights (FedAvg's server step).

    Parameters
    ----------
    params : sequence of state dicts
        One per client, all with the same keys and shapes.
    weights : sequence of float, optional
        Non-negative weight per client (usually its number of training subjects);
        default: equal weights.

    Returns
    -------
    dict of str to torch.Tensor
        ``sum_k w_k params_k / sum_k w_k`` for floating tensors (computed in
        float64, returned in the original dtype); integer tensors are taken from the
        first client.
    """
    params = list(params)
    if not params:
        _fail("params", params, "at least one state dict")
    w = (
        np.ones(len(params))
        if weights is None
        else np.asarray(weights, dtype=np.float64)
    )
    if (
        w.shape != (len(params),)
        or np.any(w < 0)
        or not np.isfinite(w).all()
        or w.sum() <= 0
    ):
        _fail(
            "weights",
            weights,
            "one non-negative finite weight per client, with a positive sum",
        )
    w = w / w.sum()
    keys = list(params[0])
    out = {}
    for key in keys:
        if any(set(p) != set(keys) for p in params):
            raise ValueError("clients returned state dicts with different keys")
        first = torch.as_tensor(params[0][key])
        if not first.is_floating_point():
            out[key] = first.clone()
            continue
        acc = torch.zeros(first.shape, dtype=torch.float64)
        for wk, p in zip(w, params):
            acc += float(wk) * torch.as_tensor(p[key]).to(torch.float64)
        out[key] = acc.to(first.dtype)
    return out


@dataclass
class FedResult:
    """A trained federation model (or, for ``"local"``, one model per site).

    Attributes
    ----------
    strategy : str
        One of :data:`STRATEGIES`.
    params : dict or None
        The global weights (``None`` for local-only training).
    site_params : dict of str to dict
        Per-site weights (local-only training).
    config : FedConfig
        The settings.
    in_shape : tuple of int
        ``(channels, *grid)``.
    history : pandas.DataFrame
        One row per round or cycle: ``round``, ``train_loss``, ``steps``, ``seconds``.
    seed : int
        The seed of the run.
    """

    strategy: str
    params: dict[str, torch.Tensor] | None
    site_params: dict[str, dict[str, torch.Tensor]]
    config: FedConfig
    in_shape: tuple[int, ...]
    history: pd.DataFrame
    seed: int

    def model(self, site: str | None = None) -> nn.Module:
        """The network (of ``site`` for local-only training), in eval mode on the
        CPU."""
        if self.params is None:
            if site is None or site not in self.site_params:
                _fail("site", site, ", ".join(self.site_params))
            params = self.site_params[site]
        else:
            params = self.params
        return _build(self.config, self.in_shape, params, torch.device("cpu")).eval()

    def predict(self, data: Any, site: str | None = None) -> np.ndarray:
        """Disease probabilities for ``data`` (see
        :func:`faimi_tutorial.training.loop.predict`)."""
        return predict(self.model(site), data, device="cpu")


def _history(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["round", "train_loss", "steps", "seconds"])


def _check_fed(federation: Federation) -> list[str]:
    sites = [s for s in federation.site_names if federation.sizes.get(s, 0) > 0]
    if not sites:
        raise ValueError("the federation has no site with training data")
    return sites


def _in_shape(federation: Federation) -> tuple[int, ...]:
    return tuple(int(v) for v in federation.cohort.images.shape[1:])


def train_local(
    federation: Federation, config: FedConfig, seed: int = 0, device: Any = None
) -> FedResult:
    """Local-only training: each site trains its own model for ``rounds *
    local_epochs`` epochs.

    Parameters
    ----------
    federation : Federation
        The sites.
    config : FedConfig
        Settings.
    seed : int, default 0
        Seed of the initialisation and batch orders.
    device : optional
        Training device.

    Returns
    -------
    FedResult
        ``site_params`` holds one model per site; ``params`` is ``None``.
    """
    sites = _check_fed(federation)
    start = time.perf_counter()
    in_shape = _in_shape(federation)
    init = init_params(config, in_shape, seed)
    site_params, losses, steps = {}, [], 0
    for i, site in enumerate(federation.site_names):
        if site not in sites:
            continue
        upd = client_update(
            init,
            federation.train_site(site),
            config,
            epochs=config.rounds * config.local_epochs,
            seed=client_seed(seed, 0, i),
            device=device,
        )
        site_params[site] = upd.params
        losses.append(upd.train_loss)
        steps += upd.steps
    hist = _history(
        [
            {
                "round": 1,
                "train_loss": float(np.mean(losses)),
                "steps": steps,
                "seconds": time.perf_counter() - start,
            }
        ]
    )
    return FedResult("local", None, site_params, config, in_shape, hist, int(seed))


def train_central(
    federation: Federation, config: FedConfig, seed: int = 0, device: Any = None
) -> FedResult:
    """Centralised training on all sites' data pooled, ``rounds * local_epochs`` epochs.

    Parameters
    ----------
    federation : Federation
        The sites.
    config : FedConfig
        Settings.
    seed : int, default 0
        Seed.
    device : optional
        Training device.

    Returns
    -------
    FedResult
    """
    _check_fed(federation)
    in_shape = _in_shape(federation)
    params = init_params(config, in_shape, seed)
    pooled = federation.train
    rows = []
    for r in range(config.rounds):
        start = time.perf_counter()
        upd = client_update(
            params,
            pooled,
            config,
            epochs=config.local_epochs,
            seed=client_seed(seed, r, 0),
            device=device,
            optimizer_state=rows[-1]["_opt"] if rows else None,
        )
        params = upd.params
        rows.append(
            {
                "round": r + 1,
                "train_loss": upd.train_loss,
                "steps": upd.steps,
                "seconds": time.perf_counter() - start,
                "_opt": upd.optimizer_state,
            }
        )
    hist = _history([{k: v for k, v in row.items() if k != "_opt"} for row in rows])
    return FedResult("central", params, {}, config, in_shape, hist, int(seed))


def train_fedavg(
    federation: Federation,
    config: FedConfig,
    seed: int = 0,
    proximal_mu: float = 0.0,
    device: Any = None,
    callback: Callable[[int, list[ClientUpdate], dict], None] | None = None,
) -> FedResult:
    """FedAvg (``proximal_mu = 0``) or FedProx (``proximal_mu > 0``).

    Each round, every site with data trains the global model for
    ``local_epochs`` (fresh optimiser state, seed :func:`client_seed`) and the
    new global model is the average of the returned weights, weighted by the
    sites' numbers of training subjects (:func:`fedavg`).

    Parameters
    ----------
    federation : Federation
        The sites.
    config : FedConfig
        Settings.
    seed : int, default 0
        Seed of the initialisation and batch orders.
    proximal_mu : float, default 0.0
        FedProx's proximal weight.
    device : optional
        Training device.
    callback : callable, optional
        Called after every round with ``(round_index, updates, new_params)``.

    Returns
    -------
    FedResult
    """
    sites = _check_fed(federation)
    in_shape = _in_shape(federation)
    params = init_params(config, in_shape, seed)
    data = {s: federation.train_site(s) for s in sites}
    index = {s: i for i, s in enumerate(federation.site_names)}
    rows = []
    for r in range(config.rounds):
        start = time.perf_counter()
        updates = [
            client_update(
                params,
                data[s],
                config,
                proximal_mu=proximal_mu,
                seed=client_seed(seed, r, index[s]),
                device=device,
            )
            for s in sites
        ]
        params = fedavg([u.params for u in updates], [u.n_samples for u in updates])
        if callback is not None:
            callback(r, updates, params)
        n = np.array([u.n_samples for u in updates], dtype=float)
        rows.append(
            {
                "round": r + 1,
                "train_loss": float(
                    np.sum(n * [u.train_loss for u in updates]) / n.sum()
                ),
                "steps": int(sum(u.steps for u in updates)),
                "seconds": time.perf_counter() - start,
            }
        )
    name = "fedprox" if proximal_mu > 0 else "fedavg"
    return FedResult(name, params, {}, config, in_shape, _history(rows), int(seed))


def train_travelling(
    federation: Federation,
    config: FedConfig,
    seed: int = 0,
    device: Any = None,
    keep_optimizer_state: bool = True,
) -> FedResult:
    """The travelling model: one model visits every site in turn, with its optimiser
    state.

    In every cycle the sites are visited in a new random order (seeded); at each
    site the model trains ``local_epochs`` epochs and then moves on with its
    weights *and* its AdamW state (only its weights with
    ``keep_optimizer_state=False``: every visit starts a fresh optimiser).

    Parameters
    ----------
    federation : Federation
        The sites.
    config : FedConfig
        Settings (``rounds`` = number of cycles).
    seed : int, default 0
        Seed of the initialisation, the visiting orders and batch orders.
    device : optional
        Training device.
    keep_optimizer_state : bool, default True
        Carry the AdamW state from site to site (the travelling model); ``False``
        carries the weights only (an ablation).

    Returns
    -------
    FedResult
        ``history`` also records the visiting order of each cycle (``order``).
    """
    if not isinstance(keep_optimizer_state, (bool, np.bool_)):
        _fail("keep_optimizer_state", keep_optimizer_state, "True or False")
    sites = _check_fed(federation)
    in_shape = _in_shape(federation)
    params = init_params(config, in_shape, seed)
    opt_state = None
    data = {s: federation.train_site(s) for s in sites}
    index = {s: i for i, s in enumerate(federation.site_names)}
    rng = np.random.default_rng([int(seed), 17])
    rows, orders = [], []
    for r in range(config.rounds):
        start = time.perf_counter()
        order = [sites[i] for i in rng.permutation(len(sites))]
        losses, weights, steps = [], [], 0
        for s in order:
            upd = client_update(
                params,
                data[s],
                config,
                optimizer_state=opt_state,
                seed=client_seed(seed, r, index[s]),
                device=device,
            )
            params = upd.params
            opt_state = upd.optimizer_state if keep_optimizer_state else None
            losses.append(upd.train_loss)
            weights.append(upd.n_samples)
            steps += upd.steps
        orders.append(order)
        rows.append(
            {
                "round": r + 1,
                "train_loss": float(np.average(losses, weights=weights)),
                "steps": steps,
                "seconds": time.perf_counter() - start,
            }
        )
    hist = _history(rows)
    hist["order"] = [",".join(o) for o in orders]
    return FedResult("travelling", params, {}, config, in_shape, hist, int(seed))


def train(
    federation: Federation,
    strategy: str,
    config: FedConfig | None = None,
    seed: int = 0,
    device: Any = None,
) -> FedResult:
    """Train with one of :data:`STRATEGIES`.

    Parameters
    ----------
    federation : Federation
        The sites.
    strategy : str
        ``"local"``, ``"central"``, ``"fedavg"``, ``"fedprox"`` or ``"travelling"``.
    config : FedConfig, optional
        Settings (default: the active preset's).
    seed : int, default 0
        Seed.
    device : optional
        Training device.

    Returns
    -------
    FedResult
    """
    config = FedConfig.preset() if config is None else config
    if strategy == "local":
        return train_local(federation, config, seed, device)
    if strategy == "central":
        return train_central(federation, config, seed, device)
    if strategy == "fedavg":
        return train_fedavg(federation, config, seed, 0.0, device)
    if strategy == "fedprox":
        return train_fedavg(federation, config, seed, config.proximal_mu, device)
    if strategy == "travelling":
        return train_travelling(federation, config, seed, device)
    _fail("strategy", strategy, ", ".join(STRATEGIES))
    raise AssertionError  # pragma: no cover


# -----------------------------------------------------------------------------
# evaluation


def site_scores(
    result: FedResult, federation: Federation, twins: bool = False
) -> pd.DataFrame:
    """Test-set scores with each subject's site and groups.

    A global model scores every test subject; local-only models score their own
    site's test subjects (sites without a model, such as ``"shared-test"``, are
    scored by every local model and the mean score is used).

    Parameters
    ----------
    result : FedResult
        A trained model.
    federation : Federation
        Its sites.
    twins : bool, default False
        Also score the counterfactual twins (column ``twin_score``).

    Returns
    -------
    pandas.DataFrame
        ``subject_id``, ``site``, ``scanner``, ``label``, ``bias_group``, ``score``
        (and ``twin_score``).
    """
    test = federation.test
    table = test.meta[["subject_id", "site", "scanner", "label", "bias_group"]].copy()

    def score(images: torch.Tensor) -> np.ndarray:
        if result.params is not None:
            return result.predict(images)
        out = np.full(len(table), np.nan)
        sites = table["site"].to_numpy()
        for site in np.unique(sites):
            mask = sites == site
            if site in result.site_params:
                out[mask] = result.predict(
                    images[torch.as_tensor(np.flatnonzero(mask))], site=site
                )
            else:
                sub = images[torch.as_tensor(np.flatnonzero(mask))]
                out[mask] = np.mean(
                    [result.predict(sub, site=s) for s in result.site_params], axis=0
                )
        return out

    table["score"] = score(test.images)
    if twins:
        if test.twins is None:
            raise ValueError("the federation's cohort has no twins")
        table["twin_score"] = score(test.twins)
    return table.reset_index(drop=True)


def evaluate(
    result: FedResult,
    federation: Federation,
    groups: str = "site",
    *,
    threshold: float = 0.5,
    n_boot: int = 200,
    seed: int = 0,
    min_size: int = 2,
):
    """Subgroup report of the test set by site, bias group or scanner.

    Parameters
    ----------
    result : FedResult
        A trained model.
    federation : Federation
        Its sites.
    groups : str, default "site"
        A column of the test table: ``"site"``, ``"bias_group"`` or ``"scanner"``.
    threshold : float, default 0.5
        One global decision threshold.
    n_boot : int, default 200
        Bootstrap replicates of the intervals (0: none).
    seed : int, default 0
        Seed of the bootstrap.
    min_size : int, default 2
        Groups with fewer test subjects are left out.

    Returns
    -------
    faimi_tutorial.fairness.metrics.SubgroupReport
    """
    import warnings

    table = site_scores(result, federation)
    if groups not in table.columns:
        _fail("groups", groups, "site, bias_group or scanner")
    sizes = table.groupby(groups)[groups].transform("size")
    table = table[sizes >= min_size]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return subgroup_report(
            table["label"].to_numpy(),
            table["score"].to_numpy(),
            table[groups].astype(str).to_numpy(),
            threshold=threshold,
            n_boot=n_boot,
            seed=seed,
        )


def summarise(
    result: FedResult, federation: Federation, threshold: float = 0.5
) -> dict[str, float]:
    """Headline test numbers of one run (no bootstrap: use several seeds for intervals).

    Parameters
    ----------
    result : FedResult
        A trained model.
    federation : Federation
        Its sites.
    threshold : float, default 0.5
        Decision threshold.

    Returns
    -------
    dict
        ``auroc`` and ``accuracy`` on all test subjects; ``worst_site_auroc`` and
        ``site_auroc_range`` over sites whose test set holds both classes (a range,
        max - min, not a signed gap);
        ``tpr_gap``, ``fpr_gap`` and ``auroc_gap``: the signed gaps of
        :func:`faimi_tutorial.fairness.metrics.signed_gaps` (bias group 1 minus group
        0);
        ``flip_rate`` (share of test predictions that change when the bias effect
        is removed, from the counterfactual twins).
    """

    table = site_scores(result, federation, twins=federation.cohort.twins is not None)
    y, s = table["label"].to_numpy(), table["score"].to_numpy()
    out: dict[str, float] = {
        "auroc": auroc(y, s),
        "accuracy": float(np.mean((s >= threshold) == y)),
    }
    site_auc = [
        auroc(part["label"], part["score"])
        for _, part in table.groupby("site")
        if part["label"].nunique() == 2
    ]
    out["worst_site_auroc"] = float(min(site_auc)) if site_auc else float("nan")
    # max - min over sites: a range, not a gap
    out["site_auroc_range"] = (
        float(max(site_auc) - min(site_auc)) if len(site_auc) > 1 else float("nan")
    )
    if table["bias_group"].nunique() == 2:
        gaps = signed_gaps(
            y, s, table["bias_group"].to_numpy(), threshold=threshold, bias_group=1
        )
        for metric in ("TPR", "FPR", "AUROC"):
            out[f"{metric.lower()}_gap"] = gaps[f"{metric}_gap"]
    if "twin_score" in table:
        flips = counterfactual_flip_rate(
            s, table["twin_score"].to_numpy(), threshold=threshold
        )
        out["flip_rate"] = float(flips.loc["overall", "flip_rate"])
    return out


def scanner_swap_rates(
    result: FedResult,
    federation: Federation,
    *,
    swap_site: str = "site-B",
    scanner: Scanner | str = "bright",
    seed: int = 0,
    threshold: float = 0.5,
) -> pd.DataFrame:
    """Per-site TPR and FPR, and the scanner's counterfactual test at one site.

    The test subjects of ``swap_site`` are rendered again by ``scanner`` (the same
    anatomy, another scanner): ``scanner_flip`` is the share of their decisions that
    change, the site's analogue of the counterfactual flip rate.

    Parameters
    ----------
    result : FedResult
        A trained model.
    federation : Federation
        Its sites.
    swap_site : str, default "site-B"
        Site whose test subjects are rendered by ``scanner``.
    scanner : Scanner or str, default "bright"
        The counterfactual scanner (a name from :data:`SCANNERS`).
    seed : int, default 0
        Seed of the scanner noise.
    threshold : float, default 0.5
        Decision threshold.

    Returns
    -------
    pandas.DataFrame
        One row per site: ``site``, ``TPR``, ``FPR`` and ``scanner_flip`` (NaN
        except at ``swap_site``).
    """

    if swap_site not in federation.site_names:
        _fail("swap_site", swap_site, ", ".join(federation.site_names))
    report = evaluate(
        result, federation, "site", threshold=threshold, n_boot=0, min_size=1
    )
    test = federation.test_site(swap_site)
    original = result.predict(test)
    swapped = result.predict(federation.rescan(test, scanner, seed=seed))
    flips = counterfactual_flip_rate(original, swapped, threshold=threshold)
    rows = []
    for site in sorted(s for s in report.table.index if s != OVERALL):
        rows.append(
            {
                "site": site,
                "TPR": float(report.table.loc[site, "TPR"]),
                "FPR": float(report.table.loc[site, "FPR"]),
                "scanner_flip": float(flips.loc["overall", "flip_rate"])
                if site == swap_site
                else float("nan"),
            }
        )
    return pd.DataFrame(rows)


@step
def compare(
    federation: Federation | Callable[[int], Federation],
    strategies: Sequence[str] = STRATEGIES,
    seeds: Sequence[int] = (0, 1, 2),
    config: FedConfig | None = None,
    progress: bool = False,
    device: Any = None,
    return_results: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, dict]:
    """Train every strategy with every seed and collect :func:`summarise`'s numbers.

    Parameters
    ----------
    federation : Federation or callable
        The sites, or a function ``seed -> Federation`` (new data per seed).
    strategies : sequence of str, default all of :data:`STRATEGIES`
        Strategies to run.
    seeds : sequence of int, default (0, 1, 2)
        Seeds (each seeds the model and, with a callable, the data).
    config : FedConfig, optional
        Settings (default: the active preset's).
    progress : bool, default False
        Show a progress bar.
    device : optional
        Training device.
    return_results : bool, default False
        Also return the trained models and their federations.

    Returns
    -------
    pandas.DataFrame
        One row per (strategy, seed) with ``seconds`` and the summary numbers;
        aggregate with :func:`faimi_tutorial.fairness.metrics.aggregate_seeds`.
    dict
        Only with ``return_results``: ``{(strategy, seed): (FedResult, Federation)}``.
    """
    from tqdm.auto import tqdm

    for s in strategies:
        if s not in STRATEGIES:
            _fail("strategies", s, ", ".join(STRATEGIES))
    config = FedConfig.preset() if config is None else config
    rows = []
    results: dict[tuple[str, int], tuple[FedResult, Federation]] = {}
    bar = tqdm(
        total=len(strategies) * len(seeds),
        desc="federated runs",
        disable=not progress,
        leave=False,
    )
    for seed in seeds:
        fed = federation(seed) if callable(federation) else federation
        for strategy in strategies:
            start = time.perf_counter()
            result = train(fed, strategy, config, seed=int(seed), device=device)
            seconds = time.perf_counter() - start
            rows.append(
                {
                    "strategy": strategy,
                    "seed": int(seed),
                    "seconds": seconds,
                    **summarise(result, fed),
                }
            )
            if return_results:
                results[(strategy, int(seed))] = (result, fed)
            bar.update(1)
    bar.close()
    table = pd.DataFrame(rows)
    return (table, results) if return_results else table
