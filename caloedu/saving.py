"""``caloedu.load_model``: load any caloedu ``.keras`` file (a generator, a Transformer, a layer).

Keras finds a custom class at load time only if the module that registers it has been imported. A
student who trains with ``caloedu train`` and then runs ``import caloedu, keras;
keras.saving.load_model("model.keras")`` would get "Could not locate class 'FlowMatchingGenerator'"
followed by the whole config. This function imports every registering module first, and says plainly
when the file is missing or is not a ``.keras`` archive.
"""

import os
import zipfile


def load_model(path, **kwargs):
    """Load a model saved with ``model.save("....keras")``; ``kwargs`` go to `keras.saving.load_model`.

    Raises:
        FileNotFoundError: nothing at ``path``.
        ValueError: the file is not a Keras 3 ``.keras`` archive (a ``.h5`` shower file, say).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No model file at {path}.")
    if not path.endswith(".keras") or not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a Keras 3 .keras model file (those are zip archives named *.keras, "
                         f"written by model.save('name.keras') or `caloedu train -o name.keras`).")
    import keras

    # Imported for their side effect: each registers its classes with Keras' serialisation.
    import caloedu.layers  # noqa: F401
    import caloedu.models  # noqa: F401
    from caloedu.generators.registry import family_names, get_family

    for name in family_names():
        get_family(name)

    try:
        return keras.saving.load_model(path, **kwargs)
    except ValueError as err:  # a caloedu class refusing its stored config: a file of another caloedu version
        reason = (str(err).splitlines() or [""])[0][:300]  # Keras appends whole configs and weight lists
        raise ValueError(f"{path} does not fit this version of caloedu ({reason}); train the model again.") from err
