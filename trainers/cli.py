"""Helpers shared by the command-line tools: parsing flag values and reporting user errors
the same way everywhere."""

from __future__ import annotations

import sys
from typing import NoReturn

from absl import logging


class CommandError(Exception):
    """A user error found by a command (a missing flag, an unreadable file, a bad value): its
    ``main`` passes it to :func:`fail`, so it is printed without a traceback."""


def fail(command: str, error) -> NoReturn:
    """Reports a user error (bad flag value, missing or unreadable file) the one way every
    tool does: ``COMMAND: error: MESSAGE`` on stderr, no traceback, exit status 1."""
    print(f"{command}: error: {error}", file=sys.stderr)
    sys.exit(1)


def parse_range(flag: str, text, positive: bool = True, allow_equal: bool = False) -> tuple[float, float]:
    """Parses ``"LO,HI"`` (or the list ``["LO", "HI"]`` of a list flag) given to ``flag``
    (e.g. ``--lambda_range``). ``allow_equal`` accepts LO = HI (a map range: one value
    everywhere).

    Raises:
      ValueError: naming the flag and the expected form: not two numbers, LO > HI, LO = HI
        (unless ``allow_equal``), or (with ``positive``) LO <= 0.
    """
    if not isinstance(text, str):
        text = ",".join(str(part) for part in text)
    parts = [part.strip() for part in text.split(",")]
    try:
        low, high = (float(part) for part in parts)
    except ValueError:
        raise ValueError(f"{flag} must be LO,HI (two numbers), got {text!r}.") from None
    if low > high or (low == high and not allow_equal) or (positive and low <= 0):
        order = "LO <= HI" if allow_equal else "LO < HI"
        bound = f"0 < {order}" if positive else order
        raise ValueError(f"{flag} needs {bound}, got {text!r}.")
    return low, high


def load_initial_network(flag_values, architecture_flags, resume_model: str | None = None,
                         network_class: type | None = None) -> tuple[str, object] | None:
    """``(path, network)`` of a trainer's ``--init_from`` (a shipped name, a ``.keras`` file or
    a run directory), or None when the flag is unset.

    ``resume_model``: the run's own ``model.keras`` when the run will resume from its
    checkpoints (see ``trainers.run_files.resumable_model``). Such a run needs --init_from's network only
    for its architecture: if the name no longer resolves (a shipped model since retired, a
    moved file), ``resume_model`` (the same architecture) is used instead, with a warning, so
    the run stays resumable. ``network_class``: the class the network must be an instance of
    (None: any).

    Raises:
      ValueError: one of ``architecture_flags`` given beside it (the file fixes them), a
        model that does not exist or does not load (the message names it) for a run that
        cannot resume without it, or a network of another class than ``network_class``.
    """
    from yoto_tf import pretrained  # pylint: disable=import-outside-toplevel

    if flag_values.init_from is None:
        return None
    given = [f"--{name}" for name in architecture_flags
             if flag_values[name].present or flag_values[name].value != flag_values[name].default]
    if given:
        raise ValueError(f"--init_from takes the architecture of {flag_values.init_from!r}; "
                         f"remove {', '.join(given)}")
    try:
        path = pretrained.resolve_model_path(flag_values.init_from)
    except (OSError, ValueError) as error:
        if resume_model is None:
            raise ValueError(f"--init_from: {error}") from None
        logging.warning("--init_from: %s; the run resumes from its checkpoints, so it takes the "
                        "architecture from its own %s instead", error, resume_model)
        path = resume_model
    try:
        network = pretrained.load_network(path)
    except (OSError, ValueError) as error:
        raise ValueError(f"--init_from: {error}") from None
    if network_class is not None and not isinstance(network, network_class):
        raise ValueError(f"--init_from: {path} holds a {type(network).__name__}, not a {network_class.__name__}")
    return path, network


def run_app(main, module_name: str, **kwargs) -> None:
    """``absl.app.run(main, **kwargs)`` for ``python -m MODULE`` and for a console-script
    entry point (``yoto-...``) alike.

    absl's ``--help`` shows the ``__main__`` module's docstring and the key flags of the
    script named by ``sys.argv[0]``; under an entry point that script is the ``yoto-...``
    wrapper, so this lends it the docstring and the key flags of ``module_name``.
    """
    from absl import app, flags  # pylint: disable=import-outside-toplevel

    main_module = sys.modules["__main__"]
    module = sys.modules.get(module_name)
    if module_name != "__main__" and module is not None and module is not main_module:
        if not main_module.__doc__:
            main_module.__doc__ = module.__doc__
        script = sys.argv[0]
        for flag in flags.FLAGS.get_key_flags_for_module(module_name):
            flags.FLAGS.register_key_flag_for_module(script, flag)
    app.run(main, **kwargs)
