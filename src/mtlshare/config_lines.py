"""Where a config error comes from: the line of the TOML file that sets the key it names, or the
command-line override that set it. Pure functions over the file's text and the error's message,
so that ``load_config`` can say ``recipe.toml:24: train.lr: ...`` as the data readers say
``train.txt:12: ...``."""

from __future__ import annotations

import re

_BARE = r"[A-Za-z0-9_-]+"
_PART = rf'(?:{_BARE}|"[^"\\]*"|\'[^\']*\')'
_KEY = rf"{_PART}(?:\s*\.\s*{_PART})*"
_HEADER = re.compile(rf"^\s*\[\[?\s*(?P<key>{_KEY})\s*\]\]?\s*(?:#.*)?$")
_ASSIGN = re.compile(rf"^\s*(?P<key>{_KEY})\s*=")
_PART_RE = re.compile(_PART)
# what follows a key inside the array it holds: "[1]", "[0][2]", "[0].name" (a TOML file or
# an override sets the array whole, so the key that holds it is the one to name)
_ELEMENT = rf"\[\d+\](?:\[\d+\]|\.{_PART})*"
# the key an error message starts with: "train.lr: ...", "trunk.hidden[1]: ..." (an element of
# the array trunk.hidden), "unknown key train.epoch; ...", "unknown key 'own'; ..." (a
# top-level one), "weighting.kind = 'gradnorm' combines ..."
_MESSAGE = re.compile(
    rf"^(?:unknown key '(?P<top>{_BARE})'[;:]|unknown key (?P<unknown>{_BARE}(?:\.{_BARE})*)[;:]"
    rf"|(?P<named>{_PART}(?:\.{_PART})*)(?:{_ELEMENT})?:\s"
    rf"|(?P<assigned>{_BARE}(?:\.{_BARE})*) = )"
)
_BARE_RE = re.compile(_BARE)


def parts(key: str) -> tuple[str, ...]:
    """A dotted TOML key's parts, quotes removed (``a."b.c"`` is two parts)."""
    return tuple(p.strip("\"'") for p in _PART_RE.findall(key))


def key_of(message: str) -> tuple[str, ...] | None:
    """The config key a config error's message starts with, as parts; ``None`` when it names
    none. An element of an array (``trunk.hidden[1]``, ``forecast.candidates[0].name``) is
    the key that holds the array (``("trunk", "hidden")``): the line or override that set it."""
    found = _MESSAGE.match(message)
    if found is None:
        return None
    key = found.group("top") or found.group("unknown") or found.group("assigned")
    return tuple(key.split(".")) if key is not None else parts(found.group("named"))


def dotted(key: tuple[str, ...]) -> str:
    """``key`` as a dotted TOML key, quoting the parts that are not bare
    (``compare.variants."hard+dwa"``)."""
    return ".".join(p if _BARE_RE.fullmatch(p) else f'"{p}"' for p in key)


def key_line(text: str, key: tuple[str, ...]) -> int | None:
    """The number of the line of the TOML ``text`` that sets ``key`` (or, when no line sets it
    but a line sets a table or inline table holding it, that line; or the header of the table
    ``key`` itself); ``None`` when no line does. Lines inside multi-line strings are skipped."""
    table: tuple[str, ...] = ()
    exact: int | None = None
    holder: tuple[int, int] | None = None  # (length of the key set, line) of the deepest holder
    in_string = ""
    for number, line in enumerate(text.splitlines(), 1):
        if in_string:
            if line.count(in_string) % 2 == 1:
                in_string = ""
            continue
        header = _HEADER.match(line)
        if header is not None:
            table = parts(header.group("key"))
            if table == key and exact is None:
                exact = number
            continue
        assign = _ASSIGN.match(line)
        if assign is None:
            continue
        full = table + parts(assign.group("key"))
        if full == key:
            return number
        if key[: len(full)] == full and (holder is None or len(full) > holder[0]):
            holder = (len(full), number)
        value = line[assign.end() :]
        for quotes in ('"""', "'''"):  # a value that opens a multi-line string
            if value.lstrip().startswith(quotes) and value.count(quotes) % 2 == 1:
                in_string = quotes
    if exact is not None:
        return exact
    return holder[1] if holder is not None else None


def override_of(overrides: list[str], key: tuple[str, ...]) -> str | None:
    """The last of the ``key=value`` overrides that sets ``key``, a table holding it, or a key
    inside it; ``None`` when none does."""
    found = None
    for item in overrides:
        if covers(item.partition("=")[0], key):
            found = item
    return found


def covers(name: str, key: tuple[str, ...]) -> bool:
    """Whether setting the dotted ``name`` sets ``key``, a table holding it, or a key inside it."""
    named = tuple(p.strip() for p in name.split("."))
    shorter = min(len(named), len(key))
    return named[:shorter] == key[:shorter]
