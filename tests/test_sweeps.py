"""Tests of faimi_tutorial.experiments.sweeps: hashing, the on-disk cache, experiments and sweeps."""

from __future__ import annotations

import types
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

import faimi_tutorial.experiments.sweeps as sweeps
from faimi_tutorial import training


def toy_factory(preset, overrides, seed):
    """Cohort-like toy data with train/val/test splits and bias-free twins of the test set."""
    prevalence = tuple(overrides.get("bias_prevalence", (0.5, 0.5)))
    kw = dict(n=120, size=16, bias_prevalence=prevalence, seed=seed)
    data = training.toy_data(**kw)
    twins = training.toy_data(**kw, bias_strength=0.0)
    idx = np.arange(120)
    cohort = types.SimpleNamespace(
        train=data.subset(idx[:70]),
        val=data.subset(idx[70:90]),
        test=data.subset(idx[90:]),
    )
    cohort.test.twins = twins.images[90:]
    return cohort


@pytest.fixture
def cache(tmp_path):
    return sweeps.ResultCache(tmp_path / "cache")


def test_config_hash_is_stable_and_sensitive():
    a = {"x": (1, 2), "y": {"b": 1.0, "a": "s"}}
    b = {"y": {"a": "s", "b": 1.0}, "x": [1, 2]}
    assert sweeps.config_hash(a) == sweeps.config_hash(b)
    assert sweeps.config_hash(a) != sweeps.config_hash({**a, "x": (1, 3)})
    assert len(sweeps.config_hash(a, length=8)) == 8
    assert sweeps.config_hash({"v": np.float64(0.5)}) == sweeps.config_hash({"v": 0.5})

    @dataclass
    class C:
        p: float = 0.5

    assert sweeps.config_hash(C()) == sweeps.config_hash({"p": 0.5})
    with pytest.raises(ValueError, match="length"):
        sweeps.config_hash(a, length=2)


def test_result_cache_round_trip_and_clear(cache):
    assert cache.get("k") is None and "k" not in cache
    cache.put("k", {"a": 1.5, "b": np.int64(2)}, config={"x": 1})
    assert "k" in cache and len(cache) == 1
    assert cache.get("k") == {"a": 1.5, "b": 2}
    assert cache.clear() == 1 and cache.get("k") is None
    off = sweeps.ResultCache(cache.directory, enabled=False)
    off.put("k", {"a": 1})
    assert off.get("k") is None and len(cache) == 0


def test_default_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FAIMI_CACHE_DIR", str(tmp_path))
    assert sweeps.default_cache_dir() == tmp_path
    monkeypatch.delenv("FAIMI_CACHE_DIR")
    assert "faimi-tutorial" in str(sweeps.default_cache_dir())


def test_cached_computes_once(cache):
    calls = []

    def compute():
        calls.append(1)
        return {"value": 3.0}

    first = sweeps.cached({"c": 1}, compute, cache)
    second = sweeps.cached({"c": 1}, compute, cache)
    third = sweeps.cached({"c": 1}, compute, cache, refresh=True)
    assert len(calls) == 2
    assert not first["cached"] and second["cached"] and not third["cached"]
    assert second["value"] == 3.0


def test_experiment_validates_and_replaces():
    with pytest.raises(ValueError, match="seed"):
        sweeps.Experiment(preset="tiny", seed=-1)
    with pytest.raises(ValueError, match="threshold"):
        sweeps.Experiment(preset="tiny", threshold=1.0)
    with pytest.raises(ValueError, match="preset"):
        sweeps.Experiment(preset="huge")
    with pytest.raises(ValueError, match="mitigation"):
        sweeps.Experiment(preset="tiny", training={"mitigation": "magic"})
    e = sweeps.Experiment(preset="tiny", simulation={"a": 1}, seed=2)
    f = e.replace(simulation={"b": 2}, seed=3)
    assert f.simulation == {"a": 1, "b": 2} and f.seed == 3 and f.cohort_seed == 3
    assert e.replace(data_seed=7).cohort_seed == 7
    assert e.train_config().epochs == 3


def test_evaluate_reports_gaps_and_counterfactual_flips():
    cohort = toy_factory("tiny", {"bias_prevalence": (0.9, 0.1)}, 0)
    r = training.fit(cohort, "tiny", seed=0, progress=False, epochs=2)
    out = sweeps.evaluate(r, cohort.test)
    for key in (
        "accuracy",
        "AUROC",
        "TPR_g0",
        "TPR_g1",
        "FPR_gap",
        "TPR_gap",
        "twin_AUROC",
        "flip_rate",
    ):
        assert key in out
    assert out["TPR_gap"] == pytest.approx(out["TPR_g1"] - out["TPR_g0"])
    assert 0 <= out["flip_rate"] <= 1
    # identical twins: nothing flips
    same = sweeps.evaluate(r, cohort.test, twins=cohort.test.images)
    assert same["flip_rate"] == 0 and same["mean_abs_change"] == 0


def test_signed_gaps_are_bias_group_minus_the_others():
    label = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    group = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    scores = np.array([0.9, 0.2, 0.1, 0.2, 0.9, 0.8, 0.7, 0.1])
    gaps = sweeps.signed_gaps(label, scores, group, per_group=True)
    assert gaps["TPR_g0"] == 0.5 and gaps["TPR_g1"] == 1.0
    assert gaps["TPR_gap"] == pytest.approx(0.5) and gaps["FPR_gap"] == pytest.approx(
        0.5
    )
    assert gaps["n_test"] == 8
    flipped = sweeps.signed_gaps(label, scores, group, bias_group=0)
    assert flipped["TPR_gap"] == pytest.approx(-0.5) and "TPR_g0" not in flipped
    # no bias group in the data: the gap is undefined, not zero
    assert np.isnan(sweeps.signed_gaps(label, scores, 2 * group)["TPR_gap"])


def test_twin_gaps_read_the_stored_twin_scores(cache):
    e = sweeps.Experiment(
        preset="tiny",
        simulation={"bias_prevalence": (0.9, 0.1)},
        training={"epochs": 2},
    )
    rec = sweeps.run_experiment(e, cache=cache, factory=toy_factory)
    twin = sweeps.twin_gaps(rec, cache)
    test = sweeps.load_scores(rec, cache)["test"]
    expected = sweeps.signed_gaps(test["label"], test["twin_score"], test["bias_group"])
    assert twin["TPR_gap_twin"] == pytest.approx(expected["TPR_gap"], nan_ok=True)
    assert twin["FPR_gap_twin"] == pytest.approx(expected["FPR_gap"], nan_ok=True)
    # on the real scores the same function gives the record's own gaps
    real = sweeps.signed_gaps(test["label"], test["score"], test["bias_group"])
    assert real["TPR_gap"] == pytest.approx(rec["TPR_gap"], nan_ok=True)
    with pytest.raises(ValueError, match="no scores"):
        sweeps.twin_gaps("0123456789abcdef", cache)


def test_run_experiment_uses_the_cache(cache):
    e = sweeps.Experiment(
        preset="tiny",
        simulation={"bias_prevalence": (0.8, 0.2)},
        training={"epochs": 1},
    )
    first = sweeps.run_experiment(e, cache=cache, factory=toy_factory)
    second = sweeps.run_experiment(e, cache=cache, factory=toy_factory)
    assert not first["cached"] and second["cached"]
    assert first["TPR_gap"] == pytest.approx(second["TPR_gap"])
    assert first["sim.bias_prevalence"] == "80/20"
    other = sweeps.run_experiment(e.replace(seed=1), cache=cache, factory=toy_factory)
    assert not other["cached"] and other["key"] != first["key"]
    rec, result, cohort = sweeps.run_experiment(
        e, cache=cache, factory=toy_factory, return_model=True
    )
    assert isinstance(result, training.FitResult) and hasattr(cohort, "test")


def test_load_scores_returns_the_models_stored_scores(cache):
    e = sweeps.Experiment(
        preset="tiny",
        simulation={"bias_prevalence": (0.8, 0.2)},
        training={"epochs": 1},
    )
    rec, result, cohort = sweeps.run_experiment(
        e, cache=cache, factory=toy_factory, return_model=True
    )
    scores = sweeps.load_scores(rec, cache)
    assert set(scores) == {"val", "test"}
    test = scores["test"]
    assert (
        len(test) == len(cohort.test)
        and "twin_score" in test
        and "twin_score" not in scores["val"]
    )
    assert np.allclose(test["score"], result.predict(cohort.test))
    assert (test["label"].to_numpy() == cohort.test.label).all()
    # a record whose scores are missing is recomputed
    (cache.directory / f"{rec['key']}.scores.json").unlink()
    again = sweeps.run_experiment(e, cache=cache, factory=toy_factory)
    assert not again["cached"]
    assert len(sweeps.load_scores(again["key"], cache)["val"]) == len(cohort.val)
    with pytest.raises(ValueError, match="no scores"):
        sweeps.load_scores("0123456789abcdef", cache)


def test_sweep_runs_every_value_and_seed_and_summarises(cache):
    base = sweeps.Experiment(preset="tiny", training={"epochs": 1})
    values = [(0.5, 0.5), (0.9, 0.1)]
    def run():
        return sweeps.sweep(
            base,
            "bias_prevalence",
            values,
            seeds=[0, 1],
            cache=cache,
            factory=toy_factory,
            progress=False,
        )

    table = run()
    assert len(table) == 4
    assert table["value"].tolist() == ["50/50", "50/50", "90/10", "90/10"]
    assert (table["parameter"] == "bias_prevalence").all()
    summary = sweeps.summarise(table)
    assert summary["value"].tolist() == ["50/50", "90/10"]
    assert (summary["n_runs"] == 2).all()
    assert {"TPR_gap_mean", "TPR_gap_low", "TPR_gap_high"} <= set(summary.columns)
    again = run()
    assert again["cached"].all()
    pd.testing.assert_series_equal(again["FPR_gap"], table["FPR_gap"])


def test_sweep_over_a_training_setting(cache):
    base = sweeps.Experiment(preset="tiny", training={"epochs": 1})
    table = sweeps.sweep(
        base,
        "mitigation",
        ["none", "reweighing"],
        seeds=[0],
        cache=cache,
        factory=toy_factory,
        progress=False,
    )
    assert table["mitigation"].tolist() == ["none", "reweighing"]
    with pytest.raises(ValueError, match="parameter"):
        sweeps.sweep(base, "model.width", [1], cache=cache, factory=toy_factory)
    with pytest.raises(ValueError, match="values"):
        sweeps.sweep(base, "mitigation", [], cache=cache, factory=toy_factory)


def test_simulation_settings_resolve_the_full_configuration():
    pytest.importorskip("faimi_tutorial.data.simulate")
    s = sweeps.simulation_settings("tiny", {"bias_prevalence": (0.6, 0.4)}, 3)
    assert s["seed"] == 3 and list(s["bias_prevalence"]) == [0.6, 0.4]
    assert "bias_region" in s


def _summary(cache):
    base = sweeps.Experiment(preset="tiny", training={"epochs": 1})
    table = sweeps.sweep(
        base,
        "bias_prevalence",
        [(0.5, 0.5), (0.9, 0.1)],
        seeds=[0, 1],
        cache=cache,
        factory=toy_factory,
        progress=False,
    )
    return table, sweeps.summarise(
        table, values=["TPR_g0", "TPR_g1", "FPR_g0", "FPR_g1", "TPR_gap", "FPR_gap"]
    )


def test_format_summary_and_figures(cache):
    import matplotlib

    matplotlib.use("Agg")
    from faimi_tutorial import plotting

    table, summary = _summary(cache)
    text = sweeps.format_summary(summary, ["TPR_gap"])
    assert list(text.index) == ["50/50", "90/10"]
    m, lo, hi = (summary.loc[0, f"TPR_gap_{k}"] for k in ("mean", "low", "high"))
    assert text.iloc[0]["TPR_gap"] == f"{m:.3f} [{lo:.3f}, {hi:.3f}]"
    with pytest.raises(ValueError, match="values"):
        sweeps.format_summary(summary, ["nope"])
    fig = plotting.plot_seed_summary(summary, metrics=("TPR_gap", "FPR_gap"))
    assert len(fig.axes) == 2
    assert np.allclose(fig.axes[0].lines[0].get_ydata(), summary["TPR_gap_mean"])
    fig = plotting.plot_group_metrics(summary)
    assert len(fig.axes) == 2 and len(fig.axes[-1].get_legend().get_texts()) == 2
    with pytest.raises(ValueError, match="AUROC_g0"):
        plotting.plot_group_metrics(summary, metrics=("AUROC",))
    with pytest.raises(ValueError, match="nope"):
        plotting.plot_seed_summary(summary, metrics=("nope",))
    matplotlib.pyplot.close("all")


def test_threshold_optimizer_runs_use_stored_scores(cache):
    table, _ = _summary(cache)
    table = table[
        table["value"] == "50/50"
    ]  # both groups hold both labels in validation
    post = sweeps.threshold_optimizer_runs(table, cache=cache)
    assert len(post) == len(table)
    assert (post["mitigation"] == "threshold_optimizer").all()
    assert post["TPR_gap"].tolist() == pytest.approx(
        (post["TPR_g1"] - post["TPR_g0"]).tolist()
    )
    assert post[["TPR_g0", "TPR_g1", "FPR_g0", "FPR_g1"]].stack().between(0, 1).all()


def test_simulate_cohort_is_the_default_factory():
    pytest.importorskip("faimi_tutorial.data.simulate")
    cohort = sweeps.simulate_cohort("tiny", {"dims": 2, "n_subjects": 16}, 0)
    assert len(cohort) == 16 and cohort.images.ndim == 4
    assert hasattr(cohort.test, "twins")


def test_shifted_prevalence():
    assert sweeps.shifted_prevalence((0.7, 0.3), "same") == (0.7, 0.3)
    assert sweeps.shifted_prevalence((0.7, 0.3), "none") == pytest.approx((0.5, 0.5))
    assert sweeps.shifted_prevalence((0.9, 0.1), "reversed") == (0.1, 0.9)
    with pytest.raises(ValueError, match="shift"):
        sweeps.shifted_prevalence((0.7, 0.3), "sideways")


def test_run_with_shift_tests_one_model_on_shifted_cohorts(cache):
    exp = sweeps.Experiment(
        preset="tiny",
        seed=0,
        simulation={
            "dims": 2,
            "n_subjects": 96,
            "bias_prevalence": (0.9, 0.1),
            "bias_kind": "intensity",
            "intensity_factor": 1.6,
        },
        training={"epochs": 2},
    )
    rows = sweeps.run_with_shift(exp, n_test=64, cache=cache)
    assert [r["shift"] for r in rows] == list(sweeps.SHIFTS)
    by = {r["shift"]: r for r in rows}
    assert by["reversed"]["test_prevalence"] == "10/90"
    assert by["same"]["n_test"] == 64
    # one training: the second call is served from the cache, identically
    again = sweeps.run_with_shift(exp, n_test=64, cache=cache)
    assert [r["AUROC"] for r in again] == [r["AUROC"] for r in rows]
    with pytest.raises(ValueError, match="n_test"):
        sweeps.run_with_shift(exp, n_test=2, cache=cache)


def test_train_config_takes_the_3d_changes():
    from faimi_tutorial import presets

    flat = training.TrainConfig.preset("tutorial", dims=2)
    vol = training.TrainConfig.preset("tutorial", dims=3)
    assert (
        vol.patience is None and vol.epochs == presets.TRAINING_3D["tutorial"]["epochs"]
    )
    assert flat.patience == presets.TRAINING["tutorial"]["patience"]
    assert flat.selection == "overall" and flat.selection_metric == "auroc"
    exp = sweeps.Experiment(preset="tutorial", simulation={"dims": 3})
    assert exp.train_config().patience is None
    with pytest.raises(ValueError, match="dims"):
        training.TrainConfig.preset("tutorial", dims=4)


def test_verdicts_read_each_interval():
    summary = pd.DataFrame(
        {
            "value": ["50/50", "90/10"],
            "TPR_gap_mean": [0.01, 0.3],
            "TPR_gap_low": [-0.05, 0.2],
            "TPR_gap_high": [0.06, 0.4],
        }
    )
    out = sweeps.verdicts(summary, ["TPR_gap"])
    assert out.loc[("50/50", "TPR_gap"), "verdict"].startswith("includes 0")
    assert out.loc[("90/10", "TPR_gap"), "verdict"] == "above 0"


def test_settings_table_lists_overrides_and_full_configuration():
    exp = sweeps.Experiment(
        preset="tiny",
        simulation={"bias_prevalence": (0.7, 0.3)},
        training={"epochs": 3},
    )
    table = exp.settings_table()
    assert list(table.columns) == ["part", "setting", "value", "source"]
    rows = table.set_index(["part", "setting"])
    assert rows.loc[("simulation", "bias_prevalence"), "value"] == "(0.7, 0.3)"
    assert rows.loc[("training", "epochs"), "value"] == "3"
    assert rows.loc[("experiment", "preset"), "value"] == "tiny"
    assert (table["source"] == "set here").all()
    full = exp.settings_table(full=True)
    assert len(full) > len(table)
    sources = full.set_index(["part", "setting"])["source"]
    assert sources[("training", "epochs")] == "set here"
    assert (sources.xs("simulation") == "tiny").any()
