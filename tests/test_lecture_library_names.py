"""Lecture and library never drift: a function a lecture or an exercise builds by hand under the name of a caloedu
function has the same parameters (the library may add optional ones at the end), so "what you built equals
caloedu's" holds for the signature too, and students can swap one for the other."""

import ast
import importlib
import inspect
import pkgutil

import caloedu  # noqa: F401  (before keras: selects the torch backend)
import nbformat
import pytest
from conftest import REPO_ROOT

NOTEBOOKS = sorted(REPO_ROOT.glob("lectures/*.ipynb")) + sorted(REPO_ROOT.glob("solutions/*/*.ipynb"))
SKIP_MODULES = ("caloedu.cli", "caloedu.bench")  # commands, not the library a lecture builds


def library_functions():
    """{name: [callables]} of every public function of caloedu's library modules."""
    found = {}
    for info in pkgutil.walk_packages(caloedu.__path__, "caloedu."):
        if info.name.startswith(SKIP_MODULES):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if not name.startswith("_") and inspect.isfunction(value) and value.__module__.startswith("caloedu"):
                found.setdefault(name, []).append(value)
    return found


LIBRARY = library_functions()


def hand_built_functions(path):
    """(name, parameter names) of every top-level def in the notebook's code cells."""
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:  # IPython magics
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                yield node.name, [a.arg for a in node.args.args]


def fits(parameters, function):
    """The notebook's parameters are the library's first ones, and the library's others are optional."""
    library = list(inspect.signature(function).parameters.values())
    if [p.name for p in library[:len(parameters)]] != parameters:
        return False
    return all(p.default is not inspect.Parameter.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
               for p in library[len(parameters):])


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_hand_built_functions_have_their_library_twins_signature(notebook):
    drifted = []
    for name, parameters in hand_built_functions(notebook):
        twins = LIBRARY.get(name, [])
        if twins and not any(fits(parameters, twin) for twin in twins):
            library = ", ".join(f"{twin.__module__}.{name}{inspect.signature(twin)}" for twin in twins)
            drifted.append(f"{name}({', '.join(parameters)}) vs {library}")
    assert not drifted, f"{notebook.name} builds functions under caloedu's names with other parameters: {drifted}"


def test_the_lectures_name_the_pieces_the_library_holds():
    # The pairs the lectures and exercises say are equal; a rename on either side must show here.
    for name in ("cfm_loss", "integrate", "euler_step", "rk4_step", "fourier_features", "energy_ratios",
                 "layer_energies_from_ratios", "separation_power_from_counts", "centre_and_width",
                 "sample_longitudinal_parameters", "longitudinal_layer_fractions", "scaled_dot_product_attention",
                 "sinusoidal_encoding", "affine_forward", "affine_inverse", "standard_normal_log_prob", "permute",
                 "inverse_permutation", "conditional_coupling_forward", "wasserstein_critic_loss",
                 "wasserstein_generator_loss", "interpolate", "gradient_penalty", "feature_matching_loss",
                 "response_matching_loss", "masked_mean", "mean_field_pooling", "masked_attention_pooling",
                 "reparameterize", "gaussian_kl", "diagonal_normal_log_prob", "negative_elbo",
                 "importance_weighted_bound"):
        assert name in LIBRARY, f"caloedu has no function {name} any more, but a notebook says it does"
        assert any(name in dict(hand_built_functions(path)) for path in NOTEBOOKS), f"no notebook builds {name}"
