"""``symphony call``: a host user tries an installed extension from the shell, without writing Python."""

from __future__ import annotations

import json

import pytest

GREETER = "acme.call-greeter"
RAISES = "acme.call-raises"

CODE = """
from dataclasses import dataclass

import msgspec

from symphony_core import Extension


@dataclass
class Totals:
    count: int
    names: list


class Tally(msgspec.Struct):
    count: int
    names: list


class Ext(Extension):
    def greet(self, name, punctuation="!"):
        return f"hello {name}{punctuation}"

    def totals(self, names):
        return Totals(len(names), sorted(names))

    def tally(self, names):
        return Tally(len(names), sorted(names))

    def explode(self):
        raise ValueError("no input file given")
"""


@pytest.fixture(scope="module", autouse=True)
def installed(venv, make, tmp_path_factory):
    projects = [make.extension(GREETER, code=CODE), make.extension(RAISES, code=CODE)]
    venv.install(tmp_path_factory.mktemp("call-projects"), *projects)
    yield
    venv.uninstall(*(project.name for project in projects))


def test_a_method_is_called_with_json_arguments_and_its_answer_printed_as_json(venv, home):
    greeted = venv.symphony(home, "call", GREETER, "greet", '"Ada"', "--kwargs", '{"punctuation": "?"}')
    plain_text = venv.symphony(home, "call", GREETER, "greet", "Grace")
    totals = venv.symphony(home, "call", GREETER, "totals", '["b", "a", "c"]')
    tally = venv.symphony(home, "call", GREETER, "tally", '["b", "a"]')

    assert (greeted.returncode, json.loads(greeted.stdout)) == (0, "hello Ada?"), greeted.stderr
    assert json.loads(plain_text.stdout) == "hello Grace!", "an argument that is not JSON is its text"
    assert json.loads(totals.stdout) == {"count": 3, "names": ["a", "b", "c"]}, (
        "a dataclass prints as its fields"
    )
    assert json.loads(tally.stdout) == {"count": 2, "names": ["a", "b"]}, "so does a msgspec struct"


def test_a_trusted_extension_called_in_the_hosts_process_prints_its_structs_as_their_fields(venv, home):
    # trusted, it runs in the host's process: its answer reaches the printer as the object it returned
    home.mkdir(parents=True, exist_ok=True)
    (home / "policy.toml").write_text('[[trust]]\ndistribution = "acme-call-greeter"\n', encoding="utf-8")

    totals = venv.symphony(home, "call", GREETER, "totals", '["b", "a"]')
    tally = venv.symphony(home, "call", GREETER, "tally", '["b", "a"]')

    assert json.loads(totals.stdout) == {"count": 2, "names": ["a", "b"]}, totals.stderr
    assert json.loads(tally.stdout) == {"count": 2, "names": ["a", "b"]}, tally.stderr


def test_what_a_method_raises_is_one_line_and_exit_1(venv, home):
    result = venv.symphony(home, "call", RAISES, "explode")

    assert result.returncode == 1
    assert "ValueError" in result.stderr
    assert "no input file given" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "code", "said"),
    [
        (["acme.nobody", "greet"], 1, "acme.nobody"),
        ([GREETER, "no_such_method"], 1, "no_such_method"),
        ([GREETER, "greet", "x", "--kwargs", "{not json"], 2, "--kwargs"),
        ([GREETER, "greet", "x", "--kwargs", "[1, 2]"], 2, "must be a JSON object"),
    ],
    ids=["unknown extension", "unknown method", "kwargs not json", "kwargs not an object"],
)
def test_bad_input_is_named_with_what_to_do(venv, home, args, code, said):
    result = venv.symphony(home, "call", *args)

    assert result.returncode == code, result.stdout + result.stderr
    assert said in result.stderr
    assert "Traceback" not in result.stderr
