"""The public label of a sweep's setting (chapter 4 derives its labels from it)."""

from __future__ import annotations

import pandas as pd

import faimi_tutorial.experiments.sweeps as sweeps


def test_setting_label_reads_like_the_sweep_tables():
    assert sweeps.setting_label((0.7, 0.3)) == "70/30"
    assert sweeps.setting_label([0.5, 0.5]) == "50/50"
    assert sweeps.setting_label((0.65, 0.35)) == "65/35"
    assert sweeps.setting_label((2, 3)) == "2/3"
    assert sweeps.setting_label("groupdro") == "groupdro"
    assert sweeps.setting_label(1.2) == 1.2
    assert sweeps.setting_label(None) is None
    assert sweeps.setting_label({"a": 1}) == "{'a': 1}"


def test_setting_label_is_the_label_sweep_writes(monkeypatch):
    seen = []

    def fake_run_all(runs, progress=True, **kwargs):
        seen.extend(runs)
        return pd.DataFrame({"seed": [r.seed for r in runs]})

    monkeypatch.setattr(sweeps, "run_all", fake_run_all)
    levels = [(0.5, 0.5), (0.7, 0.3)]
    base = sweeps.Experiment(preset="tiny")
    table = sweeps.sweep(base, "bias_prevalence", levels, seeds=(0, 1))
    assert set(table["value"]) == {sweeps.setting_label(v) for v in levels}
    biased = table[table["value"] == sweeps.setting_label((0.7, 0.3))]
    assert len(biased) == 2
    assert [r.simulation["bias_prevalence"] for r in seen].count((0.7, 0.3)) == 2
