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
_ELEMENT = rf"\[(?P<index>\d+)\](?:\[\d+\]|\.{_PART})*"
# the key an error message starts with: "train.lr: ...", "trunk.hidden[1]: ..." (an element of
# the array trunk.hidden), "forecast.candidates[1] ('wide'): ..." (an element and its name),
# "unknown key train.epoch; ...", "unknown key 'own'; ..." (a top-level one),
# "weighting.kind = 'gradnorm' combines ...", "train..epochs: empty part in the key" (a key
# given to Config.replace that cannot be set)
_MESSAGE = re.compile(
    rf"^(?:unknown key '(?P<top>{_BARE})'[;:]|unknown key (?P<unknown>{_BARE}(?:\.{_BARE})*)[;:]"
    rf"|(?P<named>{_PART}(?:\.{_PART})*)(?:{_ELEMENT}(?: \([^()]*\))?)?:\s"
    rf"|(?P<assigned>{_BARE}(?:\.{_BARE})*) = "
    rf"|(?P<gapped>(?:{_BARE})?(?:\.(?:{_BARE})?)+):\s)"
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
    key = key or found.group("gapped")  # its empty parts kept: "a..b" is ("a", "", "b")
    return tuple(key.split(".")) if key is not None else parts(found.group("named"))


def element_of(message: str) -> int | None:
    """The index of the element of an array a config error's message starts with
    (``trunk.hidden[1]: ...`` is 1, ``own.grid[0][2]: ...`` is 0: the outer array's);
    ``None`` when it names no element."""
    found = _MESSAGE.match(message)
    index = found.group("index") if found is not None else None
    return int(index) if index is not None else None


def element_line(text: str, line: int, index: int) -> int | None:
    """The number of the line on which element ``index`` of the array set on line ``line`` of
    the TOML ``text`` starts (an array may span lines, one element a line); ``None`` when that
    line does not set an array (``key = [``) or the array has no such element. Strings and
    comments are skipped; the elements counted are the array's own, not those of arrays or
    inline tables inside it."""
    lines = text.splitlines()
    if not 1 <= line <= len(lines):
        return None
    assign = _ASSIGN.match(lines[line - 1])
    if assign is None or not lines[line - 1][assign.end() :].lstrip().startswith("["):
        return None
    depth, count, expecting = 0, -1, False
    number, at = line, assign.end()
    quote = ""  # the string being skipped: '"', "'", '"""' or "'''"
    while number <= len(lines):
        current = lines[number - 1]
        while at < len(current):
            char = current[at]
            if quote:
                closes = quote[0] == "'" or not _escaped(current, at)  # literal: no escapes
                if closes and current.startswith(quote, at):
                    at += len(quote)
                    # """a"""" is 'a"': up to two quotes more are the string's, the last three
                    # close it
                    extra = 0
                    while len(quote) == 3 and extra < 2 and current.startswith(quote[0], at):
                        at, extra = at + 1, extra + 1
                    quote = ""
                    continue
                at += 1
                continue
            if char == "#":
                break
            if char.isspace():
                at += 1
                continue
            if expecting and char != "]":  # (only ever set at the array's own depth)
                count += 1
                if count == index:
                    return number
                expecting = False
            if char in "\"'":
                quote = current[at : at + 3] if current.startswith(char * 3, at) else char
                at += len(quote)
                continue
            if char in "[{":
                depth += 1
                expecting = depth == 1
            elif char in "]}":
                depth -= 1
                if depth == 0:
                    return None
            elif char == "," and depth == 1:
                expecting = True
            at += 1
        number, at = number + 1, 0
    return None


def _escaped(text: str, at: int) -> bool:
    """Whether the character at ``at`` is escaped by an odd run of backslashes before it."""
    run = 0
    while at - run - 1 >= 0 and text[at - run - 1] == "\\":
        run += 1
    return run % 2 == 1


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
