"""Budgets the model loaders check before they read or build anything large.

A model file is small, but what it describes need not be: a table over thirty
two-state parents is a billion rows, a ``.bif.gz`` of two megabytes can expand
to two gigabytes, a scene unrolled over a stream whose last ``t`` is a billion
has billions of variables.  The loaders compute each size from the numbers
they have already read (file sizes, cardinalities, entities x attributes x
steps) and refuse past these limits, with an error that names the limit,
before they list, allocate or unroll anything.

Each limit is a module constant (its default); the environment variable
``CRUX_<NAME>`` (e.g. ``CRUX_MAX_TABLE_NUMBERS=20000000``) raises or lowers it
for one run, for a machine that has the memory a larger model needs.
"""

from __future__ import annotations

import os

from crux.worldmodel.errors import CruxError

MAX_FILE_BYTES = 50_000_000
"""A scenario (YAML, JSON), a library file it ``use``s, or a BIF network: at most this many bytes
on disk (50 MB); checked from the file's size before it is read, and again while reading."""

MAX_DECOMPRESSED_BYTES = 50_000_000
"""A ``.bif.gz`` network: at most this many bytes once decompressed (50 MB).  The stream is read
in bounded chunks and stops past the limit, so a small archive that expands to gigabytes costs
no more than this."""

MAX_NESTING = 64
"""Lists and mappings inside one another in a scenario file: at most this many levels (a
scenario needs about eight).  Deeper files are refused while they are parsed, before Python's
recursion limit turns them into an internal error."""

MAX_VALUES = 20_000_000
"""Values (numbers, strings, lists, mappings) in a scenario file once YAML aliases are expanded:
a few lines of anchors and aliases can stand for billions of values."""

MAX_TABLE_NUMBERS = 4_000_000
"""One variable's table: at most this many numbers (rows x states; rows = the product of its
parents' state counts), computed from the cardinalities before any row is listed."""

MAX_MODEL_NUMBERS = 16_000_000
"""All the tables of one model together (a scenario, a grounded scene, a BIF network): at most
this many numbers, 128 MB as the float64 tensors of one party's beliefs."""

MAX_SCENE_VARIABLES = 100_000
"""A grounded scene: at most this many variables, counted as entities x attributes x (steps + 1)
for the attributes that change over time, before anything is built.  ``crux ask --steps N`` and
``crux watch`` (whose stream's largest ``t`` sets the steps) unroll a scene."""

NAMES = (
    "MAX_FILE_BYTES",
    "MAX_DECOMPRESSED_BYTES",
    "MAX_NESTING",
    "MAX_VALUES",
    "MAX_TABLE_NUMBERS",
    "MAX_MODEL_NUMBERS",
    "MAX_SCENE_VARIABLES",
)


def limit(name: str) -> int:
    """The limit in force: ``CRUX_<name>`` from the environment when set, else the default."""
    default = globals()[name]
    raw = os.environ.get(f"CRUX_{name}")
    if raw is None or not raw.strip():
        return default
    text = raw.strip().replace("_", "")
    if not text.isascii() or not text.isdigit() or int(text) <= 0:
        raise CruxError(f"CRUX_{name}={raw!r}: give a positive whole number (the default is {default:,})")
    return int(text)


def note(name: str) -> str:
    """``(MAX_TABLE_NUMBERS; set CRUX_MAX_TABLE_NUMBERS to raise it)``: which limit, and how to raise it."""
    return f"({name}; set CRUX_{name} to raise it)"


def over(name: str) -> str:
    """``over the limit of 4,000,000 (MAX_TABLE_NUMBERS; set CRUX_MAX_TABLE_NUMBERS to raise it)``."""
    return f"over the limit of {limit(name):,} {note(name)}"
