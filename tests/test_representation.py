"""Tests of faimi_tutorial.experiments.representation (tiny preset, 2D: seconds)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from faimi_tutorial import representation as rep
from faimi_tutorial.data.simulate import SimulationConfig, generate


@pytest.fixture(scope="module")
def base() -> SimulationConfig:
    return SimulationConfig.preset("tiny", dims=2, n_subjects=64, bias_prevalence=(0.5, 0.5),
                                   split=(0.5, 0.2, 0.3))


@pytest.fixture(scope="module")
def cohort(base) -> rep.Cohort:
    return rep.simulate_subgroups(rep.subgroup_configs(base, "other_region"))


def test_subgroup_configs_presentations(base):
    same = rep.subgroup_configs(base, "identical")
    assert list(same) == ["A", "B"]
    assert same["A"] is base
    assert same["B"].seed != base.seed
    assert same["B"].replace(seed=base.seed) == base  # only the seed differs
    other = rep.subgroup_configs(base, "other_region", other_region="left_insula")
    assert other["B"].disease_region == "left_insula" and base.disease_region == "right_insula"
    assert other["B"].slice_z == base.slice_z
    weak = rep.subgroup_configs(base, "weaker", weaker_factor=0.5)
    assert weak["B"].disease_effect_sd == pytest.approx(0.5 * base.disease_effect_sd)
    in_mm = rep.subgroup_configs(base.replace(disease_scale_mm=2.0), "weaker",
                                     weaker_factor=0.5)
    assert in_mm["B"].disease_scale_mm == pytest.approx(1.0)


@pytest.mark.parametrize("field, kwargs", [
    ("presentation", {"presentation": "larger"}),
    ("weaker_factor", {"presentation": "weaker", "weaker_factor": 1.5}),
    ("groups", {"groups": ("A", "A")}),
    ("seed_offset", {"seed_offset": 0}),
])
def test_subgroup_configs_bad_values(base, field, kwargs):
    with pytest.raises(ValueError, match=field):
        rep.subgroup_configs(base, **kwargs)


def test_concat_cohorts_keeps_every_subject(base):
    a = generate(base, progress=False, twins=True)
    b = generate(base.replace(seed=5), progress=False, twins=True)
    both = rep.concat_cohorts({"A": a, "B": b})
    assert len(both) == len(a) + len(b)
    assert list(both.meta["subgroup"].astype(str)) == ["A"] * len(a) + ["B"] * len(b)
    assert both.meta["subject_id"].is_unique
    assert both.meta["subject_id"].iloc[0].startswith("sub-A")
    assert np.array_equal(both.images[len(a):].numpy(), b.images.numpy())
    assert both.twins is not None and both.twins.shape == both.images.shape
    assert set(both.meta.attrs["subgroup_configs"]) == {"A", "B"}
    # splits survive: the train split of the whole is the union of the parts' train splits
    assert len(both.train) == len(a.train) + len(b.train)


def test_concat_cohorts_rejects_mismatches(base):
    a = generate(base, progress=False, twins=False)
    other_grid = generate(base.replace(shape=(24, 24), n_subjects=16), progress=False, twins=False)
    with pytest.raises(ValueError, match="cohorts"):
        rep.concat_cohorts({"A": a, "B": other_grid})
    with pytest.raises(ValueError, match="cohorts"):
        rep.concat_cohorts({})
    with pytest.raises(ValueError, match="cohorts"):
        rep.concat_cohorts({"group A": a})


def test_simulate_subgroups_differ_in_presentation(cohort):
    configs = cohort.meta.attrs["subgroup_configs"]
    assert configs["B"].disease_region != configs["A"].disease_region
    assert set(cohort.meta["subgroup"].astype(str)) == {"A", "B"}
    assert cohort.images.shape[0] == len(cohort.meta)


def test_composition_config_validates():
    assert rep.CompositionConfig(share=0.25, n_train=100).counts() == (75, 25)
    assert rep.CompositionConfig(share=0.25, n_train=100).counts(10) == (7, 3) or \
        rep.CompositionConfig(share=0.25, n_train=100).counts(10) == (8, 2)
    for field, kwargs in [("share", {"share": 1.5}), ("share", {"share": -0.1}),
                          ("share", {"share": "half"}), ("n_train", {"n_train": 1}),
                          ("n_val", {"n_val": 0}), ("groups", {"groups": ("A",)}),
                          ("seed", {"seed": -1})]:
        with pytest.raises(ValueError, match=field):
            rep.CompositionConfig(**kwargs)


@pytest.mark.parametrize("share", [0.0, 0.25, 0.5, 0.75, 1.0])
def test_compose_training_set_share_is_exact(cohort, share):
    data = rep.compose_training_set(cohort, share=share, n_train=16, n_val=4, seed=3)
    train = data.train.meta
    assert len(train) == 16 and len(data.val) == 4
    assert int((train["subgroup"] == "B").sum()) == round(share * 16)
    assert set(train["split"].astype(str)) == {"train"}
    assert set(data.val.meta["split"].astype(str)) == {"val"}
    # only training/validation subjects: the test pool is never used
    test_ids = set(cohort.test.meta["subject_id"])
    assert not test_ids & set(data.meta["subject_id"])


def test_compose_training_set_nested_and_balanced(cohort):
    small = rep.compose_training_set(cohort, share=0.25, n_train=16, n_val=4, seed=1).train.meta
    large = rep.compose_training_set(cohort, share=0.75, n_train=16, n_val=4, seed=1).train.meta
    b_small = set(small.loc[small["subgroup"] == "B", "subject_id"])
    b_large = set(large.loc[large["subgroup"] == "B", "subject_id"])
    assert b_small < b_large
    # labels balanced within each group (as far as the pool allows)
    for _, part in large.groupby("subgroup", observed=True):
        assert abs(int(part["label"].sum()) * 2 - len(part)) <= 1
    # another seed draws other subjects
    other = rep.compose_training_set(cohort, share=0.75, n_train=16, n_val=4, seed=2).train.meta
    assert set(other["subject_id"]) != set(large["subject_id"])


def test_compose_training_set_errors(cohort):
    with pytest.raises(ValueError, match="share"):
        rep.compose_training_set(cohort, share=2.0)
    with pytest.raises(ValueError, match="pool"):
        rep.compose_training_set(cohort, share=1.0, n_train=500, n_val=4)
    with pytest.raises(ValueError, match="groups"):
        rep.compose_training_set(cohort, share=0.5, n_train=8, n_val=4, groups=("A", "C"))


def test_fixed_test_set_is_balanced_and_fixed(cohort):
    t1 = rep.fixed_test_set(cohort, n_per_group=12, seed=0)
    t2 = rep.fixed_test_set(cohort, n_per_group=12, seed=0)
    assert list(t1.meta["subject_id"]) == list(t2.meta["subject_id"])
    counts = t1.meta.groupby(["subgroup", "label"], observed=True).size()
    assert (counts == 6).all() and len(counts) == 4
    assert set(t1.meta["split"].astype(str)) == {"test"}
    default = rep.fixed_test_set(cohort)
    sizes = default.meta["subgroup"].value_counts()
    assert sizes["A"] == sizes["B"]
    with pytest.raises(ValueError, match="n_per_group"):
        rep.fixed_test_set(cohort, n_per_group=10_000)


def test_share_sweep_tests_every_share_on_one_set(cohort):
    test = rep.fixed_test_set(cohort, n_per_group=10)
    runs = rep.share_sweep(cohort, shares=(0.0, 1.0), seeds=(0,), n_train=12, n_val=4, test=test,
                           train_config="tiny", condition="other_region", epochs=1)
    assert len(runs) == 2 * 1 * 2
    assert set(runs["subgroup"]) == {"A", "B"} and set(runs["condition"]) == {"other_region"}
    assert (runs["n_test"] == 10).all()
    assert runs["AUROC"].between(0, 1).all() and runs["TPR"].between(0, 1).all()
    assert list(runs.loc[runs["subgroup"] == "A", "n_train_B"]) == [0, 12]
    with pytest.raises(ValueError, match="share"):
        rep.share_sweep(cohort, shares=(0.5, 1.2), seeds=(0,), n_train=12, n_val=4, test=test)


def test_summarise_sweep_gives_intervals():
    runs = pd.DataFrame({"share": [0.0] * 6, "seed": [0, 1, 2] * 2, "subgroup": ["A"] * 3 + ["B"] * 3,
                         "AUROC": [0.8, 0.9, 0.85, 0.5, 0.6, 0.55], "TPR": [0.7, 0.8, 0.75, 0.3, 0.4, 0.35]})
    summary = rep.summarise_sweep(runs)
    assert len(summary) == 2
    b = summary[summary["subgroup"] == "B"].iloc[0]
    assert b["AUROC_mean"] == pytest.approx(0.55)
    assert b["AUROC_low"] < 0.55 < b["AUROC_high"]


def test_composition_table_counts_and_proportions(cohort):
    table = rep.composition_table(cohort)
    assert set(table["split"]) == {"train", "val", "test", "all"}
    whole = table[(table["split"] == "all") & (table["attribute"] == "subgroup")]
    assert whole.set_index("value")["n"].to_dict() == {"A": 64, "B": 64}
    for (split, attr), part in table.groupby(["split", "attribute"]):
        assert part["proportion"].sum() == pytest.approx(1.0)
    # works on a plain table with missing values and no split column
    meta = pd.DataFrame({"sex": ["F", "M", None, "F"], "label": [1, 0, 1, 1]})
    plain = rep.composition_table(meta, attributes=("sex",), split_column=None)
    assert plain.set_index("value")["n"].to_dict() == {"<missing>": 1, "F": 2, "M": 1}
    with pytest.raises(ValueError, match="columns"):
        rep.composition_table(meta, attributes=("age",))


def test_intersectional_counts_lists_empty_cells_and_flags_small_ones():
    meta = pd.DataFrame({"sex": ["F"] * 40 + ["M"] * 12, "site": ["x"] * 40 + ["x"] * 12,
                         "label": [0, 1] * 20 + [1] * 12})
    cells = rep.intersectional_counts(meta, ("sex", "label"), min_count=10)
    assert len(cells) == 4
    got = cells.set_index(["sex", "label"])["n"].to_dict()
    assert got[("M", "0")] == 0 and got[("F", "1")] == 20 and got[("M", "1")] == 12
    assert cells.set_index(["sex", "label"]).loc[("M", "0"), "too_small"]
    assert not cells.set_index(["sex", "label"]).loc[("M", "1"), "too_small"]
    assert cells["proportion"].sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="min_count"):
        rep.intersectional_counts(meta, ("sex",), min_count=0)
    with pytest.raises(ValueError, match="attributes"):
        rep.intersectional_counts(meta, ())


def test_intersectional_counts_by_split(cohort):
    cells = rep.intersectional_counts(cohort, ("subgroup", "label"), min_count=5, split="test")
    assert cells["n"].sum() == len(cohort.test)


def test_checklist_as_data_and_answered(cohort):
    blank = rep.checklist()
    assert len(blank) == len(rep.CHECKLIST) >= 6
    assert {"topic", "question", "why", "how", "finding"} <= set(blank.columns)
    answered = rep.checklist(cohort, min_count=1000).set_index("topic")["finding"]
    assert answered["every group in every split"] == "yes"
    assert "below 1000" in answered["intersections"]
    assert "A: 50%" in answered["target population"]
    # a group absent from the test split is reported
    meta = cohort.meta.copy()
    meta = meta[~((meta["subgroup"] == "B") & (meta["split"].astype(str) == "test"))]
    found = rep.checklist(meta).set_index("topic")["finding"]
    assert found["every group in every split"].startswith("no: B absent from test")
    missing = rep.checklist(pd.DataFrame({"label": [0, 1]})).set_index("topic")["finding"]
    assert "not recorded" in missing["attributes recorded"]


def test_plot_share_sweep_and_composition(cohort):
    import matplotlib

    matplotlib.use("Agg")
    from faimi_tutorial import plotting

    runs = pd.DataFrame({
        "condition": ["x"] * 12, "share": [0.0, 0.5, 1.0] * 4,
        "seed": [0] * 6 + [1] * 6, "subgroup": (["A"] * 3 + ["B"] * 3) * 2,
        "AUROC": np.linspace(0.5, 0.9, 12), "TPR": np.linspace(0.2, 0.8, 12),
    })
    fig = plotting.plot_share_sweep(rep.summarise_sweep(runs))
    assert len(fig.axes) == 2
    assert len(fig.axes[0].lines) >= 2  # one series per subgroup
    with pytest.raises(ValueError, match="FPR"):
        plotting.plot_share_sweep(rep.summarise_sweep(runs), metrics=("FPR",))
    fig2 = plotting.plot_composition(rep.composition_table(cohort))
    assert len(fig2.axes[0].patches) == 2 * 4  # two subgroups x (train, val, test, all)
    with pytest.raises(ValueError, match="age"):
        plotting.plot_composition(rep.composition_table(cohort), attribute="age")
    matplotlib.pyplot.close("all")
