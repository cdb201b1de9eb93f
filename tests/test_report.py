"""Tests of ``faimi report`` (faimi_tutorial.report) and of the command's fast start."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from faimi_tutorial import cli, report
from faimi_tutorial.fairness.metrics import subgroup_report
from faimi_tutorial.report import PredictionsError


@pytest.fixture(scope="module")
def predictions(tmp_path_factory):
    rng = np.random.default_rng(1)
    n = 400
    y = rng.integers(0, 2, n)
    sex = rng.choice(["F", "M"], n)
    site = rng.choice(["A", "B", "C"], n, p=[0.5, 0.3, 0.2])
    s = np.clip(0.35 * y + 0.15 * (sex == "M") + rng.uniform(0, 0.5, n), 0, 1)
    table = pd.DataFrame({"y": y, "p": s, "sex": sex, "site": site})
    path = tmp_path_factory.mktemp("pred") / "pred.csv"
    table.to_csv(path, index=False)
    return path, table


def run(argv, capsys):
    try:
        code = cli.main(argv)
    except SystemExit as stop:
        code = stop.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_report_numbers_are_subgroup_report(predictions):
    path, raw = predictions
    table = report.read_predictions(path, "y", "p", ["sex", "site"])
    rep = report.fairness_report(table, "y", "p", ["sex", "site"], n_boot=200, seed=3)
    direct = subgroup_report(raw["y"], raw["p"], raw["sex"], n_boot=200, seed=3)
    pd.testing.assert_frame_equal(rep.reports["sex"].table, direct.table)
    pd.testing.assert_frame_equal(rep.reports["sex"].ci_low, direct.ci_low)
    # two groups: the contrast is subgroup_report's own, signed group minus reference
    row = rep.contrasts["sex"].set_index("metric").loc["TPR"]
    other, ref = row["group"], row["reference"]
    expected = direct.table.loc[other, "TPR"] - direct.table.loc[ref, "TPR"]
    assert row["difference"] == pytest.approx(expected)
    assert row["low"] <= row["difference"] <= row["high"]
    # three groups: each non-reference group once per contrasted metric
    assert rep.references["site"] == "A"  # the largest group
    assert set(rep.contrasts["site"]["group"]) == {"B", "C"}
    assert len(rep.contrasts["site"]) == 2 * len(report.CONTRASTED)


def test_reference_flips_the_sign(predictions):
    path, _ = predictions
    table = report.read_predictions(path, "y", "p", ["sex"])
    a = report.fairness_report(table, "y", "p", ["sex"], n_boot=100, reference="F")
    b = report.fairness_report(table, "y", "p", ["sex"], n_boot=100, reference="M")
    ta = a.contrasts["sex"].set_index("metric")
    tb = b.contrasts["sex"].set_index("metric")
    assert ta.loc["FPR", "difference"] == pytest.approx(-tb.loc["FPR", "difference"])
    assert ta.loc["FPR", "low"] == pytest.approx(-tb.loc["FPR", "high"])


def test_calibration_table_counts_every_prediction(predictions):
    path, raw = predictions
    table = report.read_predictions(path, "y", "p", ["site"])
    rep = report.fairness_report(table, "y", "p", ["site"], n_boot=0, n_bins=5)
    cal = rep.calibration["site"]
    assert cal["n"].sum() == len(raw)
    assert cal.groupby("group")["n"].sum().to_dict() == raw["site"].value_counts().to_dict()
    assert ((cal["observed"] >= 0) & (cal["observed"] <= 1)).all()


def test_cli_writes_pages_figures_and_json(predictions, tmp_path, capsys):
    path, _ = predictions
    out = tmp_path / "rep"
    code, stdout, err = run(["report", str(path), "--label", "y", "--score", "p",
                             "--group", "sex", "--group", "site", "--n-boot", "100",
                             "--out", str(out)], capsys)
    assert code == 0, err
    assert "sex:" in stdout and "site:" in stdout
    record = json.loads((out / "report.json").read_text())
    assert set(record["group_columns"]) == {"sex", "site"}
    assert record["settings"]["n_boot"] == 100 and len(record["settings"]["source_sha256"]) == 64
    for name in sum(record["figures"].values(), []):
        assert (out / name).read_bytes().startswith(b"\x89PNG")
    md = (out / "report.md").read_text()
    assert "## Groups: `site`" in md and "01_sex_roc.png" in md
    assert "<h2>Groups: <code>sex</code></h2>" in (out / "report.html").read_text()


def test_tsv_and_string_labels(predictions, tmp_path, capsys):
    _, raw = predictions
    tsv = tmp_path / "p.tsv"
    raw.assign(y=raw["y"].map({1: "sick", 0: "well"})).to_csv(tsv, sep="\t", index=False)
    code, _, err = run(["report", str(tsv), "--label", "y", "--score", "p", "--group", "sex",
                        "--positive", "sick", "--n-boot", "0", "--format", "md",
                        "--out", str(tmp_path / "r")], capsys)
    assert code == 0, err
    assert (tmp_path / "r" / "report.md").is_file() and not (tmp_path / "r" / "report.html").exists()


@pytest.mark.parametrize("change, message", [
    (lambda t: t.drop(columns="p"), "no column 'p'"),
    (lambda t: t.assign(y=t["y"].astype(object).where(t.index != 4, "maybe")),
     "column 'y' holds 'maybe' in row 5"),
    (lambda t: t.assign(p=t["p"].where(t.index != 2, np.nan)), "column 'p' .* in row 3"),
    (lambda t: t.assign(p=t["p"].where(t.index != 6, 3.5)), "holds 3.5 in row 7.*sigmoid"),
    (lambda t: t.assign(sex=t["sex"].where(t.index != 9, None)), "column 'sex' is empty in row 10"),
    (lambda t: t.assign(sex="F"), "column 'sex' has one group only"),
])
def test_bad_tables_are_one_line_errors(predictions, tmp_path, capsys, change, message):
    _, raw = predictions
    bad = tmp_path / "bad.csv"
    change(raw.copy()).to_csv(bad, index=False)
    with pytest.raises(PredictionsError, match=message):
        report.read_predictions(bad, "y", "p", ["sex"])
    code, _, err = run(["report", str(bad), "--label", "y", "--score", "p", "--group", "sex",
                        "--out", str(tmp_path / "never")], capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("faimi report: error: ")
    assert not (tmp_path / "never").exists()


def test_bad_options_are_one_line_errors(predictions, tmp_path, capsys):
    path, _ = predictions
    code, _, err = run(["report", str(path), "--label", "y", "--score", "p", "--group", "sex",
                        "--threshold", "2", "--out", str(tmp_path / "x")], capsys)
    assert code == 2 and err.count("\n") == 1 and "threshold" in err


def test_help_and_version_do_not_import_torch():
    code = ("import sys, contextlib, io\n"
            "from faimi_tutorial import cli\n"
            "for argv in (['--version'], ['--help']):\n"
            "    with contextlib.redirect_stdout(io.StringIO()):\n"
            "        try: cli.main(argv)\n"
            "        except SystemExit: pass\n"
            "print(sorted(m for m in ('torch', 'monai', 'pandas', 'matplotlib') "
            "if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == "[]"


def test_every_option_of_every_command_has_help():
    parser = cli.build_parser()
    for name, sub in cli._subparsers(parser).items():
        for action in sub._actions:
            if action.option_strings or action.dest != "help":
                assert action.help, f"faimi {name} {action.option_strings or action.dest}"
    assert {"simulate", "train", "report", "about"} <= set(cli._subparsers(parser))
