"""Tests of faimi_tutorial.runner: the one cached runner of chapters and scripts."""

from __future__ import annotations

import functools
import inspect
import random

import numpy as np
import pandas as pd
import pytest
import torch

from faimi_tutorial import runner, sweeps
from faimi_tutorial.experiments.runner import CacheWarning, ResultCache


def table_of(n: int, seed: int = 0, scale: float = 1.0) -> pd.DataFrame:
    """A small table that depends on every argument."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.normal(size=n) * scale, "i": np.arange(n)})


class Counter:
    """Wraps a function and counts the calls that reach it (in a file: the count is
    not part of what the function is, so it never changes the key)."""

    def __init__(self, fn, log):
        self.log = str(log)

        @functools.wraps(fn)
        def counted(*args, **kwargs):
            with open(self.log, "a") as f:
                f.write("x")
            return fn(*args, **kwargs)

        self.fn = counted

    @property
    def calls(self) -> int:
        try:
            with open(self.log) as f:
                return len(f.read())
        except FileNotFoundError:
            return 0


@pytest.fixture
def cache(tmp_path):
    return ResultCache(tmp_path / "cache")


def test_a_hit_returns_the_same_result_without_calling(cache, tmp_path):
    def compute(n, seed=0):
        return {"table": table_of(n, seed), "tensor": torch.arange(n) * 1.5, "n": n}

    count = Counter(compute, tmp_path / "calls")
    first = runner.run(count.fn, 5, seed=1, cache=cache)
    second = runner.run(count.fn, 5, seed=1, cache=cache)
    assert count.calls == 1
    pd.testing.assert_frame_equal(first["table"], second["table"])
    assert torch.equal(first["tensor"], second["tensor"]) and second["n"] == 5
    assert second["table"] is not first["table"]  # read back from disk
    runner.run(count.fn, 5, 1, cache=cache)  # positional or keyword: one call
    assert count.calls == 1
    runner.run(count.fn, 5, seed=1, cache=cache, refresh=True)  # forced
    assert count.calls == 2
    runner.run(count.fn, 5, seed=1, cache=False)  # no cache
    assert count.calls == 3


def test_every_argument_seed_and_version_changes_the_key(monkeypatch):
    def f(data, seed=0, config=None):
        return data

    def key_of(data, **kwargs):
        return runner.config_hash(runner.call_config(f, (data,), kwargs))

    key = key_of(table_of(4), seed=0, config={"lr": 0.1})
    assert key_of(table_of(4), config={"lr": 0.1}) == key  # the default filled in
    changed = [
        key_of(table_of(4), seed=1, config={"lr": 0.1}),
        key_of(table_of(4, scale=2.0), seed=0, config={"lr": 0.1}),
        key_of(table_of(5), seed=0, config={"lr": 0.1}),
        key_of(table_of(4), seed=0, config={"lr": 0.2}),
        key_of(torch.zeros(4), seed=0, config={"lr": 0.1}),
    ]
    assert key not in changed and len(set(changed)) == len(changed)
    monkeypatch.setattr(runner, "__version__", "999.0")
    assert key_of(table_of(4), seed=0, config={"lr": 0.1}) != key
    monkeypatch.undo()
    monkeypatch.setattr(runner, "source_digest", lambda: "edited")
    assert key_of(table_of(4), seed=0, config={"lr": 0.1}) != key


def test_progress_is_not_part_of_the_key_and_bad_arguments_are_refused():
    def f(x, progress=True):
        return x

    quiet = runner.call_config(f, (1,), {"progress": False})
    assert quiet == runner.call_config(f, (1,), {})
    with pytest.raises(ValueError, match="arguments do not fit"):
        runner.call_config(f, (1, 2, 3), {})
    with pytest.raises(ValueError, match="callable"):
        runner.run("not a function", cache=False)
    with pytest.raises(ValueError, match="cache="):
        runner.run(f, 1, cache=3.5)


def test_describe_reads_content_of_tables_tensors_networks_and_closures():
    a = pd.DataFrame({"x": [1.0, 2.0]})
    b = a.copy()
    b.iloc[1, 0] = 2.5
    assert runner.describe(a) == runner.describe(a.copy()) != runner.describe(b)
    assert runner.describe(a.rename(columns={"x": "y"})) != runner.describe(a)
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 1)
    before = runner.describe(net)
    with torch.no_grad():
        net.weight[0, 0] += 1.0
    assert runner.describe(net) != before
    d = runner.describe
    assert d(np.zeros(3, np.float32)) != d(np.zeros(3, np.float64))
    assert d(np.random.default_rng(1)) != d(np.random.default_rng(2))

    def maker(k):
        def g(x):
            return x * k
        return g

    assert runner.factory_key(maker(2)) != runner.factory_key(maker(3))


LIMIT = 10


def reads_a_global(x):
    return x + LIMIT


def test_a_global_read_by_user_code_is_part_of_the_key(monkeypatch):
    before = runner.factory_key(reads_a_global)
    monkeypatch.setitem(globals(), "LIMIT", 11)
    assert runner.factory_key(reads_a_global) != before


def test_an_argument_that_cannot_be_described_is_refused():
    import threading

    with pytest.raises(ValueError, match="cannot build a cache key"):
        runner.describe(threading.Lock())


@pytest.mark.parametrize("damage", ["garbage", "truncate", "flip", "empty", "header"])
def test_a_corrupt_entry_is_recomputed_with_a_warning(cache, damage, tmp_path):
    count = Counter(lambda n: table_of(n), tmp_path / "calls")
    first = runner.run(count.fn, 6, cache=cache)
    (path,) = cache.directory.glob("*.pkl")
    data = path.read_bytes()
    broken = {"garbage": b"\x00\x01 not an entry",
              "truncate": data[: len(data) - 7],
              "flip": data[:-3] + bytes([data[-3] ^ 0xFF]) + data[-2:],
              "empty": b"",
              "header": (runner.OBJECT_MAGIC + b"{not json\n"
                         + data[len(runner.OBJECT_MAGIC):])}[damage]
    path.write_bytes(broken)
    with pytest.warns(CacheWarning, match="cannot be read"):
        again = runner.run(count.fn, 6, cache=cache)
    assert count.calls == 2
    pd.testing.assert_frame_equal(first, again)
    runner.run(count.fn, 6, cache=cache)  # repaired: a plain hit
    assert count.calls == 2


@pytest.mark.parametrize("kind", ["file", "inside_a_file"])
def test_a_bad_cache_folder_is_one_line_error_before_any_work(tmp_path, monkeypatch,
                                                              kind):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    folder = blocker if kind == "file" else blocker / "cache"
    monkeypatch.setenv("FAIMI_CACHE_DIR", str(folder))
    count = Counter(lambda n: n, tmp_path / "calls")
    with pytest.raises(ValueError) as err:
        runner.run(count.fn, 1)
    assert "\n" not in str(err.value) and "FAIMI_CACHE_DIR" in str(err.value)
    assert count.calls == 0
    with pytest.raises(ValueError, match="FAIMI_CACHE_DIR"):
        sweeps.cached({"c": 1}, lambda: {"v": 1.0})


def test_the_default_folder_follows_faimi_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FAIMI_CACHE_DIR", str(tmp_path / "here"))
    assert runner.run(lambda x: x * 2, 21) == 42
    assert len(list((tmp_path / "here").glob("*.pkl"))) == 1
    assert len(ResultCache()) == 1 and ResultCache().clear() == 1
    assert list((tmp_path / "here").iterdir()) == []


def test_a_hit_restores_the_random_state_a_fresh_run_leaves(cache):
    def draws(seed):
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        return float(torch.rand(1))

    runner.run(draws, 3, cache=cache)
    after_fresh = (float(torch.rand(1)), np.random.rand(), random.random())
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    runner.run(draws, 3, cache=cache)  # a hit: the state of the fresh run comes back
    assert (float(torch.rand(1)), np.random.rand(), random.random()) == after_fresh


def test_a_result_that_cannot_be_pickled_is_returned_with_a_warning(cache, tmp_path):
    count = Counter(lambda: (lambda: 1), tmp_path / "calls")
    with pytest.warns(CacheWarning, match="cannot be stored"):
        out = runner.run(count.fn, cache=cache)
    assert out() == 1
    with pytest.warns(CacheWarning):
        runner.run(count.fn, cache=cache)
    assert count.calls == 2


def test_step_adds_cache_and_refresh_keywords(cache, tmp_path):
    log = str(tmp_path / "calls")

    @runner.step
    def expensive(n, *, scale=1.0, progress=False):
        """Doc."""
        with open(log, "a") as f:
            f.write(str(n))
        return table_of(n, scale=scale)

    def calls():
        with open(log) as f:
            return [int(c) for c in f.read()]

    params = inspect.signature(expensive).parameters
    assert list(params) == ["n", "scale", "progress", "cache", "refresh"]
    assert "runner.run" in expensive.__doc__
    a = expensive(3, cache=cache)
    b = expensive(3, cache=cache, progress=True)
    expensive(3, scale=2.0, cache=cache)
    assert calls() == [3, 3]
    pd.testing.assert_frame_equal(a, b)
    expensive(3, cache=cache, refresh=True)
    expensive.uncached(3)
    assert calls() == [3, 3, 3, 3]
    with pytest.raises(ValueError, match="already has"):
        runner.step(lambda x, cache=None: x)
    with pytest.raises(ValueError, match="callable"):
        runner.step(3)


def test_run_experiment_returns_a_stored_model_without_training(cache, monkeypatch):
    from test_sweeps import toy_factory

    exp = sweeps.Experiment(preset="tiny", training={"epochs": 1})
    record, model, cohort = sweeps.run_experiment(exp, cache=cache, factory=toy_factory,
                                                  return_model=True)
    assert not record["cached"]

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(sweeps, "fit", no_training)
    again, model2, cohort2 = sweeps.run_experiment(
        exp, cache=cache, factory=toy_factory, return_model=True)
    assert again["cached"] and again["AUROC"] == record["AUROC"]
    images = cohort.test.images
    assert np.array_equal(model.predict(images), model2.predict(cohort2.test.images))


def test_layer_findings_runs_each_seed_once_through_the_runner(tmp_path, monkeypatch):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "layer_findings.py"
    spec = importlib.util.spec_from_file_location("layer_findings", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    log = tmp_path / "calls"

    def one_seed(study, seed, preset, n_subjects, n_probe):
        with open(log, "a") as f:
            f.write(f"{study}{seed} ")
        return {name: [] for name in script.TABLES} | {
            "short": [{"study": study, "seed": seed, "lam": 0.0,
                       "AUROC": 0.5 + seed / 10}]}

    monkeypatch.setattr(script, "run_seed", one_seed)
    args = ["--only", "short", "--seeds", "2", "--out", str(tmp_path / "out")]
    assert script.main(args) == 0
    first = pd.read_csv(tmp_path / "out" / "layer_short.csv")
    assert script.main(args) == 0  # the second call reads both seeds from the cache
    assert log.read_text().split() == ["short0", "short1"]
    again = pd.read_csv(tmp_path / "out" / "layer_short.csv")
    pd.testing.assert_frame_equal(first, again)


def test_stored_says_whether_run_would_read_the_result(cache, tmp_path, monkeypatch):
    def square(x, offset=0):
        return x * x + offset

    assert not runner.stored(square, 3, cache=cache)
    assert runner.run(square, 3, cache=cache) == 9
    assert runner.stored(square, 3, cache=cache)
    assert runner.stored(square, x=3, offset=0, cache=cache)  # same call, same key
    assert not runner.stored(square, 3, offset=1, cache=cache)
    assert not runner.stored(square, 3, cache=False)
    (next(cache.directory.glob("*.pkl"))).write_bytes(b"not an entry\n")
    assert not runner.stored(square, 3, cache=cache)
    with pytest.warns(CacheWarning, match="cannot be read"):
        runner.run(square, 3, cache=cache)
    monkeypatch.setattr(runner, "source_digest", lambda: "edited-package")
    assert not runner.stored(square, 3, cache=cache), "changed code is another key"
    with pytest.raises(ValueError, match="fn=3 is invalid"):
        runner.stored(3, cache=cache)
    with pytest.raises(ValueError, match="arguments do not fit"):
        runner.stored(square, 1, 2, 3, cache=cache)
