"""The course's stand-in for Geant4: GFLASH-style electromagnetic showers in a W/Si sampling calorimeter.

For each shower the simulator
1. draws its longitudinal profile (T, alpha) with GFLASH's correlated fluctuations (``gflash.py``);
2. computes the expected fraction of the energy in every voxel analytically: the Gamma CDF over each
   layer's depth (``geometry.layer_thickness_x0``), the core + tail radial CDF at the layer's relative
   depth tau = t / T over its radial bins, uniform in the angle alpha;
3. deposits energy spots: the number of spots in a voxel is Poisson with mean N_spot x fraction
   (N_spot = 10.3 / c E^0.959, GFLASH's sampling-calorimeter formula), and each spot's visible energy
   fluctuates (a Gamma distribution), chosen so the total resolves as c / sqrt(E) like the real stack;
4. applies a per-shower calibration spread (the constant term) and the readout threshold per voxel.

Drawing spot counts per voxel instead of placing every spot keeps the sampling fluctuations exact (a
Poisson process thinned into voxels is Poisson per voxel) at a cost that does not grow with energy:
a 1 TeV shower has ~40,000 spots but still costs one Poisson draw per voxel.

Energy scale: ``showers`` hold calibrated energy, the silicon signal divided by the sampling fraction,
so E_dep / E_inc is ~1 minus leakage (as the CaloChallenge E_tot / E_inc plots, binned 0.5 - 1.5,
expect). Pass ``sampling_fraction`` to store the visible silicon energy instead. The readout threshold
applies to the values as stored: no voxel lies in (0, threshold_mev).
"""

import numpy as np

from caloedu.data import gflash
from caloedu.data.checks import check_incident_energies
from caloedu.data.geometry import DS2_THRESHOLD_MEV, CalorimeterGeometry

DEFAULT_ENERGY_RANGE = (1e3, 1e6)  # 1 GeV - 1 TeV in MeV, log-uniform like DS2
_VOXELS_PER_BATCH = 1 << 20  # ~8 MB per float64 temporary: keeps a batch in cache-friendly sizes


def log_uniform_energies(n, energy_range, rng):
    """``n`` incident energies log-uniform in ``energy_range`` (MeV), shape (n,)."""
    low, high = (float(e) for e in energy_range)
    if not 0 < low <= high:
        raise ValueError(f"energy_range must be (low, high) with 0 < low <= high in MeV, got {energy_range}.")
    return np.exp(rng.uniform(np.log(low), np.log(high), size=int(n)))


class ShowerSimulator:
    """GFLASH-like electromagnetic showers binned into any `CalorimeterGeometry`.

    Args:
        geometry: a `CalorimeterGeometry` (or a preset name / binning XML path).
        threshold_mev: readout threshold per voxel (MeV); deposits below it are set to 0. DS2: 15.15 keV.
        sampling_term: c in sigma/E = c / sqrt(E/GeV) (+) constant_term; DS2-like W/Si ~ 0.2.
        constant_term: relative per-shower calibration spread (the constant term of the resolution).
        sampling_fraction: None stores calibrated energy (E_dep / E_inc ~ 1); a number f stores the
            visible silicon energy f x calibrated energy.
        medium: a `gflash.SamplingMedium` (E_c, Z, R_M, sampling corrections); defaults to DS2's W/Si.
        fluctuate_profile: False gives every shower its average longitudinal profile (for teaching).

    Example::

        sim = ShowerSimulator(CalorimeterGeometry.preset("ds2"))
        incident_energies, showers = sim.simulate(1000, seed=1)   # (1000, 1) MeV, (1000, 6480) MeV
    """

    def __init__(self, geometry, threshold_mev=DS2_THRESHOLD_MEV, sampling_term=0.2, constant_term=0.01,
                 sampling_fraction=None, medium=gflash.DS2_MEDIUM, fluctuate_profile=True):
        geometry = CalorimeterGeometry.coerce(geometry)
        if threshold_mev < 0:
            raise ValueError(f"threshold_mev must be >= 0 MeV, got {threshold_mev}.")
        if not 0 < sampling_term < 1:
            raise ValueError(f"sampling_term is c in c/sqrt(E/GeV), e.g. 0.2; got {sampling_term}.")
        if constant_term < 0:
            raise ValueError(f"constant_term must be >= 0, got {constant_term}.")
        if sampling_fraction is not None and not 0 < sampling_fraction <= 1:
            raise ValueError(f"sampling_fraction must be in (0, 1] (or None for calibrated energy), got {sampling_fraction}.")
        self.geometry = geometry
        self.threshold_mev = float(threshold_mev)
        self.sampling_term = float(sampling_term)
        self.constant_term = float(constant_term)
        self.sampling_fraction = sampling_fraction
        self.medium = medium
        self.fluctuate_profile = bool(fluctuate_profile)
        front, back = geometry.layer_depth_x0
        self._depth_edges = np.concatenate([[0.0], back])  # (L + 1,) X0
        self._depth_centres = 0.5 * (front + back)  # (L,) X0: where tau is evaluated for a layer
        # Only layers with voxels get energy; what falls into empty DS1 layers is lost, as in the detector.
        self._layers = [layer for layer in range(geometry.n_layers) if geometry.n_radial[layer] > 0]
        self._slices = [geometry.layer_slice(layer) for layer in range(geometry.n_layers)]
        self._r_edges_rm = [geometry.r_edges[layer] / medium.moliere_radius_mm for layer in range(geometry.n_layers)]

    # --- the expected shower ------------------------------------------------------------------
    def expected_voxel_fractions(self, incident_energies, t_max, alpha):
        """Mean fraction of each shower's energy in each voxel, shape (N, n_voxels).

        Args:
            incident_energies: (N,) MeV. t_max, alpha: (N,) longitudinal parameters (X0, shape).
        """
        energies = np.asarray(incident_energies, dtype=np.float64).reshape(-1)
        geometry = self.geometry
        longitudinal = gflash.longitudinal_layer_fractions(t_max, alpha, self._depth_edges)  # (N, L)
        tau = self._depth_centres[None, :] / np.asarray(t_max)[:, None]  # (N, L)
        r_core, r_tail, p_core = gflash.radial_profile_parameters(tau, energies[:, None], self.medium)
        out = np.zeros((len(energies), geometry.n_voxels))
        for layer in self._layers:
            cdf = gflash.radial_cdf(
                self._r_edges_rm[layer][None, :], r_core[:, layer, None], r_tail[:, layer, None], p_core[:, layer, None]
            )  # (N, n_r + 1)
            ring = np.diff(cdf, axis=1) * (longitudinal[:, layer, None] / geometry.n_alpha[layer])  # (N, n_r)
            block = out[:, self._slices[layer]].reshape(len(energies), geometry.n_alpha[layer], -1)
            block[...] = ring[:, None, :]  # uniform in alpha: the same ring fraction in every angular bin
        return out

    # --- sampling -----------------------------------------------------------------------------
    def _simulate_batch(self, energies, rng):
        t_max, alpha = gflash.sample_longitudinal_parameters(energies, rng, self.medium, self.fluctuate_profile)
        fractions = self.expected_voxel_fractions(energies, t_max, alpha)  # (n, V)
        n_spots = gflash.spot_count(energies, self.sampling_term)  # (n,)
        # Spot energies fluctuate with a Gamma(shape s) so that N_spot (1 + 1/s) / E^2 = c^2 / E, i.e. the
        # compound Poisson sum resolves as c / sqrt(E); GFLASH's N_spot alone would give ~sqrt(c/10.3)/sqrt(E).
        excess = self.sampling_term**2 * n_spots / (energies / 1e3) - 1.0
        shape = 1.0 / np.clip(excess, 1e-4, None)  # excess <= 0: spots alone already resolve better than c
        spot_scale = energies / n_spots / shape  # (n,) MeV per unit of the standard Gamma
        counts = rng.poisson(fractions * n_spots[:, None])  # (n, V) spots per voxel
        deposits = np.zeros(counts.shape)
        hit = np.nonzero(counts)
        deposits[hit] = rng.standard_gamma(counts[hit] * shape[hit[0]]) * spot_scale[hit[0]]
        calibration = 1.0 + self.constant_term * rng.standard_normal(len(energies))
        deposits *= np.clip(calibration, 0.0, None)[:, None]
        if self.sampling_fraction is not None:
            deposits *= self.sampling_fraction
        showers = deposits.astype(np.float32)
        # Threshold after rounding to float32 and compared in float64, so no stored value lies in (0, threshold).
        showers[showers < np.float64(self.threshold_mev)] = 0.0
        return showers

    def simulate(self, n=None, incident_energies=None, energy_range=DEFAULT_ENERGY_RANGE, seed=None,
                 batch_size=None, callback=None):
        """Simulate showers.

        Args:
            n: number of showers, energies log-uniform in ``energy_range`` (MeV).
            incident_energies: or the energies to simulate, shape (N,) or (N, 1), MeV (>= 100 MeV).
            seed: int or ``numpy.random.Generator``; the same seed (and batch_size) gives the same showers.
            batch_size: showers per vectorised batch (default: ~1M voxels per batch).
            callback: optional ``callback(n_done, n_total)`` called after each batch (progress bars).
        Returns:
            (incident_energies (N, 1) float64 MeV, showers (N, n_voxels) float32 MeV).
        """
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        if incident_energies is None:
            if n is None:
                raise ValueError("Give the number of showers n, or the incident_energies to simulate.")
            energies = log_uniform_energies(n, energy_range, rng)
        else:
            # check_incident_energies copies: the result must not alias the input
            energies = check_incident_energies(np.array(incident_energies, dtype=np.float64)).reshape(-1)
            if n is not None and n != len(energies):
                raise ValueError(f"n={n} but {len(energies)} incident_energies were given; give one or the other.")
        gflash._ln_y(energies, self.medium)  # validate all energies before simulating any
        if batch_size is None:
            batch_size = max(1, _VOXELS_PER_BATCH // max(1, self.geometry.n_voxels))
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        showers = np.zeros((len(energies), self.geometry.n_voxels), dtype=np.float32)
        for start in range(0, len(energies), batch_size):
            stop = min(start + batch_size, len(energies))
            showers[start:stop] = self._simulate_batch(energies[start:stop], rng)
            if callback is not None:
                callback(stop, len(energies))
        return energies[:, None], showers

    def __repr__(self):
        return (f"ShowerSimulator({self.geometry!r}, threshold_mev={self.threshold_mev:g}, "
                f"sampling_term={self.sampling_term:g}, constant_term={self.constant_term:g})")


def simulate_showers(geometry, n=None, seed=None, energy_range=DEFAULT_ENERGY_RANGE, incident_energies=None):
    """Simulate ``n`` showers in ``geometry`` with the default DS2-like physics.

    Returns:
        (incident_energies (N, 1) float64 MeV, showers (N, n_voxels) float32 MeV).
    """
    return ShowerSimulator(geometry).simulate(
        n=n, incident_energies=incident_energies, energy_range=energy_range, seed=seed
    )
