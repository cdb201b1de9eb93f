"""The paper-scale findings script, run end to end at the tiny preset on the CPU."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def load():
    spec = importlib.util.spec_from_file_location("paper_findings", ROOT / "scripts" / "paper_findings.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("paper")
    mp = pytest.MonkeyPatch()
    mp.setenv("FAIMI_CACHE_DIR", str(out / "cache"))
    try:
        code = load().main(["--preset", "tiny", "--dims", "2", "--n-subjects", "160", "--prevalences", "0.5", "0.9",
                            "--seeds", "2", "--n-boot", "100", "--out", str(out)])
    finally:
        mp.undo()
    return code, out


def test_writes_one_row_per_prevalence_and_seed_with_intervals(smoke):
    code, out = smoke
    assert code == 0
    table = pd.read_csv(out / "paper_prevalence.csv")
    assert list(table["bias_prevalence"]) == ["50/50", "50/50", "90/10", "90/10"]
    assert list(table["seed"]) == [0, 1, 0, 1]
    for metric in ("TPR", "FPR"):
        gap, low, high = (table[f"{metric}_gap{s}"].to_numpy() for s in ("", "_low", "_high"))
        finite = np.isfinite(low) & np.isfinite(high)
        assert finite.any()
        assert np.all(low[finite] <= gap[finite] + 1e-9) and np.all(gap[finite] <= high[finite] + 1e-9)
    # every run was fresh, so both stages took measurable time
    assert (table["train_seconds"] > 0).all() and not table["cached"].any()
    assert (table.loc[table["seed"] == 0, "generate_seconds"] > 0).all()


def test_results_json_records_command_machine_and_timings(smoke):
    _, out = smoke
    meta = json.loads((out / "paper_findings.json").read_text())
    assert meta["command"].startswith("python scripts/paper_findings.py --preset tiny")
    assert meta["prevalences"] == [[0.5, 0.5], [0.9, 0.1]]
    assert meta["machine"]["device"] in ("cpu", "cuda", "mps") or meta["machine"]["device"].startswith("cuda")
    assert meta["seconds"]["total"] >= meta["seconds"]["train"] > 0
    assert meta["within_budget"] is None  # the budget is the paper preset's
    assert meta["all_runs_fresh"] is True


def test_second_call_reads_the_cache(smoke, monkeypatch):
    _, out = smoke
    monkeypatch.setenv("FAIMI_CACHE_DIR", str(out / "cache"))
    again = out / "again"
    assert load().main(["--preset", "tiny", "--dims", "2", "--n-subjects", "160", "--prevalences", "0.5", "0.9",
                        "--seeds", "2", "--n-boot", "100", "--out", str(again)]) == 0
    first, second = pd.read_csv(out / "paper_prevalence.csv"), pd.read_csv(again / "paper_prevalence.csv")
    assert second["cached"].all()
    pd.testing.assert_series_equal(first["TPR_gap"], second["TPR_gap"])


@pytest.mark.parametrize("args", [["--prevalences", "0.3"], ["--seeds", "0"], ["--n-subjects", "5"],
                                  ["--preset", "huge"]])
def test_bad_options_are_refused(args, capsys):
    with pytest.raises(SystemExit) as err:
        load().main(args)
    assert err.value.code == 2
    assert "error" in capsys.readouterr().err
