"""The normalizing flow's maths made testable (module 05): every block is invertible to float precision, its
log-determinant is log |det J| of the full Jacobian (autograd), splines never give NaN or inf, a trained 2-D
flow's density integrates to 1, and the one-to-one 'inn-ratios' representation has the log-Jacobian it claims."""

import math

import caloedu  # noqa: F401  (before keras: selects the torch backend)
import numpy as np
import pytest
import torch

from caloedu.data import CalorimeterGeometry, simulate_showers
from caloedu.data.geometry import DS2_THRESHOLD_MEV
from caloedu.data.shower_transforms import EmptyVoxelGap
from caloedu.data.representation import dequantize, make_representation
from caloedu.layers.coupling import (
    ActNorm,
    CouplingBlock,
    CouplingFlow,
    FixedPermutation,
    TwoStageFlow,
    affine_forward,
    affine_inverse,
    inverse_permutation,
    permute,
    standard_normal_log_prob,
)
from caloedu.layers.splines import rational_quadratic_spline

D = 6


def randomised(layer, scale=0.2, seed=0):
    """The layer with every weight drawn at random (a new coupling block is the identity: nothing to test).
    A scale of 0.2 gives derivatives of 0.1-10; far larger ones make a float32 inverse ill-conditioned (an
    error dy in y is dy / derivative in x), which no trained flow of showers comes near."""
    rng = np.random.default_rng(seed)
    for weight in layer.weights:
        weight.assign(rng.normal(0.0, scale, weight.shape).astype("float32"))
    return layer


def block(kind, seed=0):
    if kind == "actnorm":
        layer = ActNorm(D)
    elif kind == "permutation":
        layer = FixedPermutation(D, seed=3)
    else:
        layer = CouplingBlock(D, coupling=kind, units=16, n_layers=2, n_bins=5, bound=3.0)
    layer.build((None, D), (None, 1))
    return randomised(layer, seed=seed)


def inputs(n=64, seed=1):
    generator = torch.Generator().manual_seed(seed)
    # a spread of 2.5 puts some features beyond the spline's bound of 3: the identity tails are tested too
    return 2.5 * torch.randn(n, D, generator=generator), torch.rand(n, 1, generator=generator)


@pytest.mark.parametrize("kind", ["affine", "spline", "actnorm", "permutation"])
def test_inverse_of_forward_is_the_identity(kind):
    layer = block(kind)
    x, condition = inputs()
    y, log_det = layer(x, condition)
    x_again, log_det_inverse = layer(y, condition, inverse=True)
    assert torch.allclose(x_again, x, atol=2e-5, rtol=1e-5), f"{kind}: inverse(forward(x)) != x"
    assert torch.allclose(log_det + log_det_inverse, torch.zeros_like(log_det), atol=1e-4), \
        f"{kind}: the inverse's log-determinant must be minus the forward's"


@pytest.mark.parametrize("kind", ["affine", "spline", "actnorm", "permutation"])
def test_log_determinant_is_that_of_the_full_jacobian(kind):
    layer = block(kind)
    x, condition = inputs(n=4)
    _, log_det = layer(x, condition)
    for row in range(len(x)):
        jacobian = torch.autograd.functional.jacobian(lambda v: layer(v[None], condition[row:row + 1])[0][0], x[row])
        sign, log_abs = torch.linalg.slogdet(jacobian.double())
        if kind != "permutation":  # an odd permutation flips the orientation: |det| = 1 all the same
            assert sign.item() == 1.0, f"{kind} must be orientation-preserving (monotone)"
        assert log_det[row].item() == pytest.approx(log_abs.item(), abs=1e-4), f"{kind}, row {row}"


def check_whole_flow(flow):
    """A built flow with random weights inverts, its log-determinants add up to the full Jacobian's and its
    log_prob is log N(z) + log |det|; returns the Jacobian at the first input (D, D)."""
    randomised(flow)
    x, condition = inputs(n=8)
    z, log_det = flow(x, condition)
    x_again, log_det_inverse = flow.inverse(z, condition)
    assert torch.allclose(x_again, x, atol=5e-5, rtol=1e-5)
    assert torch.allclose(log_det, -log_det_inverse, atol=2e-4)
    jacobian = torch.autograd.functional.jacobian(lambda v: flow(v[None], condition[:1])[0][0], x[0])
    assert log_det[0].item() == pytest.approx(torch.linalg.slogdet(jacobian.double())[1].item(), abs=2e-4)
    assert torch.allclose(flow.log_prob(x, condition), standard_normal_log_prob(z) + log_det)
    return jacobian


def test_a_whole_flow_inverts_and_its_log_determinant_adds_up():
    flow = CouplingFlow(D, n_blocks=3, coupling="spline", units=16, n_layers=2, n_bins=5, bound=3.0)
    flow.build()
    check_whole_flow(flow)


def test_a_two_stage_flow_inverts_and_its_voxels_depend_on_the_scalars_not_the_reverse():
    small = dict(n_blocks=2, coupling="spline", units=16, n_layers=2, n_bins=5, bound=3.0)
    flow = TwoStageFlow(D, n_scalars=2, scalar_options=small, voxel_options=small)
    flow.build()
    jacobian = check_whole_flow(flow)
    assert torch.count_nonzero(jacobian[:2, 2:]) == 0, "the scalars' latents must not depend on the voxels"
    assert torch.count_nonzero(jacobian[2:, :2]) > 0, "the voxels' latents must depend on the scalars"


def test_spline_tails_are_the_identity_and_extremes_stay_finite():
    rng = np.random.default_rng(0)
    x = torch.tensor([[-1e6, -3.0, -2.999, 0.0, 2.999, 3.0, 1e6]], requires_grad=True)
    for scale in (0.0, 1.0, 60.0):  # 60: unnormalised parameters far out in softmax and softplus
        parameters = torch.tensor(scale * rng.normal(size=(1, 7, 14)), dtype=torch.float32, requires_grad=True)
        for inverse in (False, True):
            y, log_derivative = rational_quadratic_spline(x, parameters, bound=3.0, inverse=inverse)
            (y.sum() + log_derivative.sum()).backward()
            for name, value in (("y", y), ("log-derivative", log_derivative), ("x grad", x.grad),
                                ("parameter grad", parameters.grad)):
                assert torch.all(torch.isfinite(value)), f"{name} not finite (scale {scale}, inverse {inverse})"
            assert y[0, 0].item() == -1e6 and y[0, -1].item() == 1e6 and log_derivative[0, 0].item() == 0.0
            assert abs(y[0, 1].item() + 3.0) < 1e-5 and abs(y[0, 5].item() - 3.0) < 1e-5, "the knots meet the tails"
            x.grad, parameters.grad = None, None


def test_zero_parameters_give_the_identity_so_a_new_flow_starts_at_its_data():
    flow = CouplingFlow(D, n_blocks=2, coupling="spline", units=8, n_layers=1)
    flow.build()
    x, condition = inputs()
    z, log_det = flow(x, condition)
    assert torch.allclose(z, permute(permute(x, flow.steps[1].permutation), flow.steps[3].permutation), atol=1e-5)
    assert torch.allclose(log_det, torch.zeros_like(log_det), atol=1e-5)


def test_the_affine_pieces():
    x2, log_scale, shift = torch.randn(5, 3), torch.randn(5, 3), torch.randn(5, 3)
    y2, log_det = affine_forward(x2, log_scale, shift)
    assert torch.allclose(y2, x2 * torch.exp(log_scale) + shift) and torch.allclose(log_det, log_scale.sum(1))
    x_again, log_det_inverse = affine_inverse(y2, log_scale, shift)
    assert torch.allclose(x_again, x2, atol=1e-5) and torch.allclose(log_det_inverse, -log_det)
    z = torch.zeros(1, 4)
    assert standard_normal_log_prob(z).item() == pytest.approx(-2 * math.log(2 * math.pi))
    p = np.random.default_rng(0).permutation(9)
    v = torch.arange(9.0)[None]
    assert torch.equal(permute(permute(v, p), inverse_permutation(p)), v)


def ring(n, rng):
    """The 2-D ring of 8 Gaussians of modules 05 and 06 (radius 2, width 0.15)."""
    angles = 2 * np.pi * rng.integers(8, size=n) / 8
    return np.stack([2 * np.cos(angles), 2 * np.sin(angles)], 1) + 0.15 * rng.normal(size=(n, 2))


def test_a_trained_2d_flow_is_a_normalised_density():
    torch.manual_seed(0)
    flow = CouplingFlow(2, n_blocks=4, coupling="spline", units=32, n_layers=2, n_bins=8, bound=4.0)
    flow.build()
    optimizer = torch.optim.Adam([w.value for w in flow.trainable_weights], lr=3e-3)
    rng = np.random.default_rng(0)
    condition = torch.zeros(256, 1)
    for _ in range(300):
        x = torch.tensor(ring(256, rng), dtype=torch.float32)
        loss = -flow.log_prob(x, condition).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 1.5, f"the flow did not learn the ring (NLL {loss.item():.2f} nats)"
    step = 0.02
    axis = torch.arange(-6.0, 6.0, step) + step / 2
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():
        density = torch.cat([flow.log_prob(part, torch.zeros(len(part), 1)).exp() for part in grid.split(40_000)])
    total = density.sum().item() * step**2
    assert total == pytest.approx(1.0, abs=0.01), f"the learned density integrates to {total:.4f}"


def small_geometry():
    return CalorimeterGeometry([[0, 1, 3], [0, 2, 5, 9], [0, 4]], n_alpha=[2, 1, 3], name="small")


@pytest.mark.parametrize("recipe", ["inn-ratios", "inn-gap"])
def test_one_to_one_ratios_round_trip_and_drop_one_share_per_layer(recipe):
    geometry = CalorimeterGeometry.preset("teaching")
    energies, showers = simulate_showers(geometry, 200, seed=0)
    dequantized = dequantize(showers, DS2_THRESHOLD_MEV, np.random.default_rng(0))
    representation = make_representation(recipe, geometry).fit(energies, dequantized)
    assert representation.has_density and representation.layout.n_features == geometry.n_voxels
    x = representation.forward(energies, dequantized)
    assert x.shape == (200, geometry.n_voxels) and np.all(np.isfinite(x))
    # in float64 the map is one to one; the float32 features keep every hit (an empty left-out share is what
    # the others leave, a difference of nearly equal numbers, so only its value below threshold is lost)
    np.testing.assert_allclose(representation.transform.inverse(representation.transform.forward(
        dequantized, energies), energies), dequantized, rtol=1e-6)
    again = representation.inverse(energies, x)
    hit = showers > 0
    np.testing.assert_allclose(again[hit], dequantized[hit], rtol=2e-3, atol=1e-4)
    assert np.all(again[~hit] < DS2_THRESHOLD_MEV), "an empty voxel came back as a hit"


@pytest.mark.parametrize("recipe", ["inn-ratios", "inn-gap"])
def test_one_to_one_ratios_log_jacobian_equals_the_numerical_one(recipe):
    geometry = small_geometry()
    rng = np.random.default_rng(0)
    energies = np.array([[2e3], [5e4]])
    showers = rng.uniform(0.01, 1.0, size=(2, geometry.n_voxels)) * energies / geometry.n_voxels
    showers[:, ::3] = rng.uniform(0.1, 0.9, size=showers[:, ::3].shape) * DS2_THRESHOLD_MEV  # empty (dequantised)
    representation = make_representation(recipe, geometry).fit(energies, showers)
    claimed = representation.log_det_jacobian(energies, showers)
    for row in range(2):
        def features(values):
            return representation.transform.forward(values[None], energies[row:row + 1])[0]

        step = 1e-7 * showers[row]
        jacobian = np.stack([(features(showers[row] + np.eye(geometry.n_voxels)[i] * step[i])
                              - features(showers[row] - np.eye(geometry.n_voxels)[i] * step[i])) / (2 * step[i])
                             for i in range(geometry.n_voxels)], axis=1)
        assert claimed[row] == pytest.approx(np.linalg.slogdet(jacobian)[1], abs=1e-4)


def test_inn_gap_moves_empty_voxels_below_the_gap_and_refuses_exact_zeros():
    geometry = CalorimeterGeometry.preset("teaching")
    energies, showers = simulate_showers(geometry, 50, seed=1)
    with pytest.raises(ValueError, match="dequantise"):
        make_representation("inn-gap", geometry).fit(energies, showers)
    gap = EmptyVoxelGap(DS2_THRESHOLD_MEV, gap=3.0)
    values = np.array([[0.2, 0.999, 1.0, 5.0]]) * DS2_THRESHOLD_MEV
    moved = gap.forward(values)
    np.testing.assert_allclose(moved, values * [[np.exp(-3), np.exp(-3), 1, 1]])
    np.testing.assert_allclose(gap.inverse(moved), values)
    # a value in the gap (between E_thr e^-3 and E_thr) is no shower's image: it reads as empty
    assert np.all(gap.inverse(np.array([[0.1, 0.5, 0.99]]) * DS2_THRESHOLD_MEV) < DS2_THRESHOLD_MEV)
    assert gap.log_det_jacobian(values)[0] == pytest.approx(-6.0)
