"""Sites, client training, FedAvg/FedProx, travelling model, evaluation (tiny 2D preset)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from faimi_tutorial import federated as F
from faimi_tutorial import objectives
from faimi_tutorial.data.simulate import SimulationConfig, generate


@pytest.fixture(scope="module")
def cohort():
    return generate(SimulationConfig.preset("tiny", dims=2, n_subjects=240, seed=3), progress=False)


@pytest.fixture(scope="module")
def fed(cohort):
    specs = [
        F.SiteSpec("big", n_train=40, n_test=12, scanner="reference"),
        F.SiteSpec("bright", n_train=20, n_test=12, prevalence=0.8, bias_prevalence=0.9, scanner="bright"),
        F.SiteSpec("one", n_train=1, scanner="noisy"),
        F.SiteSpec("two", n_train=2, scanner="low_contrast"),
    ]
    return F.make_sites(cohort, specs, seed=1, extra_test=8)


@pytest.fixture(scope="module")
def config():
    return F.FedConfig.preset("tiny", rounds=2, batch_size=8)


# ----------------------------------------------------------------------------- scanners


def test_scanner_reference_is_identity_and_others_change_images():
    x = torch.rand(3, 1, 8, 8)
    assert torch.equal(F.Scanner().apply(x), x)
    for name, scanner in F.SCANNERS.items():
        y = scanner.apply(x, seed=4)
        assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
        if name != "reference":
            assert not torch.allclose(y, x)
    noisy = F.SCANNERS["noisy"]
    assert torch.equal(noisy.apply(x, 5), noisy.apply(x, 5))
    assert not torch.equal(noisy.apply(x, 5), noisy.apply(x, 6))


def test_scanner_brightness_raises_mean_and_contrast_narrows_range():
    x = torch.linspace(0.2, 0.8, 64).reshape(1, 1, 8, 8)
    assert F.Scanner("b", brightness=0.1).apply(x).mean() > x.mean() + 0.05
    low = F.Scanner("c", contrast=0.5).apply(x)
    assert float(low.max() - low.min()) == pytest.approx(0.5 * float(x.max() - x.min()), rel=1e-5)


@pytest.mark.parametrize(
    "kwargs, field",
    [({"gamma": 0.0}, "gamma"), ({"contrast": -1.0}, "contrast"), ({"brightness": 2.0}, "brightness"),
     ({"noise_sd": -0.1}, "noise_sd"), ({"name": ""}, "name")],
)
def test_scanner_validates(kwargs, field):
    with pytest.raises(ValueError, match=field):
        F.Scanner(**kwargs)


@pytest.mark.parametrize(
    "kwargs, field",
    [({"n_train": 0}, "n_train"), ({"n_test": -1}, "n_test"), ({"prevalence": 1.5}, "prevalence"),
     ({"bias_prevalence": (0.2, 1.2)}, "bias_prevalence"), ({"scanner": "nope"}, "scanner"),
     ({"name": " "}, "name"), ({"test_prevalence": -0.1}, "test_prevalence")],
)
def test_sitespec_validates(kwargs, field):
    settings = {"name": "s", "n_train": 3, **kwargs}
    with pytest.raises(ValueError, match=field):
        F.SiteSpec(**settings)


# ----------------------------------------------------------------------------- sites


def test_make_sites_sizes_populations_and_scanners(fed, cohort):
    summary = fed.summary()
    assert list(summary.index) == ["big", "bright", "one", "two", "shared-test"]
    assert summary.loc["big", "n_train"] == 40 and summary.loc["big", "n_test"] == 12
    assert summary.loc["one", "n_train"] == 1 and summary.loc["two", "n_train"] == 2
    assert summary.loc["bright", "disease_share"] == pytest.approx(0.8)
    assert summary.loc["bright", "bias_share"] == pytest.approx(0.9, abs=0.06)
    assert summary.loc["shared-test", "n_test"] == 8
    assert fed.sizes.to_dict() == {"big": 40, "bright": 20, "one": 1, "two": 2, "shared-test": 0}
    # every subject appears once, and train/test come from the cohort's own splits
    ids = fed.meta["subject_id"]
    assert ids.is_unique
    original = cohort.meta.set_index("subject_id")["split"].astype(str)
    for sid, split in zip(ids, fed.meta["split"].astype(str)):
        assert (original[sid] == "test") == (split == "test")
    # scanners were applied: the reference site is untouched, the bright site is brighter
    pos = {s: i for i, s in enumerate(cohort.meta["subject_id"])}
    for site in ("big", "bright"):
        part = fed.train_site(site)
        raw = cohort.images[torch.as_tensor([pos[s] for s in part.meta["subject_id"]])]
        if site == "big":
            assert torch.equal(part.images, raw)
        else:
            assert part.images.mean() > raw.mean()
            # the twin got the same scanner (and noise) as its subject
            assert torch.equal(part.images[part.bias_group == 0], part.twins[part.bias_group == 0])


def test_make_sites_is_deterministic_and_seed_dependent(cohort):
    specs = F.few_large_sites(2, n_train=20, n_test=6)
    a, b = F.make_sites(cohort, specs, seed=0), F.make_sites(cohort, specs, seed=0)
    c = F.make_sites(cohort, specs, seed=1)
    assert a.meta["subject_id"].tolist() == b.meta["subject_id"].tolist()
    assert torch.equal(a.cohort.images, b.cohort.images)
    assert a.meta["subject_id"].tolist() != c.meta["subject_id"].tolist()


def test_make_sites_rejects_too_large_sites_and_duplicate_names(cohort):
    with pytest.raises(ValueError, match="larger cohort"):
        F.make_sites(cohort, [F.SiteSpec("huge", n_train=500)])
    with pytest.raises(ValueError, match="unique"):
        F.make_sites(cohort, [F.SiteSpec("a", 2), F.SiteSpec("a", 2)])
    with pytest.raises(ValueError, match="specs"):
        F.make_sites(cohort, [])


def test_site_recorded_in_participants_tsv(fed, tmp_path):
    from faimi_tutorial import datasets

    path = datasets.write_cohort(fed.cohort, tmp_path / "sites")
    table = pd.read_csv(path / "participants.tsv", sep="\t")
    assert "site" in table and "scanner" in table
    assert table.set_index("participant_id")["site"].to_dict() == fed.meta.set_index("subject_id")["site"].to_dict()


def test_rescan_renders_subjects_with_another_scanner(fed):
    test = fed.test_site("big")
    bright = fed.rescan(test, "bright", seed=0)
    assert bright.meta["subject_id"].tolist() == test.meta["subject_id"].tolist()
    assert (bright.meta["scanner"] == "bright").all()
    assert bright.images.mean() > test.images.mean()
    same = fed.rescan(test, "reference")
    assert torch.equal(same.images, test.images)


def test_scenario_helpers():
    few = F.few_large_sites(3, n_train=10, n_test=2, prevalences=[0.5, 0.6, 0.7])
    assert [s.name for s in few] == ["site-A", "site-B", "site-C"]
    assert [s.prevalence for s in few] == [0.5, 0.6, 0.7]
    assert len({s.scanner.name for s in few}) == 3
    many = F.many_small_sites(50, sizes=(1, 2), seed=0)
    assert len(many) == 50 and {s.n_train for s in many} == {1, 2}
    assert many == F.many_small_sites(50, sizes=(1, 2), seed=0)
    short = F.shortcut_sites(10, 4)
    assert short[0].prevalence > 0.5 > short[1].prevalence and short[0].scanner != short[1].scanner
    with pytest.raises(ValueError, match="n_sites"):
        F.many_small_sites(0)
    with pytest.raises(ValueError, match="sizes"):
        F.many_small_sites(3, sizes=(0,))


def test_stochastic_rounding_gives_single_subject_sites_both_labels(cohort):
    fed = F.make_sites(cohort, F.many_small_sites(60, sizes=(1,), seed=2), seed=2)
    labels = fed.meta["label"]
    assert 10 < labels.sum() < 50


# ----------------------------------------------------------------------------- training pieces


def test_fedconfig_validates_and_presets():
    cfg = F.FedConfig.preset("tiny", rounds=3)
    assert cfg.rounds == 3 and cfg.channels == (4, 8, 16)
    assert F.FedConfig.preset("tutorial").rounds >= 1
    for kwargs, field in (({"rounds": 0}, "rounds"), ({"lr": 0}, "lr"), ({"proximal_mu": -1}, "proximal_mu"),
                          ({"local_epochs": 0}, "local_epochs"), ({"batch_size": 0}, "batch_size")):
        with pytest.raises(ValueError, match=field):
            F.FedConfig(**kwargs)
    with pytest.raises(ValueError, match="unknown"):
        F.FedConfig.preset("tiny", nonsense=1)
    assert F.FedConfig.preset("tiny").to_dict()["rounds"] == 2


def test_init_params_seeded_and_leaves_global_rng_alone(config):
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = F.init_params(config, (1, 32, 32), seed=0)
    after = torch.rand(1)
    assert torch.equal(before, after)
    b = F.init_params(config, (1, 32, 32), seed=0)
    c = F.init_params(config, (1, 32, 32), seed=1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_client_seed_is_stable_and_distinct():
    assert F.client_seed(0, 1, 2) == F.client_seed(0, 1, 2)
    assert len({F.client_seed(0, r, s) for r in range(5) for s in range(5)}) == 25


def test_client_update_trains_repeatably_and_carries_optimizer_state(fed, config):
    data = fed.train_site("big")
    init = F.init_params(config, (1, 32, 32), seed=0)
    a = F.client_update(init, data, config, seed=5)
    b = F.client_update(init, data, config, seed=5)
    assert a.n_samples == 40 and a.steps == 5 and np.isfinite(a.train_loss)
    assert all(torch.equal(a.params[k], b.params[k]) for k in a.params)
    assert any(not torch.equal(a.params[k], init[k]) for k in init)
    assert a.optimizer_state["state"], "AdamW state is returned"
    # continuing with the optimiser state differs from starting afresh
    c = F.client_update(a.params, data, config, optimizer_state=a.optimizer_state, seed=6)
    d = F.client_update(a.params, data, config, seed=6)
    assert any(not torch.allclose(c.params[k], d.params[k]) for k in c.params)
    assert int(c.optimizer_state["state"][0]["step"]) == 10


def test_client_update_proximal_term_keeps_weights_near_start(fed, config):
    data = fed.train_site("big")
    init = F.init_params(config, (1, 32, 32), seed=0)
    free = F.client_update(init, data, config, epochs=3, seed=1)
    prox = F.client_update(init, data, config, epochs=3, seed=1, proximal_mu=50.0)

    def dist(p):
        return sum(float(((p[k] - init[k]) ** 2).sum()) for k in init)

    assert dist(prox.params) < dist(free.params)
    with pytest.raises(ValueError, match="proximal_mu"):
        F.client_update(init, data, config, proximal_mu=-1)


def test_client_update_single_subject_site(fed, config):
    upd = F.client_update(None, fed.train_site("one"), config, seed=0)
    assert upd.n_samples == 1 and upd.steps == config.local_epochs


def test_fedavg_weighted_mean():
    a = {"w": torch.tensor([0.0, 2.0]), "n": torch.tensor(3)}
    b = {"w": torch.tensor([4.0, 6.0]), "n": torch.tensor(7)}
    out = F.fedavg([a, b], [1, 3])
    torch.testing.assert_close(out["w"], torch.tensor([3.0, 5.0]))
    assert int(out["n"]) == 3
    torch.testing.assert_close(F.fedavg([a, b])["w"], torch.tensor([2.0, 4.0]))
    with pytest.raises(ValueError, match="weights"):
        F.fedavg([a, b], [1, -1])
    with pytest.raises(ValueError, match="params"):
        F.fedavg([])


# ----------------------------------------------------------------------------- strategies


@pytest.mark.parametrize("strategy", F.STRATEGIES)
def test_every_strategy_trains_and_evaluates(fed, config, strategy):
    result = F.train(fed, strategy, config, seed=0)
    assert result.strategy == strategy
    assert len(result.history) == (1 if strategy == "local" else config.rounds)
    if strategy == "local":
        assert result.params is None and set(result.site_params) == {"big", "bright", "one", "two"}
    else:
        assert result.params is not None
    scores = F.site_scores(result, fed, twins=True)
    assert len(scores) == len(fed.test) and scores["score"].between(0, 1).all()
    assert scores["twin_score"].between(0, 1).all()
    summary = F.summarise(result, fed)
    assert 0 <= summary["auroc"] <= 1 and 0 <= summary["flip_rate"] <= 1
    # the signed gaps are bias group 1 minus group 0, exactly as before signed_gaps
    import warnings

    from faimi_tutorial.fairness.metrics import auroc, subgroup_report

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = subgroup_report(scores["label"], scores["score"], scores["bias_group"],
                                n_boot=0).table
    for metric in ("TPR", "FPR", "AUROC"):
        expected = table.loc[1, metric] - table.loc[0, metric]
        assert summary[f"{metric.lower()}_gap"] == pytest.approx(expected, abs=0, nan_ok=True)
    # site_auroc_range is a range over sites (max - min), not a signed gap
    site = [auroc(p["label"], p["score"]) for _, p in scores.groupby("site")
            if p["label"].nunique() == 2]
    assert summary["site_auroc_range"] == pytest.approx(max(site) - min(site), nan_ok=True)
    assert summary["worst_site_auroc"] == min(site)
    report = F.evaluate(result, fed, "site", n_boot=20)
    assert {"big", "bright", "shared-test"} <= set(report.table.index)


def test_fedavg_round_is_weighted_average_of_client_updates(fed, config):
    seen = []
    result = F.train_fedavg(fed, config, seed=0, callback=lambda r, u, p: seen.append((u, p)))
    assert len(seen) == config.rounds
    updates, params = seen[-1]
    assert [u.n_samples for u in updates] == [40, 20, 1, 2]
    expected = F.fedavg([u.params for u in updates], [u.n_samples for u in updates])
    assert all(torch.equal(expected[k], params[k]) for k in params)
    assert all(torch.equal(result.params[k], params[k]) for k in params)


def test_fedprox_differs_from_fedavg(fed, config):
    avg = F.train(fed, "fedavg", config, seed=0)
    prox = F.train(fed, "fedprox", F.FedConfig.preset("tiny", rounds=2, batch_size=8, proximal_mu=10.0), seed=0)
    assert any(not torch.allclose(avg.params[k], prox.params[k]) for k in avg.params)


def test_travelling_model_reshuffles_sites_each_cycle(fed):
    cfg = F.FedConfig.preset("tiny", rounds=4, batch_size=8)
    result = F.train_travelling(fed, cfg, seed=0)
    orders = result.history["order"].tolist()
    assert all(sorted(o.split(",")) == ["big", "bright", "one", "two"] for o in orders)
    assert len(set(orders)) > 1
    # one optimiser step per batch at every site, every cycle
    assert (result.history["steps"] == 5 + 3 + 1 + 1).all()
    again = F.train_travelling(fed, cfg, seed=0)
    assert all(torch.equal(again.params[k], result.params[k]) for k in result.params)


def test_train_rejects_unknown_strategy(fed, config):
    with pytest.raises(ValueError, match="strategy"):
        F.train(fed, "gossip", config)


def test_compare_runs_all_combinations(cohort):
    cfg = F.FedConfig.preset("tiny", rounds=1, batch_size=8)

    def make(seed):
        return F.make_sites(cohort, F.few_large_sites(2, n_train=12, n_test=6), seed=seed)

    table = F.compare(make, ["central", "travelling"], seeds=[0, 1], config=cfg)
    assert len(table) == 4 and set(table["strategy"]) == {"central", "travelling"}
    assert {"auroc", "worst_site_auroc", "tpr_gap", "flip_rate", "seconds"} <= set(table.columns)
    table2, results = F.compare(make, ["central"], seeds=[0], config=cfg, return_results=True)
    result, fed = results[("central", 0)]
    assert result.strategy == "central" and len(fed.test) == 12
    assert table2.loc[0, "auroc"] == pytest.approx(table.query("strategy == 'central' and seed == 0")["auroc"].item())
    with pytest.raises(ValueError, match="strategies"):
        F.compare(make, ["nope"], seeds=[0], config=cfg)


def test_scanner_swap_rates_per_site_and_counterfactual(cohort):
    cfg = F.FedConfig.preset("tiny", rounds=1, batch_size=8)
    fed = F.make_sites(cohort, F.shortcut_sites(n_train=20, n_test=12), seed=0)
    result = F.train(fed, "central", cfg, seed=0)
    rates = F.scanner_swap_rates(result, fed, swap_site="site-B", scanner="bright", seed=0)
    assert list(rates["site"]) == sorted(fed.site_names)
    assert rates[["TPR", "FPR"]].stack().between(0, 1).all()
    flip = rates.set_index("site")["scanner_flip"]
    assert np.isnan(flip["site-A"]) and 0 <= flip["site-B"] <= 1
    # the flip is the share of site-B's decisions that change under the other scanner
    test = fed.test_site("site-B")
    before = result.predict(test) >= 0.5
    after = result.predict(fed.rescan(test, "bright", seed=0)) >= 0.5
    assert flip["site-B"] == pytest.approx(np.mean(before != after))
    # its own (reference, noise-free) scanner changes nothing
    same = F.scanner_swap_rates(result, fed, swap_site="site-B", scanner="reference")
    assert same.set_index("site").loc["site-B", "scanner_flip"] == 0.0
    with pytest.raises(ValueError, match="swap_site"):
        F.scanner_swap_rates(result, fed, swap_site="nowhere")


# ----------------------------------------------------------------------------- objectives


def test_fedconfig_mitigation_names_the_clients_objective():
    kinds = {m: type(F.FedConfig(mitigation=m).objective()) for m in objectives.MITIGATIONS}
    assert kinds["none"] is objectives.ERM and kinds["groupdro"] is objectives.GroupDRO
    assert F.FedConfig(mitigation="groupdro", groupdro_eta=0.5).objective().eta == 0.5
    for kwargs, field in (({"mitigation": "fair"}, "mitigation"),
                          ({"groupdro_eta": 0}, "eta"),
                          ({"unlearning_alpha": -1}, "unlearning_alpha")):
        with pytest.raises(ValueError, match=field):
            F.FedConfig(**kwargs)


@pytest.mark.parametrize("strategy", ["fedavg", "central"])
@pytest.mark.parametrize("mitigation", ["reweighing", "groupdro", "unlearning"])
def test_federated_training_with_a_mitigation_runs_and_changes_the_model(
    fed, config, strategy, mitigation
):
    erm = F.train(fed, strategy, config, seed=0)
    cfg = F.FedConfig(**{**config.to_dict(), "mitigation": mitigation})
    mitigated = F.train(fed, strategy, cfg, seed=0)
    again = F.train(fed, strategy, cfg, seed=0)
    assert all(torch.equal(mitigated.params[k], again.params[k]) for k in erm.params)
    change = max(float((mitigated.params[k].float() - erm.params[k].float()).abs().max())
                 for k in erm.params)
    assert change > 1e-4
    scores = mitigated.predict(fed.test)
    assert np.isfinite(scores).all() and not np.allclose(scores, erm.predict(fed.test))


def test_client_update_takes_any_objective_and_adds_fedprox(fed, config):
    data = fed.train_site("bright")
    init = F.init_params(config, (1, 32, 32), seed=0)
    dro = F.client_update(init, data, config, seed=3, objective=objectives.GroupDRO(1.0))
    both = F.client_update(init, data, config, seed=3, proximal_mu=50.0,
                           objective=objectives.GroupDRO(1.0))
    explicit = F.client_update(init, data, config, seed=3,
                               objective=objectives.FedProx(50.0, objectives.GroupDRO(1.0)))
    assert all(torch.equal(both.params[k], explicit.params[k]) for k in init)

    def dist(p):
        return sum(float(((p[k] - init[k]) ** 2).sum()) for k in init)

    assert dist(both.params) < dist(dro.params)
    with pytest.raises(ValueError, match="objective"):
        F.client_update(init, data, config, objective="groupdro")


def test_model_from_params_loads_the_weights(config):
    init = F.init_params(config, (1, 32, 32), seed=2)
    model = F.model_from_params(config, (1, 32, 32), init)
    assert not model.training
    assert all(torch.equal(v, init[k]) for k, v in model.state_dict().items())
