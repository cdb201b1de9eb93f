"""Intensity normalisation, histogram matching and the field-of-view change."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from faimi_tutorial import federated as fl
from faimi_tutorial import harmonise as hm
from faimi_tutorial.data.simulate import SimulationConfig, generate


@pytest.fixture(scope="module")
def images():
    cfg = SimulationConfig.preset("tiny", dims=2, n_subjects=16, seed=2)
    return generate(cfg, progress=False).images


@pytest.mark.parametrize("scanner", ["bright", "low_contrast", "dark"])
@pytest.mark.parametrize("method", ["zscore", "histogram"])
def test_harmonisation_removes_most_of_a_scanner_difference(images, scanner, method):
    other = fl.SCANNERS[scanner].apply(images, seed=0)
    ref = hm.reference_landmarks(images)
    a = hm.harmonise(images, method, ref)
    b = hm.harmonise(other, method, ref)
    raw = float((images - other).abs().mean())
    after = float((a - b).abs().mean())
    assert after < 0.4 * raw, (raw, after)
    assert a.shape == images.shape and a.min() >= 0 and a.max() <= 1


def test_histogram_matching_gives_every_image_the_reference_landmarks(images):
    ref = hm.reference_landmarks(images)
    assert ref.shape == (len(hm.LANDMARKS),) and np.all(np.diff(ref) >= 0)
    matched = hm.match_histograms(fl.SCANNERS["dark"].apply(images), ref)
    own = hm.reference_landmarks(matched)
    # the brain mask of the matched images is recomputed, so allow a little slack
    assert np.abs(own[1:-1] - ref[1:-1]).max() < 0.05


def test_zscore_standardises_the_brain(images):
    out = hm.normalise_intensity(images)
    flat = out.reshape(len(out), -1)
    brain = flat > 0
    means = [float(flat[i][brain[i]].mean()) for i in range(len(flat))]
    assert np.allclose(means, 0.5, atol=0.03)


def test_none_is_a_copy_and_intensity_methods_keep_the_shape(images):
    out = hm.harmonise(images, "none")
    assert torch.equal(out, images) and out.data_ptr() != images.data_ptr()


def test_zoom_scales_the_anatomy_and_identity_changes_nothing(images):
    assert torch.allclose(hm.zoom(images, 1.0), images, atol=1e-5)
    smaller = hm.zoom(images, 0.8)
    brain = (images > 0.2).float().mean()
    assert float((smaller > 0.2).float().mean()) < float(brain) * 0.8
    assert smaller.shape == images.shape


@pytest.mark.parametrize("call, message", [
    (lambda x: hm.harmonise(x, "combat"), "method='combat' is invalid"),
    (lambda x: hm.harmonise(x, "histogram"), "reference=None is invalid"),
    (lambda x: hm.match_histograms(x, [0.1, 0.2]), "reference has 2 values"),
    (lambda x: hm.normalise_intensity(x, threshold=1.5), "threshold=1.5 is invalid"),
    (lambda x: hm.zoom(x, 3.0), "factor=3.0 is invalid"),
    (lambda x: hm.normalise_intensity(x[:, 0]), "images has shape"),
    (lambda x: hm.normalise_intensity(x[:0]), "images is empty"),
    (lambda x: hm.normalise_intensity(torch.zeros_like(x)), "is constant"),
    (lambda x: hm.normalise_intensity(x * float("nan")), "NaN"),
])
def test_bad_inputs_fail_with_one_line(images, call, message):
    with pytest.raises(ValueError, match=message) as err:
        call(images)
    assert "\n" not in str(err.value)
