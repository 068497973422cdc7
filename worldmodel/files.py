"""Read data files: bytes and text within the loaders' limits, and YAML or JSON as plain data.

The one place the loaders open a file: a missing, unreadable or too large file is one clear
:class:`~worldmodel.errors.CruxError`, a syntax error one :class:`~worldmodel.errors.ModelError`,
and parsed data is checked against the limits on nesting and size before anything reads it.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from crux.worldmodel.errors import CruxError, ModelError, PathPart, Problem, short
from crux.worldmodel.jsontext import loads as strict_json
from crux.worldmodel.limits import limit, note, over
from crux.worldmodel.spec import YamlBoolean

SCENARIO_SUFFIXES = (".yaml", ".yml", ".json")


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but a repeated key is an error instead of silently winning.

    The pure-Python parser, not libyaml's: slower on huge scenes (about 3x), but its syntax
    errors say what was expected and what was found, and they are the same on every machine.

    Two guards for hostile files: nesting deeper than ``MAX_NESTING`` is refused while the file
    is composed (before Python's recursion limit is reached), and a scalar that a constructor
    cannot turn into its value (``2001-13-45``, an integer of 5,000 digits) is a YAML error at
    its line instead of a bare ``ValueError``."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth, self._max_depth = 0, limit("MAX_NESTING")

    def compose_node(self, parent, index):  # type: ignore[override]
        self._depth += 1
        try:
            if self._depth > self._max_depth and self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent):
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {self._max_depth} levels deep {note('MAX_NESTING')}", self.peek_event().start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node, deep=False):  # type: ignore[override]
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError) as err:
            text = short(node.value) if isinstance(node, yaml.ScalarNode) else f"this {node.id}"
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {text} as {node.tag.rsplit(':', 1)[-1]}: {_first_line(err)}", node.start_mark
            ) from None


def _first_line(err: BaseException) -> str:
    text = str(err).split("\n", 1)[0]
    return text.split(";", 1)[0] if "integer string conversion" in text else text


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    mapping: dict = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value", key_node.start_mark
            ) from None
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                None, None, f"the key {key!r} is given twice in one mapping: give each key once", key_node.start_mark
            )
        mapping[key] = loader.construct_object(value_node, deep=deep)
    return mapping


def _construct_boolean(loader: _UniqueKeyLoader, node: yaml.ScalarNode) -> YamlBoolean:
    return YamlBoolean(loader.construct_scalar(node))


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:bool", _construct_boolean)


def read_bytes(path: str | Path, kind: str, *, limit_name: str | None = "MAX_FILE_BYTES", regular_only: bool = False) -> bytes:
    """A file's bytes; a missing, unreadable or too large file is one clear error.

    ``limit_name`` names the limit of :mod:`worldmodel.limits` on its size (checked from the
    file's size before reading, and while reading, for pipes and files that grow); None reads
    any size.  ``regular_only`` refuses anything but a regular file (a named pipe, a device)
    without blocking on it: the file is opened non-blocking and checked before it is read."""
    path = Path(path)
    flags = os.O_RDONLY | (getattr(os, "O_NONBLOCK", 0) if regular_only else 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise CruxError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CruxError(f"{path}: is a directory, not {kind}") from None
    except OSError as err:
        raise CruxError(f"{path}: cannot read: {err}") from None
    info = os.fstat(fd)
    try:
        if stat.S_ISDIR(info.st_mode):
            raise CruxError(f"{path}: is a directory, not {kind}")
        if regular_only and not stat.S_ISREG(info.st_mode):
            raise CruxError(f"{path}: is not a regular file (a pipe, a device or a socket), not {kind}")
        cap = limit(limit_name) if limit_name else None
        if cap is not None and stat.S_ISREG(info.st_mode) and info.st_size > cap:
            raise CruxError(f"{path}: is {info.st_size:,} bytes, {over(limit_name)}")
    except CruxError:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb", buffering=0) as f:
        chunks, total = [], 0
        try:
            while chunk := f.read(1 << 20):
                total += len(chunk)
                if cap is not None and total > cap:
                    raise CruxError(f"{path}: is more than {cap:,} bytes, {over(limit_name)}")
                chunks.append(chunk)
        except OSError as err:
            raise CruxError(f"{path}: cannot read: {err}") from None
    return b"".join(chunks)


def read_text(path: str | Path, kind: str, encoding: str = "utf-8", *, limit_name: str | None = None, regular_only: bool = False) -> str:
    """A text file's content (newlines as ``\\n``); a missing, unreadable or undecodable file is one
    clear error.  ``limit_name`` and ``regular_only`` as for :func:`read_bytes` (no size limit
    unless one is named: this also reads data files)."""
    raw = read_bytes(path, kind, limit_name=limit_name, regular_only=regular_only)
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as err:
        raise CruxError(f"{path}: cannot read: {err}") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def unknown_format(path: str | Path, more: str = "") -> CruxError:
    """The error for a model file whose name ends in no known way (``more``: the other formats the
    command takes, e.g. " or a Bayesian network (.bif, .bif.gz)")."""
    suffix = Path(path).suffix or "(no suffix)"
    return CruxError(f"{path}: unknown model format {suffix!r}: use a scenario file ({', '.join(SCENARIO_SUFFIXES)}){more}")


def read_data(path: str | Path, *, regular_only: bool = False) -> Any:
    """The parsed content of a YAML or JSON file (syntax errors as one :class:`ModelError`).

    The file is at most ``MAX_FILE_BYTES``; its data at most ``MAX_NESTING`` levels deep and
    ``MAX_VALUES`` values once YAML aliases are expanded, never refers to itself, and holds only
    valid Unicode text.  ``regular_only``: refuse anything but a regular file (for ``use``)."""
    path = Path(path)
    file = str(path)
    if path.suffix.lower() not in SCENARIO_SUFFIXES:
        raise unknown_format(path)
    text = read_text(path, "a model file", limit_name="MAX_FILE_BYTES", regular_only=regular_only)
    if path.suffix.lower() == ".json":
        try:
            data = strict_json(text, finite=False)  # NaN and Infinity are refused where they stand, by the checks
        except json.JSONDecodeError as err:
            raise ModelError(file, [Problem((), f"line {err.lineno}, column {err.colno}: {err.msg}")]) from None
        except RecursionError:
            raise ModelError(file, [Problem((), f"nested too deeply for the JSON parser: at most {limit('MAX_NESTING')} levels are read {note('MAX_NESTING')}")]) from None
        except ValueError as err:
            raise ModelError(file, [Problem((), _first_line(err))]) from None
    else:
        loader = None
        try:
            loader = _UniqueKeyLoader(text)  # a SafeLoader: no arbitrary objects; reads the text's first characters
            data = loader.get_single_data()
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            raise ModelError(file, [Problem((), f"{where}{err.problem or err.context}")]) from None
        except yaml.YAMLError as err:
            raise ModelError(file, [Problem((), f"not valid YAML: {err}")]) from None
        finally:
            if loader is not None:
                loader.dispose()
    problem = _shape_problem(data)
    if problem is not None:
        raise ModelError(file, [problem])
    return data


_SURROGATE = re.compile("[\ud800-\udfff]")


def _shape_problem(data: Any) -> Problem | None:
    """What makes parsed data too large to handle, or None: nesting deeper than ``MAX_NESTING``,
    more than ``MAX_VALUES`` values with YAML aliases expanded (a shared part is walked once and
    counted each time it is used), data that contains itself, or text with unpaired surrogates
    (``"\\ud800"``; no terminal or file can show it).  Walked without recursion."""
    max_depth, max_values = limit("MAX_NESTING"), limit("MAX_VALUES")
    sizes: dict[int, tuple[int, int]] = {}  # id of a finished container -> (values, levels)
    open_ids: set[int] = set()
    # each frame: container, its path, its children still to visit, values and levels so far
    stack: list[tuple[Any, tuple[PathPart, ...], Any, list[int]]] = []

    def enter(value: Any, path: tuple[PathPart, ...]) -> tuple[int, int] | Problem | None:
        """(values, levels) of a leaf or a container walked before; a Problem; None: walk it."""
        if isinstance(value, str):
            if not value.isascii() and (m := _SURROGATE.search(value)):
                return Problem(path, f"text with the unpaired surrogate {m.group()!r}: not valid Unicode")
            return 1, 0
        if not isinstance(value, (dict, list)):
            return 1, 0
        if id(value) in open_ids:
            return Problem(path, "contains itself (a YAML alias inside its own anchor)")
        if id(value) in sizes:
            done = sizes[id(value)]
            if len(path) + done[1] > max_depth:
                return Problem(path, f"nested more than {max_depth} levels deep (through a YAML alias) {note('MAX_NESTING')}")
            return done
        if len(path) + 1 > max_depth:
            return Problem(path, f"nested more than {max_depth} levels deep {note('MAX_NESTING')}")
        return None

    def children(value: Any, path: tuple[PathPart, ...]):
        if isinstance(value, dict):
            for key, item in value.items():
                yield key, path
                yield item, (*path, key if isinstance(key, (str, int)) else str(key))
        else:
            for i, item in enumerate(value):
                yield item, (*path, i)

    first = enter(data, ())
    if isinstance(first, Problem):
        return first
    if first is not None:
        return None
    open_ids.add(id(data))
    stack.append((data, (), children(data, ()), [1, 1]))
    while stack:
        value, path, todo, acc = stack[-1]
        item = next(todo, _END)
        if item is _END:
            stack.pop()
            open_ids.discard(id(value))
            sizes[id(value)] = (acc[0], acc[1])
            if acc[0] > max_values:
                return Problem(path, f"holds more than {max_values:,} values once YAML aliases are expanded {note('MAX_VALUES')}")
            if stack:
                parent = stack[-1][3]
                parent[0] += acc[0]
                parent[1] = max(parent[1], acc[1] + 1)
            continue
        child, where = item
        got = enter(child, where)
        if isinstance(got, Problem):
            return got
        if got is None:
            open_ids.add(id(child))
            stack.append((child, where, children(child, where), [1, 1]))
            continue
        acc[0] += got[0]
        acc[1] = max(acc[1], got[1] + 1)
        if acc[0] > max_values:
            return Problem(path, f"holds more than {max_values:,} values once YAML aliases are expanded {note('MAX_VALUES')}")
    return None


_END = object()


def write_atomically(path: Path, text: str, *, replace: bool = True, exists: str = "") -> None:
    """Write ``text`` to ``path`` through a temporary file beside it, renamed into place: a crash
    leaves the old file whole (or none), never a half-written one.  The file gets the usual
    permissions (the umask's), not the temporary file's private ones.  With ``replace=False`` an
    existing file is never replaced, even one that appears while this writes (the temporary file
    is linked in, which fails if it does): :class:`CruxError` with ``exists``."""
    temporary: Path | None = None
    try:
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
        ) as f:
            temporary = Path(f.name)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        if replace:
            os.replace(temporary, path)
        else:
            try:
                os.link(temporary, path)  # fails if the file exists: no race with another writer
            except FileExistsError:
                raise CruxError(exists or f"{path}: exists") from None
            except OSError:  # a file system without hard links: the caller's check stands
                os.replace(temporary, path)
    except OSError as err:
        raise CruxError(f"{path}: cannot write: {err.strerror or err}") from None
    finally:
        if temporary is not None:
            temporary.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (False where either cannot be resolved)."""
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def plain_data(value: Any) -> Any:
    """Data as :func:`read_data` gives it, as plain Python for YAML's dumper (a YAML boolean kept
    as text becomes a ``str``; tuples become lists)."""
    if isinstance(value, Mapping):
        return {plain_data(k): plain_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_data(v) for v in value]
    if isinstance(value, str) and type(value) is not str:
        return str(value)
    return value
