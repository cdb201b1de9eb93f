"""Bad inputs against the command line, the dataset reader and writer, the metrics and the
experiment cache: each ends in one clear error (or a correct result), never in silently
lost or wrong data.

Each class of bad input is one test; families of inputs are property-based (hypothesis).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import types
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faimi_tutorial import anatomy, cli, datasets, metrics, simulate, sweeps, training, validation
from faimi_tutorial.data.datasets import DatasetError

REPO = Path(__file__).resolve().parents[1]
TINY = ["simulate", "--preset", "tiny", "--n-subjects", "8", "--quiet"]
#: Every float field of SimulationConfig that the command line and JSON accept as one number.
FLOAT_FIELDS = ("spacing", "disease_fraction", "disease_scale_mm", "bias_mean", "bias_sd",
                "bias_scale_mm", "intensity_factor", "basis_scale_mm", "basis_decay", "support",
                "noise_sd", "integration_spacing_mm")
PAIR_FIELDS = ("bias_prevalence", "disease_mean", "disease_sd")


def run(argv, capsys):
    try:
        code = cli.main(argv)
    except SystemExit as stop:  # argparse exits on parse errors
        code = stop.code
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line(code: int, err: str, *needles: str) -> str:
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def cohort():
    return simulate.generate(simulate.SimulationConfig.preset("tiny", n_subjects=8, seed=3),
                             progress=False)


@pytest.fixture(scope="module")
def written(cohort, tmp_path_factory):
    return datasets.write_cohort(cohort, tmp_path_factory.mktemp("ds") / "cohort")


def copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# ------------------------------------------------------------------ simulate: --config files

BAD_CONFIGS = {
    "list.json": b"[1, 2]",
    "scalar.json": b"3",
    "null.json": b"null",
    "unknown.json": b'{"colour": "red"}',
    "wrong_type.json": b'{"n_subjects": "ten"}',
    "bool_int.json": b'{"n_subjects": true}',
    "missing_centre.json": b'{"disease_region": {"name": "x", "radius_mm": 8}}',
    "region_type.json": b'{"disease_region": 5}',
    "non_utf8.json": b'{"seed": 1, "note": "\xff\xfe"}',
    "scalar_prevalence.json": b'{"bias_prevalence": 0.5}',
    "string_prevalence.json": b'{"bias_prevalence": "01"}',
    "nan_float.json": b'{"noise_sd": NaN}',
    "nan_centre.json": b'{"bias_region": {"name": "b", "centre_mm": [NaN, 0, 0], "radius_mm": 8}}',
    "inf_radius.json": b'{"bias_region": {"name": "b", "centre_mm": [0, 0, 0], "radius_mm": Infinity}}',
    "faimi_list.json": b'{"faimi": [1]}',
    "faimi_config_str.json": b'{"faimi": {"config": "tiny"}}',
    "broken.json": b'{"seed": ',
    "empty.json": b"",
    "float_shape.json": b'{"shape": [24.5, 28, 24]}',
}


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_bad_config_file_is_one_line_and_writes_nothing(name, tmp_path, capsys):
    path = tmp_path / name
    path.write_bytes(BAD_CONFIGS[name])
    out = tmp_path / "never"
    code, _, err = run(["simulate", "--config", str(path), "--out", str(out), "--quiet"], capsys)
    one_line(code, err, "--config", name)
    assert not out.exists()


def test_config_file_that_is_missing_or_a_folder(tmp_path, capsys):
    for target in (tmp_path / "absent.json", tmp_path):
        code, _, err = run(["simulate", "--config", str(target), "--out", str(tmp_path / "o")],
                           capsys)
        one_line(code, err, "--config")
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------ simulate: non-finite floats

NON_FINITE = st.sampled_from(["nan", "NaN", "inf", "-inf", "Infinity", "1e999", "-1e999"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(FLOAT_FIELDS + PAIR_FIELDS + ("slice_z",)), text=NON_FINITE)
def test_non_finite_option_is_one_line(field, text, tmp_path_factory, capsys):
    out = tmp_path_factory.mktemp("nf") / "never"
    option = "--" + field.replace("_", "-")
    values = [text, "0.5"] if field in PAIR_FIELDS else [text]
    extra = ["--dims", "2"] if field == "slice_z" else []
    code, _, err = run([*TINY, *extra, option, *values, "--out", str(out)], capsys)
    one_line(code, err, option)
    assert not out.exists()


@settings(max_examples=40, deadline=None)
@given(field=st.sampled_from(FLOAT_FIELDS),
       value=st.sampled_from([math.nan, math.inf, -math.inf, float("nan")]))
def test_non_finite_field_via_api_and_json_names_the_field(field, value):
    with pytest.raises(simulate.ConfigError) as err:
        simulate.SimulationConfig.preset("tiny", **{field: value})
    assert err.value.field == field
    data = simulate.SimulationConfig.preset("tiny").to_dict()
    data[field] = value
    with pytest.raises(simulate.ConfigError, match=field):
        simulate.SimulationConfig.from_dict(json.loads(json.dumps(data)))


@settings(max_examples=30, deadline=None)
@given(axis=st.integers(0, 3), value=st.sampled_from([math.nan, math.inf, -math.inf]),
       how=st.sampled_from(["text", "dict", "region"]))
def test_non_finite_region_is_refused(axis, value, how):
    numbers = [24.0, 4.0, 0.0, 8.0]
    numbers[axis] = value
    if how == "text":
        region = ",".join(str(v) for v in numbers)
    elif how == "dict":
        region = {"name": "r", "centre_mm": numbers[:3], "radius_mm": numbers[3]}
    else:
        with pytest.raises(ValueError, match="finite"):
            anatomy.Region("r", tuple(numbers[:3]), numbers[3])
        return
    with pytest.raises(ValueError, match="bias_region"):
        simulate.SimulationConfig.preset("tiny", bias_region=region)


def test_silent_coercions_are_errors(capsys, tmp_path):
    with pytest.raises(simulate.ConfigError, match="bias_prevalence"):
        simulate.SimulationConfig.preset("tiny", bias_prevalence="01")
    with pytest.raises(simulate.ConfigError, match="shape"):
        simulate.SimulationConfig.preset("tiny", shape=(24.5, 28, 24))
    code, _, err = run([*TINY, "--shape", "24.5", "28", "24", "--out", str(tmp_path / "o")], capsys)
    one_line(code, err, "--shape", "24.5")
    assert simulate.SimulationConfig.preset("tiny", shape=(24.0, 28, 24)).shape == (24, 28, 24)
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------ simulate: devices, env, paths


def test_bad_devices_and_environment_are_one_line(tmp_path, capsys, monkeypatch):
    out = tmp_path / "never"
    bad = ["bogus", "cuda:99", "gpu", "mps"] if not torch.cuda.is_available() else ["bogus", "cuda:99"]
    if not torch.cuda.is_available():
        bad.append("cuda")
    for device in bad:
        if device == "mps" and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            continue
        code, _, err = run([*TINY, "--device", device, "--out", str(out)], capsys)
        one_line(code, err, "--device", device)
    monkeypatch.setenv("FAIMI_DEVICE", "bogus")
    code, _, err = run([*TINY, "--out", str(out)], capsys)
    one_line(code, err, "FAIMI_DEVICE", "bogus")
    monkeypatch.delenv("FAIMI_DEVICE")
    monkeypatch.setenv("FAIMI_PRESET", "bogus")
    for argv in (["simulate", "--out", str(out)], ["about"]):
        code, _, err = run(argv, capsys)
        one_line(code, err, "FAIMI_PRESET", "bogus")
    assert not out.exists()


def test_bad_output_paths_are_one_line(tmp_path, capsys, monkeypatch):
    afile = tmp_path / "afile"
    afile.write_text("keep")
    monkeypatch.chdir(tmp_path)
    for out in (str(afile), str(afile / "inside"), ".", "./", "..", "/", ""):
        code, _, err = run([*TINY, "--out", out], capsys)
        one_line(code, err, "--out")
    assert afile.read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_memory_estimate_refuses_before_work(tmp_path, capsys, monkeypatch):
    out = tmp_path / "never"
    code, _, err = run([*TINY, "--n-subjects", "1000000", "--shape", "512", "512", "512",
                        "--out", str(out)], capsys)
    line = one_line(code, err, "needs about", "memory")
    assert "TB" in line
    monkeypatch.setenv("FAIMI_MEMORY_BYTES", "1000")
    cfg = simulate.SimulationConfig.preset("tiny", n_subjects=8)
    with pytest.raises(ValueError, match="needs about"):
        simulate.generate(cfg, progress=False)
    assert simulate.memory_estimate(cfg) > cfg.n_subjects * np.prod(cfg.shape) * 8
    assert not out.exists()


# ------------------------------------------------------------------ simulate: one folder, two writers


def test_two_simulate_processes_on_one_folder(tmp_path):
    out = tmp_path / "shared"
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    env.pop("FAIMI_DEVICE", None)
    args = [sys.executable, "-m", "faimi_tutorial.cli", *TINY, "--seed", "{}", "--out", str(out)]
    procs = [subprocess.Popen([a.format(seed) for a in args], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for seed in (1, 2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results  # never both "succeed"
    loser = next(err for code, err in results if code == 2)
    one_line(2, loser, "--out")
    back = datasets.read_dataset(out)  # the winner's dataset, complete and verified
    assert back.config.seed in (1, 2) and len(back) == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared"]  # no lock, no leftovers


def test_a_held_lock_stops_a_second_writer(cohort, tmp_path, capsys):
    out = tmp_path / "busy"
    with datasets.DatasetLock(out):
        with pytest.raises(FileExistsError, match="another process"):
            datasets.write_cohort(cohort, out)
        code, _, err = run([*TINY, "--out", str(out)], capsys)
        one_line(code, err, "--out", "another process")
        with pytest.raises(FileExistsError):
            datasets.DatasetLock(out).acquire()
    assert not out.exists()
    datasets.write_cohort(cohort, out)  # released: the next writer goes ahead
    assert (out / datasets.CHECKSUMS).is_file()


def test_overwrite_never_leaves_the_name_missing(cohort, written, tmp_path, monkeypatch):
    target = copy(written, tmp_path / "target")
    before = {p.name for p in target.iterdir()}
    # the two-rename path (no atomic exchange), stopped between the renames
    monkeypatch.setattr(datasets, "_exchange", lambda a, b: False)
    real = Path.rename

    def stop_second(self, dst):
        if ".partial-" in self.name:
            raise KeyboardInterrupt("stopped between the renames")
        return real(self, dst)

    monkeypatch.setattr(Path, "rename", stop_second)
    with pytest.raises(KeyboardInterrupt):
        datasets.write_cohort(cohort.subset([0, 1]), target, overwrite=True)
    monkeypatch.setattr(Path, "rename", real)
    assert {p.name for p in target.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"]
    datasets.write_cohort(cohort.subset([0, 1]), target, overwrite=True)
    assert len(datasets.read_dataset(target)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"]


def test_leftovers_of_a_killed_writer_are_repaired(written, tmp_path, cohort, capsys):
    # a writer killed between its two renames: NAME missing, .NAME.old-* and .NAME.partial-*
    copy(written, tmp_path / ".ds.old-1234abcd")
    copy(written, tmp_path / ".ds.partial-5678abcd")
    code, _, err = run([*TINY, "--out", str(tmp_path / "ds")], capsys)
    assert code == 2 and "restored" in err and "--overwrite" in err.strip().splitlines()[-1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    assert len(datasets.read_dataset(tmp_path / "ds")) == len(cohort)
    # leftovers beside a complete dataset are removed
    copy(written, tmp_path / ".ds.old-0000")
    (tmp_path / ".ds.partial-1111").mkdir()
    actions = datasets.recover_leftovers(tmp_path / "ds")
    assert len(actions) == 2 and sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


# ------------------------------------------------------------------ faimi train


def test_train_arguments_are_checked_before_work(tmp_path, capsys, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("trained or read data despite a bad argument")

    monkeypatch.setattr(training.loop, "fit", never)
    monkeypatch.setattr(training.loop, "_load_folder", never)
    cases = [(["--checkpoint", str(tmp_path)], "--checkpoint"),
             (["--checkpoint", str(tmp_path / "f.pt" / "x.pt")], None),
             (["--seed", "-1"], "--seed"), (["--seed", "x"], "--seed"),
             (["--device", "bogus"], "--device"), (["--epochs", "2.5"], "--epochs")]
    (tmp_path / "f.pt").write_text("a file")
    for extra, needle in cases:
        code, _, err = run(["train", str(tmp_path), *extra], capsys)
        one_line(code, err, *(["--checkpoint"] if needle is None else [needle]))
    assert (tmp_path / "f.pt").read_text() == "a file"


def test_fit_checks_the_checkpoint_path_first(tmp_path):
    data = training.toy_data(n=16, size=8)
    with pytest.raises(ValueError, match="checkpoint.*folder"):
        training.fit(data, "tiny", checkpoint=tmp_path, progress=False)
    with pytest.raises(ValueError, match="seed"):
        training.fit(data, "tiny", seed=-1, progress=False)


# ------------------------------------------------------------------ read_dataset: tables and blocks


def test_header_only_table_and_wrong_typed_blocks(written, tmp_path):
    broken = copy(written, tmp_path / "a")
    tsv = broken / "participants.tsv"
    tsv.write_text(tsv.read_text().splitlines()[0] + "\n")
    with pytest.raises(DatasetError, match="participants.tsv.*no subjects"):
        datasets.read_dataset(broken)
    for i, faimi in enumerate([[1], "x", 3, {"config": [1]}, {"config": "tiny"},
                               {"n_subjects": "8"}, {"checksums": "MD5"}]):
        other = copy(written, tmp_path / f"b{i}")
        desc = json.loads((other / "dataset_description.json").read_text())
        desc["faimi"] = faimi
        (other / "dataset_description.json").write_text(json.dumps(desc))
        with pytest.raises(DatasetError, match="dataset_description.json"):
            datasets.read_dataset(other)


UNSAFE = ["/", "..", ".", "../..", "/etc", "a/b", "..\\x", "sub-01/../..", " sub", "C:x"]


@pytest.mark.parametrize("value", UNSAFE)
def test_participant_ids_never_leave_the_folder(written, tmp_path, value):
    broken = copy(written, tmp_path / "p")
    (broken / "dataset_description.json").unlink()
    (broken / datasets.CHECKSUMS).unlink()
    table = pd.read_csv(broken / "participants.tsv", sep="\t", dtype={"participant_id": str})
    table = table.drop(columns=["image", "twin"])
    table.loc[0, "participant_id"] = value
    table.to_csv(broken / "participants.tsv", sep="\t", index=False)
    with pytest.raises(DatasetError, match="participant_id"):
        datasets.read_dataset(broken)


@pytest.mark.parametrize("value", ["/", "/etc/hostname", "../outside.nii.gz", "..",
                                   "sub-0001/../../x.nii.gz", "/dev/zero"])
def test_image_paths_never_leave_the_folder(written, tmp_path, value):
    broken = copy(written, tmp_path / "i")
    (tmp_path / "outside.nii.gz").write_bytes((broken / datasets.image_path("sub-0001")).read_bytes())
    (broken / "dataset_description.json").unlink()
    (broken / datasets.CHECKSUMS).unlink()
    table = pd.read_csv(broken / "participants.tsv", sep="\t")
    table.loc[0, "image"] = value
    table.to_csv(broken / "participants.tsv", sep="\t", index=False)
    with pytest.raises(DatasetError, match="image.*(outside|inside)"):
        datasets.read_dataset(broken)


def test_symlinked_subject_folder_is_not_followed_out(written, tmp_path):
    broken = copy(written, tmp_path / "s")
    for name in ("dataset_description.json", datasets.CHECKSUMS):
        (broken / name).unlink()
    table = pd.read_csv(broken / "participants.tsv", sep="\t").drop(columns=["image", "twin"])
    table.to_csv(broken / "participants.tsv", sep="\t", index=False)
    elsewhere = tmp_path / "elsewhere"
    shutil.move(str(broken / "sub-0001"), str(elsewhere))
    (broken / "sub-0001").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(DatasetError, match="sub-0001"):
        datasets.read_dataset(broken, twins=False)


# ------------------------------------------------------------------ read_dataset: corrupt images


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_bit_flip_is_caught(written, tmp_path_factory, data):
    rel = datasets.image_path("sub-0002")
    raw = (written / rel).read_bytes()
    position = data.draw(st.integers(0, len(raw) - 1), label="byte")
    bit = data.draw(st.integers(0, 7), label="bit")
    flipped = bytearray(raw)
    flipped[position] ^= 1 << bit
    root = copy(written, tmp_path_factory.mktemp("flip") / "ds")
    (root / rel).write_bytes(bytes(flipped))
    with pytest.raises(DatasetError, match="sub-0002_T1w.nii.gz"):
        datasets.read_dataset(root)
    # without checksums (a user's folder), gzip's CRC still catches every flip of the data
    (root / "dataset_description.json").unlink()
    (root / datasets.CHECKSUMS).unlink()
    try:
        back = datasets.read_dataset(root, twins=False, rescale=False)
    except DatasetError as err:
        assert "sub-0002_T1w.nii.gz" in str(err)
    else:  # a flip in gzip's own header fields (time stamp, flags): the voxels are intact
        clean = nib.Nifti1Image.from_bytes(gzip.decompress(raw)).get_fdata(dtype=np.float32)
        assert np.array_equal(back.images[1, 0].numpy(), clean)


@pytest.mark.parametrize("cut", [1, 4, 8, 100])
def test_truncated_gzip_is_an_error(written, tmp_path, cut):
    root = copy(written, tmp_path / "t")
    for name in ("dataset_description.json", datasets.CHECKSUMS):
        (root / name).unlink()
    path = root / datasets.image_path("sub-0003")
    path.write_bytes(path.read_bytes()[:-cut])
    with pytest.raises(DatasetError, match="sub-0003_T1w.nii.gz.*(truncated|corrupt|cut)"):
        datasets.read_dataset(root)


def test_checksum_file_is_required_and_checked(written, tmp_path):
    root = copy(written, tmp_path / "c")
    lines = (root / datasets.CHECKSUMS).read_text().splitlines()
    assert len(lines) == 2 * 8 + 8  # every image, twin, table, description and README
    (root / datasets.CHECKSUMS).unlink()
    with pytest.raises(DatasetError, match=datasets.CHECKSUMS):
        datasets.read_dataset(root)
    kept = [line for line in lines if not line.endswith(datasets.image_path("sub-0001"))]
    assert len(kept) == len(lines) - 1
    (root / datasets.CHECKSUMS).write_text("\n".join(kept) + "\n")
    with pytest.raises(DatasetError, match="not listed"):
        datasets.read_dataset(root)
    (root / datasets.CHECKSUMS).write_text("garbage\n")
    with pytest.raises(DatasetError, match="line 1"):
        datasets.read_dataset(root)
    other = copy(written, tmp_path / "d")
    (other / "participants.json").write_text("{}")  # not read, so not checked
    (other / "README.md").write_text("edited")
    datasets.read_dataset(other, lazy=True)
    with (other / "participants.tsv").open("a") as fh:
        fh.write("\n")
    with pytest.raises(DatasetError, match="participants.tsv.*SHA-256"):
        datasets.read_dataset(other)


def _nifti_gz(shape, data_shape, dtype=np.float32) -> bytes:
    img = nib.Nifti1Image(np.zeros(data_shape, dtype), np.eye(4))
    raw = bytearray(img.to_bytes())
    header = nib.Nifti1Header.from_fileobj(__import__("io").BytesIO(bytes(raw)))
    header.set_data_shape(shape)
    raw[:348] = header.binaryblock
    return gzip.compress(bytes(raw))


def test_header_size_is_checked_before_decoding(tmp_path, monkeypatch):
    root = tmp_path / "u"
    rows = []
    for i in range(4):
        sid = f"sub-{i}"
        (root / sid).mkdir(parents=True)
        (root / sid / f"{sid}_T1w.nii.gz").write_bytes(_nifti_gz((6, 6, 6), (6, 6, 6)))
        rows.append({"participant_id": sid, "label": i % 2})
    pd.DataFrame(rows).to_csv(root / "participants.tsv", sep="\t", index=False)
    assert len(datasets.read_dataset(root)) == 4
    bomb = root / "sub-0" / "sub-0_T1w.nii.gz"
    bomb.write_bytes(_nifti_gz((1024, 1024, 256), (6, 6, 6)))
    assert bomb.stat().st_size < 10_000
    with pytest.raises(DatasetError, match="sub-0_T1w.nii.gz.*declares.*cannot hold"):
        datasets.read_dataset(root)
    bomb.write_bytes(_nifti_gz((6, 6, 7), (6, 6, 6)))  # shorter than declared
    with pytest.raises(DatasetError, match="sub-0_T1w.nii.gz.*truncated"):
        datasets.read_dataset(root)
    bomb.write_bytes(_nifti_gz((6, 6, 6), (6, 6, 6)))
    later = root / "sub-2" / "sub-2_T1w.nii.gz"
    later.write_bytes(_nifti_gz((60, 60, 60), (6, 6, 6)))  # differs from the first image
    with pytest.raises(DatasetError, match="sub-2_T1w.nii.gz.*shape.*nothing decoded"):
        datasets.read_dataset(root)
    later.write_bytes(_nifti_gz((6, 6, 6), (6, 6, 6)))
    monkeypatch.setenv("FAIMI_MEMORY_BYTES", "1000")
    with pytest.raises(DatasetError, match="memory"):
        datasets.read_dataset(root)


def test_reading_more_than_memory_is_refused(written, monkeypatch):
    monkeypatch.setenv("FAIMI_MEMORY_BYTES", str(200_000))
    with pytest.raises(ValueError, match="needs about .* lazy=True"):
        datasets.read_dataset(written)
    assert len(datasets.read_dataset(written, lazy=True)) == 8


def test_nan_never_reaches_a_dataset_description(cohort, tmp_path):
    bad = types.SimpleNamespace(**{k: getattr(cohort, k) for k in ("images", "twins", "meta")})
    cfg = simulate.SimulationConfig.preset("tiny", n_subjects=8, seed=3)
    object.__setattr__(cfg, "bias_mean", math.nan)  # bypassing validation on purpose
    fake = simulate.Cohort(images=bad.images, twins=bad.twins, meta=bad.meta, config=cfg)
    with pytest.raises(ValueError, match="NaN"):
        datasets.write_cohort(fake, tmp_path / "nan")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ metrics


LABELS = st.one_of(
    st.just(["overall", "a"]),
    st.lists(st.booleans(), min_size=2, max_size=2, unique=True),
    st.lists(st.integers(-5, 5), min_size=2, max_size=4, unique=True),
    st.lists(st.text(alphabet="abcxyz overall", min_size=1, max_size=8), min_size=2, max_size=4,
             unique=True),
)


@settings(max_examples=25, deadline=None)
@given(labels=LABELS, seed=st.integers(0, 10_000))
def test_any_one_kind_of_group_label_works(labels, seed):
    rng = np.random.default_rng(seed)
    n = 12 * len(labels)
    groups = [labels[i % len(labels)] for i in range(n)]
    y = np.tile([0, 1], n // 2)
    s = rng.uniform(size=n)
    if "overall" in labels:  # the overall row's name: refused, never overwritten
        with pytest.raises(ValueError, match="groups.*overall"):
            metrics.subgroup_report(y, s, groups, n_boot=0)
        with pytest.raises(ValueError, match="groups.*overall"):
            metrics.counterfactual_flip_rate(s, s[::-1], groups=groups)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = metrics.subgroup_report(y, s, groups, n_boot=20)
    assert sorted(rep.groups, key=str) == sorted(labels, key=str)
    assert list(rep.table.index)[-1] == "overall" and rep.table["n"].iloc[-1] == n
    assert rep.table["n"].iloc[:-1].sum() == n
    assert len(rep.summary()) == len(labels) + 1
    flips = metrics.counterfactual_flip_rate(s, s[::-1], groups=groups)
    assert flips["n"].iloc[0] == n and list(flips.index)[0] == "overall"
    assert sorted(flips.index[1:], key=str) == sorted(labels, key=str)


@pytest.mark.parametrize("groups", [[0, "a"] * 10, [True, 1] * 10, [1.5, "x"] * 10,
                                    [False, "no"] * 10])
def test_mixed_group_labels_name_groups(groups):
    y, s = np.tile([0, 1], 10), np.linspace(0, 1, 20)
    with pytest.raises(ValueError, match="groups mixes"):
        metrics.subgroup_report(y, s, groups, n_boot=0)
    with pytest.raises(ValueError, match="groups mixes"):
        metrics.counterfactual_flip_rate(s, s, groups=groups)


@pytest.mark.parametrize("kwargs, name", [
    ({"threshold": None}, "threshold"), ({"threshold": math.nan}, "threshold"),
    ({"threshold": "0.5"}, "threshold"), ({"threshold": True}, "threshold"),
    ({"n_bins": 2.5}, "n_bins"), ({"n_bins": 0}, "n_bins"), ({"n_bins": True}, "n_bins"),
    ({"seed": -1}, "seed"), ({"seed": 1.5}, "seed"), ({"confidence": "high"}, "confidence"),
    ({"n_boot": -3}, "n_boot"),
])
def test_bad_metric_options_name_the_option(kwargs, name):
    y, s, g = np.tile([0, 1], 10), np.linspace(0, 1, 20), np.repeat([0, 1], 10)
    with pytest.raises(ValueError, match=name):
        metrics.subgroup_report(y, s, g, **kwargs)
    if "threshold" in kwargs:
        with pytest.raises(ValueError, match="threshold"):
            metrics.counterfactual_flip_rate(s, s, **kwargs)
    if "n_bins" in kwargs:
        with pytest.raises(ValueError, match="n_bins"):
            metrics.expected_calibration_error(y, s, **kwargs)


# ------------------------------------------------------------------ the experiment cache


def _maker(prevalence):
    def factory(preset, overrides, seed):
        kw = dict(n=80, size=8, bias_prevalence=prevalence, seed=seed)
        data = training.toy_data(**kw)
        idx = np.arange(80)
        return types.SimpleNamespace(train=data.subset(idx[:50]), val=data.subset(idx[50:65]),
                                     test=data.subset(idx[65:]), prevalence=prevalence)
    return factory


def test_two_closures_of_one_maker_never_share_results(tmp_path):
    a, b = _maker((0.9, 0.1)), _maker((0.1, 0.9))
    assert a.__qualname__ == b.__qualname__
    assert sweeps.factory_key(a) != sweeps.factory_key(b)
    assert sweeps.factory_key(a) == sweeps.factory_key(_maker((0.9, 0.1)))
    assert sweeps._cohort(a, "tiny", {}, 0).prevalence == (0.9, 0.1)
    assert sweeps._cohort(b, "tiny", {}, 0).prevalence == (0.1, 0.9)
    cache = sweeps.ResultCache(tmp_path)
    exp = sweeps.Experiment(preset="tiny", training={"epochs": 1})
    ra = sweeps.run_experiment(exp, cache=cache, factory=a)
    rb = sweeps.run_experiment(exp, cache=cache, factory=b, refresh=True)
    assert ra["key"] != rb["key"] and not rb["cached"]
    again = sweeps.run_experiment(exp, cache=cache, factory=a)
    assert again["cached"] and again["TPR_gap"] == pytest.approx(ra["TPR_gap"], nan_ok=True)
    scores_a = sweeps.load_scores(ra, cache)["test"]
    scores_b = sweeps.load_scores(rb, cache)["test"]
    assert not scores_a["bias_group"].equals(scores_b["bias_group"])


def test_factory_key_covers_defaults_partials_and_arrays():
    import functools

    def f(preset, overrides, seed, k=1):
        return k

    def g(preset, overrides, seed, k=2):
        return k

    assert sweeps.factory_key(f) != sweeps.factory_key(g)  # same code, other default
    assert sweeps.factory_key(functools.partial(f, k=3)) != sweeps.factory_key(functools.partial(f, k=4))

    def holding(array):
        def h(preset, overrides, seed):
            return array
        return h

    assert sweeps.factory_key(holding(np.zeros(5))) != sweeps.factory_key(holding(np.ones(5)))

    def recursive_maker(n):
        def r(preset, overrides, seed):
            return n if seed == 0 else r(preset, overrides, seed - 1)
        return r

    assert sweeps.factory_key(recursive_maker(1)) != sweeps.factory_key(recursive_maker(2))


BAD_ENTRIES = [b"[1, 2]", b'"text"', b"{}", b'{"record": {"a": 1}}', b'{"config": {}}',
               b'{"config": {"c": 2}, "record": {"value": 1}}', b'{"config": {"c": 1}, "record": [1]}',
               b"not json", b"\xff\xfe", b""]


@pytest.mark.parametrize("content", BAD_ENTRIES)
def test_wrong_or_foreign_entries_are_recomputed(tmp_path, content):
    cache = sweeps.ResultCache(tmp_path)
    key = sweeps.config_hash({"c": 1})
    tmp_path.mkdir(exist_ok=True)
    cache.path(key).write_bytes(content)
    out = sweeps.cached({"c": 1}, lambda: {"value": 3.0}, cache)
    assert out == {"value": 3.0, "cached": False}
    assert sweeps.cached({"c": 1}, lambda: {"value": 4.0}, cache)["cached"]


def test_records_failing_their_check_are_recomputed(tmp_path):
    cache = sweeps.ResultCache(tmp_path)
    sweeps.cached({"c": 1}, lambda: {"value": "oops"}, cache)
    out = sweeps.cached({"c": 1}, lambda: {"value": 1.0}, cache,
                        valid=lambda r: isinstance(r["value"], float))
    assert out == {"value": 1.0, "cached": False}
    out = sweeps.cached({"c": 1}, lambda: {"value": 2.0}, cache, valid=lambda r: r["missing"] > 0)
    assert not out["cached"]  # a check that trips on the record refuses it
    cache.put("bad.scores", {"val": {"label": [1]}, "test": {}})
    with pytest.raises(ValueError, match="malformed"):
        sweeps.load_scores("bad", cache)


def test_clear_removes_only_its_own_entries(tmp_path):
    cache = sweeps.ResultCache(tmp_path)
    cache.put("a", {"x": 1}, {"c": 1})
    cache.put("b.scores", {"val": {}}, None)
    (tmp_path / "notes.json").write_text('{"mine": true}')
    (tmp_path / "data.json").write_text("[1, 2, 3]")
    (tmp_path / "readme.txt").write_text("keep")
    (tmp_path / ".a.json.1-dead.tmp").write_text("{")
    assert len(cache) == 2
    assert cache.clear() == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.json", "notes.json", "readme.txt"]
    with pytest.raises(ValueError, match="key"):
        cache.put("../escape", {"x": 1})


def test_concurrent_writers_of_one_key_never_fail(tmp_path):
    cache = sweeps.ResultCache(tmp_path)
    errors = []

    def write(i):
        try:
            for j in range(15):
                cache.put("k", {"writer": i, "j": j}, {"c": 1})
        except Exception as err:  # noqa: BLE001 - the test reports any failure
            errors.append(err)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert cache.get("k", {"c": 1})["j"] == 14
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.json"]


# ------------------------------------------------------------------ shared checks


def test_validation_helpers():
    assert validation.check_finite("x", 2, 0, 3) == 2.0
    for bad in (math.nan, math.inf, True, "1", None, 5):
        with pytest.raises(ValueError, match="x="):
            validation.check_finite("x", bad, 0, 3)
    assert validation.check_int("n", np.int64(3), 0) == 3
    for bad in (3.0, True, "3", -1):
        with pytest.raises(ValueError, match="n="):
            validation.check_int("n", bad, 0)
    assert validation.check_seed(0) == 0
    assert str(validation.check_device("cpu")) == "cpu"
    assert validation.format_bytes(1_500_000_000) == "1.5 GB"
    assert validation.memory_bytes() > 0
    validation.check_memory(1, "x")
    with pytest.raises(ValueError, match="needs about"):
        validation.check_memory(1e30, "x")
    with pytest.raises(ValueError, match="checkpoint"):
        validation.check_output_file("", "checkpoint")
