"""The GFLASH parametrisation of electromagnetic showers (Grindhammer & Peters, hep-ex/0001020).

Small pure-numpy functions, one formula each, that the shower simulator combines (and that the
module-02 exercise asks students to rebuild):

- ``sample_longitudinal_parameters``: per-shower depth of the maximum T (X0) and Gamma shape alpha,
  drawn as correlated normals in (ln T, ln alpha), with the sampling-calorimeter corrections;
- ``longitudinal_layer_fractions``: fraction of the shower energy in each layer, from the Gamma CDF;
- ``radial_cdf``: fraction of a layer's energy within radius r (Moliere radii), core + tail at depth tau.

Units: energies in MeV at the interface (converted to GeV inside ln E, as GFLASH fits them),
depth in radiation lengths X0, radius in Moliere radii R_M. y = E / E_c.
"""

from dataclasses import dataclass

import numpy as np
from scipy.special import gammainc


@dataclass(frozen=True)
class SamplingMedium:
    """What GFLASH needs to know about a sampling calorimeter.

    Defaults describe the CaloChallenge DS2/DS3 stack, 1.4 mm W + 0.3 mm Si per physical layer, with
    depth counted in tungsten X0 and R_M = 9.3 mm as the course's geometry does (REFERENCES.md).

    Attributes:
        critical_energy_mev: E_c of the absorber (tungsten ~ 8 MeV); y = E / E_c.
        z_eff: effective charge in the Z-dependent GFLASH coefficients (tungsten dominates: 74).
        moliere_radius_mm: R_M in mm, the unit of the radial profile.
        f_s: X0_eff / (d_abs + d_act) = 4.22 mm / 1.7 mm = 2.48 for W/Si (X0_W 3.504 mm, X0_Si 93.7 mm).
        e_hat: 1 / (1 + 0.007 (Z_abs - Z_act)) = 1 / (1 + 0.007 (74 - 14)) = 0.704.
    """

    critical_energy_mev: float = 8.0
    z_eff: float = 74.0
    moliere_radius_mm: float = 9.3
    f_s: float = 2.48
    e_hat: float = 0.704


DS2_MEDIUM = SamplingMedium()

# Below ~100 MeV (ln y < 2.5) the fitted widths 1 / (-2.5 + 1.25 ln y) blow up: GFLASH was fitted
# from ~1 GeV up, so we refuse energies where its formulas stop making sense.
MIN_ENERGY_MEV = 100.0


def _ln_y(energies_mev, medium):
    energies_mev = np.asarray(energies_mev, dtype=np.float64)
    if np.any(~np.isfinite(energies_mev)) or np.any(energies_mev < MIN_ENERGY_MEV):
        raise ValueError(
            f"GFLASH showers need finite incident energies of at least {MIN_ENERGY_MEV:g} MeV; "
            f"got values down to {np.nanmin(energies_mev):g} MeV."
        )
    return np.log(energies_mev / medium.critical_energy_mev)


def mean_longitudinal_parameters(energies_mev, medium=DS2_MEDIUM):
    """Average per-shower profile: <ln T>, <ln alpha>, their widths and correlation (sampling calo).

    Args:
        energies_mev: incident energies, shape (N,), MeV.
    Returns:
        dict of arrays (N,): ``mu_ln_t``, ``sigma_ln_t``, ``mu_ln_alpha``, ``sigma_ln_alpha``, ``rho``.
    """
    ln_y = _ln_y(energies_mev, medium)
    z = medium.z_eff
    # Homogeneous-medium means, then the sampling shift (the active layers delay and shorten the profile).
    t_hom = ln_y - 0.812
    alpha_hom = 0.81 + (0.458 + 2.26 / z) * ln_y
    t_sam = t_hom - 0.55 / medium.f_s - 0.69 * (1.0 - medium.e_hat)
    alpha_sam = alpha_hom - 0.476 / medium.f_s
    return {
        "mu_ln_t": np.log(t_sam),
        "sigma_ln_t": 1.0 / (-2.5 + 1.25 * ln_y),
        "mu_ln_alpha": np.log(alpha_sam),
        "sigma_ln_alpha": 1.0 / (-0.82 + 0.79 * ln_y),
        "rho": 0.784 - 0.023 * ln_y,
    }


def sample_longitudinal_parameters(energies_mev, rng, medium=DS2_MEDIUM, fluctuate=True):
    """Draw each shower's longitudinal profile: depth of maximum T (X0) and Gamma shape alpha.

    (ln T, ln alpha) are correlated normals (GFLASH's per-shower fluctuations): with z1, z2 ~ N(0, 1),
    ln T = mu_T + sigma_T z1 and ln alpha = mu_a + sigma_a (rho z1 + sqrt(1 - rho^2) z2).

    Args:
        energies_mev: incident energies, shape (N,), MeV.
        rng: a ``numpy.random.Generator``.
        fluctuate: False gives every shower the average profile (exp of the means).
    Returns:
        (T, alpha), two arrays of shape (N,); T in X0, alpha > 1 (so the Gamma profile has a maximum).
    """
    p = mean_longitudinal_parameters(energies_mev, medium)
    if fluctuate:
        z1 = rng.standard_normal(p["mu_ln_t"].shape)
        z2 = rng.standard_normal(p["mu_ln_t"].shape)
        ln_t = p["mu_ln_t"] + p["sigma_ln_t"] * z1
        ln_alpha = p["mu_ln_alpha"] + p["sigma_ln_alpha"] * (p["rho"] * z1 + np.sqrt(1.0 - p["rho"] ** 2) * z2)
    else:
        ln_t, ln_alpha = p["mu_ln_t"], p["mu_ln_alpha"]
    # The far tail of ln alpha can reach alpha <= 1 (a profile without a maximum, b <= 0): keep it physical.
    return np.exp(ln_t), np.maximum(np.exp(ln_alpha), 1.05)


def longitudinal_layer_fractions(t_max, alpha, depth_edges_x0):
    """Fraction of each shower's energy deposited in each layer, from the Gamma profile.

    f(t) = (b t)^(alpha - 1) b exp(-b t) / Gamma(alpha) with b = (alpha - 1) / T, so the fraction in
    [t0, t1] is P(alpha, b t1) - P(alpha, b t0) with P the regularised lower incomplete gamma function.

    Args:
        t_max: depth of the shower maximum T, shape (N,), X0.
        alpha: Gamma shape, shape (N,), > 1.
        depth_edges_x0: layer boundaries, shape (n_layers + 1,), X0, starting at the front face (0).
    Returns:
        (N, n_layers) fractions; each row sums to 1 minus the leakage behind the last layer.
    """
    t_max = np.asarray(t_max, dtype=np.float64)[:, None]
    alpha = np.asarray(alpha, dtype=np.float64)[:, None]
    b = (alpha - 1.0) / t_max
    cdf = gammainc(alpha, b * np.asarray(depth_edges_x0, dtype=np.float64)[None, :])  # (N, L+1)
    return np.diff(cdf, axis=1)


def radial_profile_parameters(tau, energies_mev, medium=DS2_MEDIUM):
    """Core radius R_C, tail radius R_T (both R_M) and core weight p at relative depth tau = t / T.

    Args:
        tau: relative depth, any shape broadcastable with ``energies_mev``.
        energies_mev: incident energies, MeV.
    Returns:
        (R_C, R_T, p) broadcast to the common shape.
    """
    ln_e = np.log(np.asarray(energies_mev, dtype=np.float64) / 1e3)  # GFLASH fits ln E with E in GeV
    z = medium.z_eff
    tau = np.asarray(tau, dtype=np.float64)
    r_core = (0.0251 + 0.00319 * ln_e) + (0.1162 - 0.000381 * z) * tau
    k1, k2, k3, k4 = 0.659 - 0.00309 * z, 0.645, -2.59, 0.3585 + 0.0421 * ln_e
    r_tail = k1 * (np.exp(k3 * (tau - k2)) + np.exp(k4 * (tau - k2)))
    p1, p2, p3 = 2.632 - 0.00094 * z, 0.401 + 0.00187 * z, 1.313 - 0.0686 * ln_e
    x = (p2 - tau) / p3
    p_core = np.clip(p1 * np.exp(x - np.exp(x)), 0.0, 1.0)
    return r_core, r_tail, p_core


def radial_cdf(r_rm, r_core, r_tail, p_core):
    """Fraction of a layer's energy within radius r (in R_M): p r^2/(r^2+R_C^2) + (1-p) r^2/(r^2+R_T^2).

    The density 2 r R^2 / (r^2 + R^2)^2 of each component integrates to r^2 / (r^2 + R^2).
    All arguments broadcast together.
    """
    r2 = np.square(r_rm)
    return p_core * r2 / (r2 + np.square(r_core)) + (1.0 - p_core) * r2 / (r2 + np.square(r_tail))


def spot_count(energies_mev, sampling_term):
    """Mean number of energy spots in a sampling calorimeter, N = 10.3 / c E^0.959 (E in GeV).

    Args:
        energies_mev: incident energies, MeV.
        sampling_term: c, the stochastic term of the resolution in sqrt(GeV) (0.2 means 20%/sqrt(E)).
    """
    return 10.3 / sampling_term * np.power(np.asarray(energies_mev, dtype=np.float64) / 1e3, 0.959)
