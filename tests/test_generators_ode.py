"""The ODE solvers converge at their order on a field with a known solution."""

import numpy as np
import pytest

from caloedu.generators.ode import SOLVERS, integrate

RATE = 1.3  # dx/dt = RATE x: from t = 1 to t = 0, x(0) = x(1) exp(-RATE)


def linear_velocity(x, t):
    return RATE * x


def final_error(solver, steps):
    x1 = np.array([[1.0, -2.0, 0.5]])
    exact = x1 * np.exp(-RATE)
    return np.abs(integrate(linear_velocity, x1, steps, solver) - exact).max()


@pytest.mark.parametrize("solver, order", [("euler", 1), ("midpoint", 2), ("rk4", 4)])
def test_solver_error_falls_with_its_order(solver, order):
    # Doubling the steps divides the global error by about 2^order.
    ratio = final_error(solver, 20) / final_error(solver, 40)
    assert ratio == pytest.approx(2**order, rel=0.15), f"{solver}: error ratio {ratio:.2f}, expected ~{2**order}"


def test_rk4_is_far_more_accurate_than_euler_at_equal_steps():
    assert final_error("rk4", 10) < 1e-3 * final_error("euler", 10)


def test_time_dependent_field_is_integrated_backwards_in_time():
    # dx/dt = t: x(0) = x(1) - 1/2 exactly, which midpoint and RK4 reproduce to rounding.
    for solver in ("midpoint", "rk4"):
        out = integrate(lambda x, t: np.full_like(x, t), np.ones((2, 1)), 7, solver)
        np.testing.assert_allclose(out, 0.5, atol=1e-12)


def test_unknown_solver_and_bad_steps_are_refused():
    with pytest.raises(ValueError, match="Unknown ODE solver"):
        integrate(linear_velocity, np.ones(2), 5, solver="heun")
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        integrate(linear_velocity, np.ones(2), steps=0)
    assert set(SOLVERS) == {"euler", "midpoint", "rk4"}


def test_the_path_holds_every_step_forwards_or_backwards_in_time():
    x1 = np.array([[1.0, 2.0]])
    path = integrate(linear_velocity, x1, 4, "euler", return_path=True)
    assert path.shape == (5, 1, 2)
    np.testing.assert_array_equal(path[0], x1)
    np.testing.assert_allclose(path[-1], integrate(linear_velocity, x1, 4, "euler"))
    forward = integrate(linear_velocity, x1 * np.exp(-RATE), 200, "rk4", t_start=0.0, t_end=1.0)
    np.testing.assert_allclose(forward, x1, rtol=1e-8)
