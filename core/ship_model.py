"""Old home of the served model class: kept because exported models name it.

MLflow pickles an exported model's ``python_model`` (cloudpickle, by module path), so each model exported before
core was arranged in rooms holds ``core.ship_model.StudioProgram``; loading one where this core is imported
resolves that name here. New exports name :mod:`core.ship.pyfunc`. Nothing in core imports this module.
"""

import warnings

with warnings.catch_warnings():  # MLflow asks for type hints on predict, as in core.ship.register
    warnings.filterwarnings("ignore", message=".*type hints.*", category=UserWarning)
    from core.ship.pyfunc import StudioProgram as StudioProgram
