"""CaloChallenge HDF5 files: bit-for-bit round trips, chunked reading, and errors that name the problem."""

import os

import h5py
import numpy as np
import pytest

from caloedu.data import (
    CalorimeterGeometry,
    ShowerFileError,
    count_showers,
    iter_showers,
    load_showers,
    save_showers,
    simulate_showers,
)


@pytest.fixture(scope="module")
def teaching():
    return CalorimeterGeometry.preset("teaching")


@pytest.fixture(scope="module")
def sample(teaching):
    return simulate_showers(teaching, 120, seed=0)


def _write_raw(path, **datasets):
    with h5py.File(path, "w") as file:
        for key, value in datasets.items():
            file.create_dataset(key, data=value)


def test_round_trip_is_bit_for_bit_with_the_dtypes_given(tmp_path, teaching, sample):
    incident, showers = sample
    path = tmp_path / "showers.h5"
    save_showers(path, incident, showers, geometry=teaching)
    loaded_incident, loaded_showers = load_showers(path, geometry=teaching)
    assert loaded_incident.dtype == np.float64 and loaded_showers.dtype == np.float32
    np.testing.assert_array_equal(loaded_incident, incident)
    np.testing.assert_array_equal(loaded_showers, showers)
    save_showers(path, incident, showers.astype(np.float64), overwrite=True)
    assert load_showers(path)[1].dtype == np.float64
    assert count_showers(path) == 120
    assert [p.name for p in tmp_path.iterdir()] == ["showers.h5"], "no temporary file left behind"


def test_chunked_iteration_equals_full_load_and_slices(tmp_path, sample):
    path = tmp_path / "showers.h5"
    save_showers(path, *sample)
    chunks = list(iter_showers(path, chunk_size=50))
    assert [len(c[1]) for c in chunks] == [50, 50, 20]
    np.testing.assert_array_equal(np.concatenate([c[1] for c in chunks]), sample[1])
    np.testing.assert_array_equal(np.concatenate([c[0] for c in chunks]), sample[0])
    incident, showers = load_showers(path, start=10, stop=30)
    np.testing.assert_array_equal(showers, sample[1][10:30])
    assert incident.shape == (20, 1)


def test_saved_file_has_the_permissions_of_a_plain_open(tmp_path, sample):
    # The temporary file behind the atomic save is private (0600); the final file must not be.
    old = os.umask(0o022)
    try:
        save_showers(tmp_path / "showers.h5", *sample)
        with open(tmp_path / "plain.bin", "w"):
            pass
    finally:
        os.umask(old)
    mode = os.stat(tmp_path / "showers.h5").st_mode & 0o777
    assert mode == os.stat(tmp_path / "plain.bin").st_mode & 0o777 == 0o644, oct(mode)


def test_refuses_to_overwrite_unless_asked(tmp_path, sample):
    path = tmp_path / "showers.h5"
    save_showers(path, *sample)
    with pytest.raises(FileExistsError, match="overwrite"):
        save_showers(path, *sample)
    save_showers(path, sample[0][:5], sample[1][:5], overwrite=True)
    assert count_showers(path) == 5


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        load_showers(tmp_path / "nope.h5")


def test_missing_keys_list_what_the_file_has(tmp_path):
    path = tmp_path / "bad.h5"
    _write_raw(path, energy=np.ones((3, 1)), layer_0=np.ones((3, 4)))
    with pytest.raises(ShowerFileError, match=r"incident_energies, showers.*energy, layer_0"):
        load_showers(path)


def test_shape_that_does_not_fit_the_geometry_says_which(tmp_path, teaching):
    path = tmp_path / "bad.h5"
    _write_raw(path, incident_energies=np.ones((3, 1)), showers=np.ones((3, 100)))
    with pytest.raises(ShowerFileError, match=r"'teaching' expects n_voxels=960"):
        load_showers(path, geometry=teaching)
    with pytest.raises(ShowerFileError, match="960"):
        save_showers(tmp_path / "new.h5", np.ones((3, 1)), np.ones((3, 100)), geometry=teaching)


def test_row_count_mismatch_between_datasets(tmp_path):
    path = tmp_path / "bad.h5"
    _write_raw(path, incident_energies=np.ones((4, 1)), showers=np.ones((3, 10)))
    with pytest.raises(ShowerFileError, match="4 rows but 'showers' has 3"):
        load_showers(path)


def test_nan_and_negative_energies_say_how_many_and_where(tmp_path):
    showers = np.ones((5, 10))
    showers[3, 2] = np.nan
    showers[4, 0] = np.inf
    path = tmp_path / "nan.h5"
    _write_raw(path, incident_energies=np.ones((5, 1)), showers=showers)
    with pytest.raises(ShowerFileError, match="2 NaN or inf values.*row 3"):
        load_showers(path)
    showers = np.ones((5, 10))
    showers[2, 1] = -0.5
    with pytest.raises(ShowerFileError, match="1 negative energies.*row 2"):
        save_showers(tmp_path / "neg.h5", np.ones((5, 1)), showers)
    assert not os.path.exists(tmp_path / "neg.h5")


def test_file_errors_are_value_errors(tmp_path):
    path = tmp_path / "not_hdf5.h5"
    path.write_text("hello")
    with pytest.raises(ValueError, match="not a readable shower file: it is not an HDF5 file"):
        load_showers(path)
