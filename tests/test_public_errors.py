"""Every error the four packages export survives pickle, as process pools and pytest-xdist move them.

The errors are found from each package's ``__all__``, so an error added later is checked too; one whose
``__init__`` takes arguments of its own must be given an example below, or this test fails naming it.
"""

from __future__ import annotations

import errno
import pickle
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest

import symphony_core
import symphony_instruments
import symphony_motifs
import symphony_operators
from symphony_core import ErrorDetail, GuardDenied, SymphonyError
from symphony_instruments import EndpointError, ModelHashMismatch
from symphony_operators import BadData, Mismatch, SchemaMismatch

PACKAGES = (symphony_core, symphony_instruments, symphony_operators, symphony_motifs)
SHA_A, SHA_B = "a" * 64, "b" * 64

# Errors whose __init__ takes arguments of their own, as their packages raise them.
EXAMPLES: dict[type[BaseException], Callable[[], BaseException]] = {
    ModelHashMismatch: lambda: ModelHashMismatch(
        "/models/digits.onnx", SHA_A, SHA_B, extension="acme.digits"
    ),
    EndpointError: lambda: EndpointError(
        "http://models.internal:8000/v2/models/acme.digits/infer",
        "it answered 502 Bad Gateway",
        status=502,
        extension="acme.remote-digits",
        hint="check the endpoint",
    ),
    SchemaMismatch: lambda: SchemaMismatch(
        [
            Mismatch("acme.totals", "input", "amount", "Float64", None, where="orders.csv"),
            Mismatch("acme.totals", "output", "total", "Float64", "String"),
        ],
        pipeline="orders",
    ),
    BadData: lambda: BadData(
        "column 'amount' holds 'n/a', not a Float64",
        file="orders.csv",
        column="amount",
        operator="acme.totals",
        hint="clean the file",
    ),
}


def exported_errors() -> list[type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for package in PACKAGES:
        for name in package.__all__:
            value = getattr(package, name)
            if isinstance(value, type) and issubclass(value, BaseException):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return [found[name] for name in sorted(found)]


def example(cls: type[BaseException]) -> BaseException:
    """``cls`` as raised, with every piece of its data set."""
    if cls in EXAMPLES:
        return EXAMPLES[cls]()
    try:
        error = cls(
            "could not do what was asked",
            extension="acme.example",
            hint="do this instead",
            problems=[ErrorDetail("batching.max_queue", "must be at least 1", "greater_than_equal")],
        )
    except TypeError:
        try:
            error = cls("could not do what was asked", extension="acme.example", hint="do this instead")
        except TypeError as exc:
            pytest.fail(f"{cls.__qualname__} takes arguments of its own: add an example to EXAMPLES ({exc})")
    assert isinstance(error, SymphonyError), f"{cls.__qualname__} is exported but is no SymphonyError"
    for position, name in enumerate(type(error).data_fields if hasattr(type(error), "data_fields") else ()):
        if getattr(error, name, None) is None:
            setattr(error, name, f"value {position}")
    if isinstance(error, OSError):
        error.errno = errno.EACCES
    return error


def same(restored: BaseException, error: BaseException) -> None:
    assert type(restored) is type(error)
    assert restored.args == error.args
    assert str(restored) == str(error)
    if isinstance(error, SymphonyError):
        assert isinstance(restored, SymphonyError)
        assert (restored.summary, restored.extension, restored.hint) == (
            error.summary,
            error.extension,
            error.hint,
        )
        assert restored.problems == error.problems
        assert restored.message == error.message
        assert restored.data() == error.data()
    if isinstance(error, OSError):
        assert isinstance(restored, OSError)
        assert restored.errno == error.errno


def test_the_packages_export_errors_with_data_of_their_own() -> None:
    errors = exported_errors()

    assert {ModelHashMismatch, SchemaMismatch, BadData, GuardDenied} <= set(errors)
    assert len(errors) >= 30


@pytest.mark.parametrize("cls", exported_errors(), ids=lambda cls: cls.__qualname__)
def test_every_exported_error_round_trips_through_pickle(cls: type[BaseException]) -> None:
    error = example(cls)

    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        same(pickle.loads(pickle.dumps(error, protocol)), error)


def _raise(name: str) -> Any:
    """Run in a pool's worker process: raise the example of the error named ``name``."""
    (cls,) = [cls for cls in exported_errors() if cls.__qualname__ == name]
    raise example(cls)


@pytest.mark.parametrize(
    "cls", [ModelHashMismatch, SchemaMismatch, GuardDenied], ids=lambda cls: cls.__name__
)
def test_an_error_raised_in_a_process_pool_reaches_the_caller_as_itself(cls: type[BaseException]) -> None:
    with ProcessPoolExecutor(max_workers=1) as pool:
        future = pool.submit(_raise, cls.__qualname__)
        with pytest.raises(cls) as caught:
            future.result(timeout=120)

    same(caught.value, example(cls))
