"""MDMA's own pieces (caloedu.generators.mdma): the multiplicity model, the batches of similar size, the
response, the rotation in alpha, sampling. The networks' symmetries are in tests/test_mean_field.py; what
every family does (resume with both optimizers, NaN, CLI) in tests/test_generators_contract.py."""

import caloedu  # noqa: F401  (before keras: selects the torch backend)
import keras
import numpy as np
import pytest
import torch

from caloedu.data.geometry import CalorimeterGeometry
from caloedu.data.pointcloud import showers_to_hits
from caloedu.data.simulation import simulate_showers
from caloedu.generators.mdma import MDMAGenerator, MultiplicityBatches, multiplicity_table

GEOMETRY = CalorimeterGeometry.preset("teaching")


@pytest.fixture(scope="module")
def showers():
    return simulate_showers(GEOMETRY, 400, seed=5)


@pytest.fixture(scope="module")
def trained(showers):
    keras.utils.set_random_seed(0)
    mdma = MDMAGenerator(GEOMETRY, **MDMAGenerator.smoke_options)
    mdma.fit(*showers, epochs=1, batch_size=100, verbose=0)
    return mdma


def test_the_multiplicity_table_is_a_distribution_per_energy_bin_and_fills_empty_bins():
    condition = np.array([0.05, 0.06, 0.9, 0.95])  # bins 0 and 3 of 4 hold showers, 1 and 2 none
    table = multiplicity_table(condition, [3, 5, 10, 10], n_bins=4, max_hits=12)
    assert table.shape == (4, 13)
    np.testing.assert_allclose(table.sum(axis=1), 1.0)
    np.testing.assert_allclose(table[0, [3, 5]], [0.5, 0.5])
    np.testing.assert_array_equal(table[1], table[0])  # nearest filled bin
    np.testing.assert_array_equal(table[2], table[3])
    assert table[3, 10] == 1.0


def test_drawn_multiplicities_follow_the_training_showers(trained, showers):
    energies, raw = showers
    n_hits = (raw > 0).sum(axis=1)
    drawn = trained.draw_multiplicity(trained.condition(energies), np.random.default_rng(0))
    # the same energies, so the same mean number of hits up to the spread within an energy bin
    assert abs(drawn.mean() - n_hits.mean()) < 0.1 * n_hits.mean()
    low = energies.ravel() < np.median(energies)
    assert drawn[low].mean() < drawn[~low].mean(), "more energy, more hits: the model must follow E_inc"


def test_batches_of_similar_size_cover_every_shower_once_and_cut_only_padding(showers):
    energies, raw = showers
    points, mask = showers_to_hits(raw, GEOMETRY, seed=0)
    condition = np.arange(len(raw), dtype=np.float32)[:, None]  # the row number, to find every shower again
    batches = MultiplicityBatches((points, mask), condition, batch_size=64, buckets=4, seed=1)
    assert len(batches) == int(np.ceil(len(raw) / 64))  # as many batches as Keras would make
    seen, padded, trimmed = [], 0, 0
    for index in range(len(batches)):
        (p, m), c = batches[index]
        rows = c[:, 0].astype(int)
        seen += list(rows)
        np.testing.assert_array_equal(m.sum(axis=1), mask[rows].sum(axis=1))  # no hit cut away
        assert p.shape[1] == m.sum(axis=1).max()
        padded += mask.shape[1] * len(rows)
        trimmed += p.shape[1] * len(rows)
    assert sorted(seen) == list(range(len(raw)))
    assert trimmed < 0.8 * padded, "grouping by multiplicity should remove much of the padding"
    batches.on_epoch_end()
    assert [list(b) for b in batches.batches] != [list(b) for b in MultiplicityBatches(
        (points, mask), condition, batch_size=64, buckets=4, seed=1).batches], "each epoch a new order"


def test_the_response_is_the_deposited_over_the_incident_energy(trained, showers):
    energies, raw = showers
    cloud = trained.representation.forward(energies, raw, seed=0)
    condition = torch.as_tensor(trained.condition(energies))
    response = trained.response(torch.as_tensor(cloud.points), torch.as_tensor(cloud.mask), condition)
    np.testing.assert_allclose(response.numpy(), raw.sum(axis=1) / energies.ravel(), rtol=2e-3)


def test_a_rotation_turns_every_hit_by_the_same_angle(trained, showers):
    energies, raw = showers
    cloud = trained.representation.forward(energies[:5], raw[:5], seed=0)
    points = torch.as_tensor(cloud.points)
    same = trained.rotate_alpha(points, torch.zeros(5))
    np.testing.assert_allclose(same.numpy()[cloud.mask], cloud.points[cloud.mask], atol=2e-3)
    half = trained.rotate_alpha(points, torch.full((5,), 0.5)).numpy()
    before = trained.representation.inverse(energies[:5], cloud).reshape(5, 12, 10, 8)  # (layer, alpha, r)
    after = trained.representation.inverse(energies[:5], (half, cloud.mask)).reshape(5, 12, 10, 8)
    np.testing.assert_allclose(after, np.roll(before, 5, axis=2), rtol=1e-4, atol=1e-6)


def test_samples_do_not_depend_on_the_batch_size_and_have_drawn_multiplicities(trained, showers):
    energies = showers[0][:6]
    points, mask = trained.sample_features(energies, seed=3)
    again, mask_again = trained.sample_features(energies, seed=3, batch_size=4)
    np.testing.assert_array_equal(mask, mask_again)
    np.testing.assert_allclose(points, again, atol=1e-4)
    assert (points[~mask] == 0).all() and mask.any(axis=1).all()
    generated = trained.sample(energies, seed=3)
    assert generated.shape == (6, GEOMETRY.n_voxels) and np.isfinite(generated).all()
    assert ((generated > 0).sum(axis=1) <= mask.sum(axis=1)).all(), "a voxel per hit at most"
    assert not np.array_equal(generated, trained.sample(energies, seed=3, random_rotation=False))


def test_colliding_hits_move_to_the_nearest_free_voxel_of_their_layer():
    from caloedu.data.pointcloud import hits_to_showers

    # layer 2, alpha bin 3, radial bin 4 twice (the second with less energy), and one hit elsewhere
    hits = np.array([[[2.5, 3.5, 4.5, 10.0], [2.5, 3.4, 4.9, 4.0], [5.5, 0.5, 0.5, 1.0], [0, 0, 0, 0]]])
    mask = np.array([[True, True, True, False]])
    summed = hits_to_showers(hits, mask, GEOMETRY).reshape(12, 10, 8)
    assert summed[2, 3, 4] == 14.0 and (summed > 0).sum() == 2
    moved = hits_to_showers(hits, mask, GEOMETRY, collisions="move").reshape(12, 10, 8)
    assert (moved > 0).sum() == 3 and moved.sum() == 15.0
    assert moved[2, 3, 4] == 10.0, "the hit of highest energy keeps its voxel"
    assert moved[2, 3, 5] == 4.0, "the other goes to the nearest free voxel (it sat at r = 4.9)"
    full = np.zeros((1, 81, 4))  # 81 hits in the 80 voxels of layer 0: one must share
    full[0, :80, 1] = np.repeat(np.arange(10), 8) + 0.5
    full[0, :80, 2] = np.tile(np.arange(8), 10) + 0.5
    full[0, 80] = [0.5, 0.5, 0.5, 1.0]
    full[0, :80, 3] = 2.0
    crowded = hits_to_showers(full, np.ones((1, 81), bool), GEOMETRY, collisions="move")
    assert (crowded > 0).sum() == 80 and crowded.sum() == 161.0
    with pytest.raises(ValueError, match="collisions"):
        hits_to_showers(hits, mask, GEOMETRY, collisions="merge")


def test_held_out_showers_with_more_hits_than_any_training_shower_still_become_clouds(trained, showers):
    energies, raw = showers
    crowded = raw[:2].copy()
    crowded[0] = np.where(crowded[0] > 0, crowded[0], 0.05)  # every voxel hit: more than max_hits
    cloud = trained.representation.forward(energies[:2], crowded, seed=0)
    assert cloud.points.shape[1] == GEOMETRY.n_voxels > trained.layout.max_hits
    assert cloud.mask[0].sum() == GEOMETRY.n_voxels and cloud.mask[1].sum() == (raw[1] > 0).sum()
    np.testing.assert_allclose(trained.representation.inverse(energies[:2], cloud), crowded, rtol=1e-4, atol=1e-6)
