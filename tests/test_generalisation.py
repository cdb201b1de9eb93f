"""The generalisation study: sites, training on sites, metrics per site and group."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from faimi_tutorial import federated as fl
from faimi_tutorial import generalisation as gen
from faimi_tutorial.data.simulate import SimulationConfig, generate
from faimi_tutorial.experiments.sweeps import ResultCache


@pytest.fixture(scope="module")
def settings():
    return gen.GeneralisationSettings.for_preset("tiny")


@pytest.fixture(scope="module")
def fed():
    cohort = generate(SimulationConfig.preset("tiny", dims=2, n_subjects=400, seed=1),
                      progress=False)
    specs = gen.study_sites(20, 10) + [
        fl.SiteSpec("all-diseased", 10, 4, prevalence=1.0),
        fl.SiteSpec("no-test", 10, 0),
    ]
    return fl.make_sites(cohort, specs, seed=0, extra_test=6)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return ResultCache(tmp_path_factory.mktemp("gen-cache"))


@pytest.fixture(scope="module")
def run(settings, cache):
    first = gen.run_seed(settings, 0, cache=cache)
    again = gen.run_seed(settings, 0, cache=cache)
    return first, again


def test_study_sites_have_their_scanners():
    specs = gen.study_sites(30, 10)
    assert [s.name for s in specs] == list(gen.SITE_SCANNERS)
    assert [s.scanner.name for s in specs] == list(gen.SITE_SCANNERS.values())
    more = gen.more_data_sites(30, 10, prevalence=0.7, scanner="dark")
    assert more[1].prevalence == 0.7 and more[1].test_prevalence == 0.5
    assert more[1].scanner.name == "dark"


def test_site_training_data_pools_sites_and_can_group_by_site(fed):
    data = gen.site_training_data(fed, ["site-A", "site-B"], group="site")
    assert len(data) == 40 and set(data.bias_group.tolist()) == {0, 1}
    assert (data.bias_group == 0).sum() == 20
    by_bias = gen.site_training_data(fed, ["site-A"])
    assert np.array_equal(by_bias.bias_group, fed.train_site("site-A").bias_group)


def test_harmonised_training_data_differs_from_raw(fed):
    raw = gen.site_training_data(fed, ["site-B"])
    z = gen.site_training_data(fed, ["site-B"], method="zscore")
    assert raw.images.shape == z.images.shape and not np.allclose(raw.images, z.images)


@pytest.mark.parametrize("call, message", [
    (lambda f: gen.site_training_data(f, ["site-Z"]), "site='site-Z' is invalid"),
    (lambda f: gen.site_training_data(f, []), "sites=\\[\\] is invalid"),
    (lambda f: gen.site_training_data(f, ["shared-test"]), "has no train subjects"),
    (lambda f: gen.site_test_data(f, "no-test"), "has no test subjects"),
    (lambda f: gen.site_training_data(f, ["all-diseased"]), "one class only"),
    (lambda f: gen.site_test_data(f, "all-diseased"), "one class only"),
    (lambda f: gen.site_training_data(f, ["site-A"], group="scanner"),
     "group='scanner'"),
])
def test_bad_sites_fail_with_one_line(fed, call, message):
    with pytest.raises(ValueError, match=message) as err:
        call(fed)
    assert "\n" not in str(err.value)


def test_group_metrics_rows_and_values():
    y = np.array([0, 0, 1, 1, 0, 1, 0, 1])
    s = np.array([0.1, 0.6, 0.8, 0.4, 0.2, 0.9, 0.3, 0.7])
    g = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    table = gen.group_metrics(y, s, g).set_index("group")
    assert list(table.index) == ["all", "0", "1"] and set(table["test"]) == {"test"}
    assert table.loc["1", "AUROC"] == 1.0 and table.loc["1", "TPR"] == 1.0
    assert table.loc["0", "TPR"] == 0.5 and table.loc["0", "FPR"] == 0.5
    assert table.loc["all", "n"] == 8
    # two test sets at once: each reported on its own, in order of appearance
    both = gen.group_metrics(np.r_[y, y], np.r_[s, 1 - s], np.r_[g, g],
                             ["b"] * 8 + ["a"] * 8)
    assert list(both["test"]) == ["b"] * 3 + ["a"] * 3
    first = both.iloc[:3].reset_index(drop=True)
    pd.testing.assert_frame_equal(first.drop(columns="test"),
                                  table.reset_index()[first.columns.drop("test")])
    a_all = both[(both["test"] == "a") & (both["group"] == "all")]
    assert a_all["AUROC"].item() == pytest.approx(1 - table.loc["all", "AUROC"])


@pytest.mark.parametrize("args, message", [
    (([], [], []), "empty"),
    (([1, 1], [0.2, 0.8], [0, 1]), "one class only"),
    (([0, 1], [0.2, 0.8], [0, 0]), "one bias group only"),
    (([0, 1], [0.2], [0, 1]), "equal lengths"),
])
def test_group_metrics_bad_inputs(args, message):
    with pytest.raises(ValueError, match=message) as err:
        gen.group_metrics(*args)
    assert "\n" not in str(err.value)


def test_per_seed_puts_groups_side_by_side(run):
    m = run[0]["metrics"]
    wide = gen.per_seed(m, "shifted bias")
    assert list(wide["test"]) == ["same", "none", "reversed"]
    row = m[(m["experiment"] == "shifted bias") & (m["test"] == "none")]
    assert wide.loc[1, "TPR_g1"] == row.loc[row["group"] == "1", "TPR"].item()
    assert wide.loc[1, "AUROC"] == row.loc[row["group"] == "all", "AUROC"].item()
    assert wide.loc[1, "setting"] == "none | none"
    with pytest.raises(ValueError, match="experiment='x' is invalid"):
        gen.per_seed(m, "x")


@pytest.mark.parametrize("kwargs, field", [
    ({"n_train": 5}, "n_train"), ({"zoom": 3.0}, "zoom"),
    ({"shape": (8, 8, 8)}, "shape"),
    ({"more_data_prevalence": 1.0}, "more_data_prevalence"),
    ({"more_data_scanner": "xray"}, "more_data_scanner"),
    ({"bias_kind": "x"}, "bias_kind"),
    ({"training": {"epoch": 3}}, "epoch"),
])
def test_settings_validate(kwargs, field):
    with pytest.raises(ValueError, match=field):
        gen.GeneralisationSettings.for_preset("tiny", **kwargs)


def test_run_seed_reports_every_experiment_per_group_and_is_cached(run):
    first, again = run
    assert not first["cached"] and again["cached"]
    pd.testing.assert_frame_equal(first["metrics"], again["metrics"])
    m = first["metrics"]
    assert set(m["experiment"]) == {"harmonisation", "leave one site out",
                                    "shifted bias", "more data"}
    assert set(m["group"]) == {"all", "0", "1"}
    harm = m[m["experiment"] == "harmonisation"]
    assert set(harm["model"]) == {"none", "zscore", "histogram"}
    assert "site-C on the dark scanner" in set(harm["test"])
    loso = m[m["experiment"] == "leave one site out"]
    assert len(loso[loso["test"].str.endswith("(held out)")]) == 3 * 3
    assert set(m.loc[m["experiment"] == "shifted bias", "test"]) == {"same", "none",
                                                                      "reversed"}
    rates = m[["AUROC", "TPR", "FPR", "ECE"]].to_numpy()
    assert np.all((rates >= 0) & (rates <= 1) | np.isnan(rates))


def test_scanner_swap_table_has_every_more_data_model(run):
    swaps = run[0]["swaps"]
    assert set(swaps["model"]) == {"site-A only", "site-A + site-E",
                                   "site-A + site-E, balanced site x label"}
    assert set(swaps["cell"]) == {"overall", "control", "disease"}
    assert ((swaps["flip_rate"] >= 0) & (swaps["flip_rate"] <= 1)).all()


def test_twins_flip_only_in_the_bias_group(run):
    flips = run[0]["flips"]
    no_bias = flips[flips["cell"].str.endswith("no bias")]
    assert (no_bias["flip_rate"] == 0).all() and (no_bias["mean_abs_change"] == 0).all()


def test_collect_concatenates_seeds_and_counts_cached_runs_as_free(settings, run,
                                                                   cache):
    out = gen.collect(settings, [0], cache=cache)  # seed 0 is in the cache already
    assert set(out["metrics"]["seed"]) == {0} and out["seconds"] == 0.0
    assert len(out["metrics"]) == len(run[0]["metrics"])
    assert set(out["scores"]) == set(gen.CALIBRATION_TESTS)
    with pytest.raises(ValueError, match="seeds"):
        gen.collect(settings, [], cache=cache)
    with pytest.raises(ValueError, match="seed=-1 is invalid"):
        gen.run_seed(settings, -1, cache=cache)


def test_run_seed_is_a_runner_step_whose_key_holds_the_source(settings, run, cache,
                                                                monkeypatch):
    from faimi_tutorial.experiments import runner

    assert runner.stored(gen.seed_record, settings, 0, cache=cache)
    assert not runner.stored(gen.seed_record, settings, 1, cache=cache)
    monkeypatch.setattr(runner, "source_digest", lambda: "edited-package")
    assert not runner.stored(gen.seed_record, settings, 0, cache=cache)
    assert not list(cache.directory.glob("*.json")), "no second kind of cache entry"


def test_make_study_and_test_sets(settings):
    study = gen.make_study(settings, 0)
    assert study.site_names == list(gen.SITE_SCANNERS)
    assert study.summary()["n_train"].tolist() == [settings.n_train] * 3
    sets = gen.test_sets(study, settings, 0)
    held = sets[gen.HELD_OUT]
    for name, cohort in sets.items():
        assert len(cohort) == settings.n_test, name
    for name in gen.UNSEEN_SCANNERS:
        assert f"site-C on the {name} scanner" in sets
    same = sets["site-C on the reference scanner"]
    assert same.meta["subject_id"].tolist() == held.meta["subject_id"].tolist()
    assert not np.allclose(same.images, held.images)


def test_contrasts_are_paired_differences(run):
    wide = gen.per_seed(run[0]["metrics"], "shifted bias")
    out = gen.contrasts(wide, {"reversed - same": ("none | same", "none | reversed")},
                        ["AUROC", "FPR_g1"])
    diff = (wide.loc[wide["test"] == "reversed", "FPR_g1"].item()
            - wide.loc[wide["test"] == "same", "FPR_g1"].item())
    assert out.loc[("reversed - same", "FPR_g1"), "mean"] == pytest.approx(diff)
    with pytest.raises(ValueError, match=re.escape("setting='none | x' is invalid")):
        gen.contrasts(wide, {"bad": ("none | same", "none | x")})
    with pytest.raises(ValueError, match="pairs"):
        gen.contrasts(wide, {})


def test_findings_script_uses_the_chapters_settings():
    import importlib.util
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location(
        "generalisation_findings", root / "scripts" / "generalisation_findings.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    nb = json.loads((root / "notebooks" / "09_generalisation.ipynb").read_text())
    code = "\n".join("".join(c["source"]) for c in nb["cells"]
                     if c["cell_type"] == "code")
    assert f'GeneralisationSettings.for_preset("{script.PRESET}")' in code
    with pytest.raises(SystemExit):
        script.main(["--seeds", "0"])


def test_findings_script_reads_the_chapters_runs_from_the_runner(run, cache, tmp_path,
                                                                 monkeypatch):
    import importlib.util
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location(
        "generalisation_findings", root / "scripts" / "generalisation_findings.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setattr(script, "PRESET", "tiny")  # seed 0 of "tiny" is stored
    monkeypatch.setenv("FAIMI_CACHE_DIR", str(cache.directory))
    assert script.main(["--seeds", "1", "--out", str(tmp_path)]) == 0
    meta = json.loads((tmp_path / "generalisation_findings.json").read_text())
    assert meta["cached_seeds"] == [0]
    written = pd.read_csv(tmp_path / "generalisation_runs.csv")
    expected = run[0]["metrics"]
    assert len(written) == len(expected)
    np.testing.assert_allclose(written["AUROC"], expected["AUROC"])


def test_recorded_results_have_five_seeds_per_setting():
    from faimi_tutorial import results

    if "generalisation_runs.csv" not in results.available():
        pytest.skip("results/generalisation_runs.csv is not recorded")
    table = results.load("generalisation_runs")
    counts = table.groupby(["experiment", "model", "test", "group"])["seed"].nunique()
    assert (counts >= 5).all(), counts
    rates = table[["AUROC", "TPR", "FPR", "ECE"]].to_numpy().ravel()
    rates = rates[~np.isnan(rates)]
    assert len(rates) and ((rates >= 0) & (rates <= 1)).all()


def test_group_differences_are_bias_group_minus_the_other(run):
    m = run[0]["metrics"]
    out = gen.group_differences(m, "shifted bias", ["FPR"])
    rows = m[(m["experiment"] == "shifted bias") & (m["test"] == "same")]
    diff = (rows.loc[rows["group"] == "1", "FPR"].item()
            - rows.loc[rows["group"] == "0", "FPR"].item())
    assert out.loc[("none", "same", "FPR"), "mean"] == pytest.approx(diff)
    with pytest.raises(ValueError, match="experiment='x' is invalid"):
        gen.group_differences(m, "x")
