"""The calorimeter geometry: sizes of the CaloChallenge presets, voxel order, round trips."""

import numpy as np
import pytest

from caloedu.data import PRESETS, CalorimeterGeometry

EXPECTED_VOXELS = {"ds1-photons": 368, "ds1-pions": 533, "ds2": 6480, "ds3": 40500, "teaching": 960}


@pytest.mark.parametrize("preset", PRESETS)
def test_presets_have_the_calochallenge_voxel_counts(preset):
    geometry = CalorimeterGeometry.preset(preset)
    assert geometry.n_voxels == EXPECTED_VOXELS[preset]
    assert geometry.layer_boundaries[-1] == geometry.n_voxels
    assert CalorimeterGeometry.from_config(geometry.get_config()) == geometry


def test_ds2_is_45_layers_of_16_angles_by_9_radii_at_08_x0():
    geometry = CalorimeterGeometry.preset("ds2")
    assert geometry.shape == (45, 16, 9)
    np.testing.assert_allclose(geometry.layer_thickness_x0, 2 * 1.4 / 3.504)
    front, back = geometry.layer_depth_x0
    assert back[-1] == pytest.approx(45 * 0.799, abs=0.01)  # ~36 X0: contains a 1 TeV shower


def test_voxel_order_is_radius_fastest_then_angle_then_layer():
    geometry = CalorimeterGeometry.preset("ds2")
    centres = geometry.voxel_centres()
    assert centres.layer[:144].tolist() == [0] * 144 and centres.layer[144] == 1
    assert np.all(np.diff(centres.r[:9]) > 0)  # the first 9 voxels: one angular bin, all radii
    assert np.all(centres.alpha[:9] == centres.alpha[0]) and centres.alpha[9] > centres.alpha[0]


def test_layer_energies_and_images_agree():
    geometry = CalorimeterGeometry.preset("teaching")
    showers = np.random.default_rng(0).random((3, geometry.n_voxels))
    np.testing.assert_allclose(geometry.layer_energies(showers), geometry.as_images(showers).sum(axis=(2, 3)))


def test_ds1_empty_layers_have_no_voxels():
    geometry = CalorimeterGeometry.preset("ds1-photons")
    assert geometry.n_layers == 24 and not geometry.is_regular
    assert geometry.voxels_per_layer[4] == 0 and geometry.voxels_per_layer[12] == 5


def test_wrong_shapes_and_names_raise_value_errors():
    geometry = CalorimeterGeometry.preset("ds2")
    with pytest.raises(ValueError, match="6480"):
        geometry.check_showers(np.zeros((2, 100)))
    with pytest.raises(ValueError, match="preset"):
        CalorimeterGeometry.from_name_or_path("ds7")


def test_ds1_depths_follow_the_atlas_barrel_so_em_showers_are_contained():
    geometry = CalorimeterGeometry.preset("ds1-photons")
    front, back = geometry.layer_depth_x0
    assert back[3] == pytest.approx(24.3, abs=0.5)  # presampler + 3 EM samplings ~ 24 X0 at |eta| ~ 0.2
    assert back[11] - back[3] < 0.01, "the empty end-cap layers 4-11 add no depth"
