"""Write what world revision learned: the new kinds as a library file, and the scene re-typed.

Both are data files of the scenario format, checked before they are written: a library file
(``types: {...}``) that a scene takes with ``use``, and a scene that ``crux validate`` and ``crux
session`` read.  No file is written over another without ``force``, and every path is checked
before anything is computed (:func:`check_output`), so a bad one costs nothing.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from crux.worldmodel.entities import library_path
from crux.worldmodel.errors import CruxError, ModelError
from crux.worldmodel.files import SCENARIO_SUFFIXES, plain_data, read_data, same_file, write_atomically
from crux.worldmodel.load import validate_data


def check_output(path: Path, option: str, *, force: bool, inputs: Sequence[tuple[Path, str, bool]] = ()) -> None:
    """Refuse an output path that cannot or must not be written, naming ``option`` and the fix.
    ``inputs`` are (path, what it is, whether ``force`` may replace it) of the files read."""
    where = f"{option} {path}"
    if path.is_dir():
        raise CruxError(f"{where}: is a folder: give a file name in it (e.g. {path / 'new_types.yaml'})")
    if path.suffix.lower() not in SCENARIO_SUFFIXES:
        raise CruxError(f"{where}: give a file name ending in {', '.join(SCENARIO_SUFFIXES)} (the format it is written in)")
    folder = path.parent
    if not folder.is_dir():
        raise CruxError(f"{where}: no such folder {folder}: give a path in a folder that exists")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CruxError(f"{where}: cannot write in {folder}: give a path in a folder you can write to")
    if path.exists() and not os.access(path, os.W_OK):
        raise CruxError(f"{where}: cannot write it (read-only): give another path")
    for other, what, replaceable in inputs:
        if same_file(path, other):
            if not replaceable:
                raise CruxError(f"{where}: is {what}: give another path")
            if not force:
                raise CruxError(f"{where}: is {what}: give another path, or --force to write over it")
    if path.exists() and not force:
        raise CruxError(f"{where}: exists; crux watch writes no file over another: give another path, or --force to replace it")


def write_library(path: Path, types: Mapping[str, dict], *, force: bool, note: str = "") -> None:
    """A library file holding ``types`` (``types: {name: type}``), as a scene's ``use`` reads it."""
    data = {"types": plain_data(dict(types))}
    _write(path, data, force=force, note=note)


def save_scene(path: Path, data: Mapping[str, Any], base_dir: Path, *, steps: int | None, force: bool, note: str = "") -> list[str]:
    """Write a scene read from ``base_dir`` to ``path``, its ``use`` files as seen from there.

    A library file that lies in the new folder or below it is named by its path from there; one
    that does not (a scene reads library files in its own folder or below only) has its types
    written into the scene's own ``types``.  The scene is validated as ``crux validate`` reads it
    and unrolled ``steps`` steps, as the watch did, before it is written.  Returns notes on what
    was inlined."""
    out = plain_data(copy.deepcopy(dict(data)))
    folder = path.parent.resolve()
    notes: list[str] = []
    use, own = [], dict(out.get("types") or {})
    for ref in out.get("use") or []:
        real = library_path(base_dir, ref)
        if isinstance(real, str):  # validated before the watch: cannot happen
            raise CruxError(f"use: {real}")
        relative = Path(os.path.relpath(real, folder))
        if relative.parts and relative.parts[0] != "..":
            use.append(relative.as_posix())
            continue
        library = plain_data(read_data(real, regular_only=True))
        for name, spec in (library.get("types") or {}).items():
            own.setdefault(name, spec)
        notes.append(f"{ref} lies outside {folder}: its types are written into the scene")
    if "use" in out:
        out["use"] = use
        if not use:
            del out["use"]
    if own:
        out["types"] = own
    for s in dict.fromkeys([None, steps]):
        scenario, problems = validate_data(out, base_dir=folder, steps=s)
        if scenario is None:  # a bug in crux watch, not in the user's file
            raise CruxError("the saved scene would not be valid (a bug in crux watch):\n" + ModelError(str(path), problems).args[0])
    _write(path, out, force=force, note=note)
    return notes


def _write(path: Path, data: dict[str, Any], *, force: bool, note: str) -> None:
    if path.suffix.lower() == ".json":
        text = json.dumps(data, indent=2) + "\n"
    else:
        head = "".join(f"# {line}\n" for line in note.splitlines())
        text = head + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=None, width=100)
    exists = f"{path}: exists; crux watch writes no file over another: give another path, or --force to replace it"
    write_atomically(path, text, replace=force, exists=exists)


