"""A fast path for reading the YAML that vcrpy (PyYAML's emitter) writes, with exactly PyYAML's result.

PyYAML builds a Python object per node in pure Python even with libyaml (``CSafeLoader`` only scans and
parses in C): ~1.5 ms per recorded chat completion, most of a cassette's load time. vcrpy writes cassettes
with PyYAML's emitter in block style, which uses a small part of YAML: block mappings and sequences,
plain / single-quoted / double-quoted scalars (folded over lines at the emitter's width) and ``{}`` /
``[]``. :func:`load` reads that part line by line and gives up (:class:`Unsupported`) on anything else:
tags (``!!binary``), anchors and aliases, literal or folded blocks, flow collections, comments, complex
keys, documents markers, tabs, characters YAML does not allow unescaped, and any layout it does not
expect. The caller then parses the text with PyYAML, which gives the same result or the precise error.
Two shapes that make up most of a cassette are read on the whole text rather than line by line: runs of
headers (``name:`` then ``- value``) and of ``key: value`` entries, recognised by one regex match each
(:meth:`_Reader.entry_run`), and single-quoted scalars folded over many lines, found by one regex match and
folded by one substitution (:meth:`_Reader.single_quoted`). Each takes a subset of what the line-by-line
reader takes and reads it to the same value; anything else is left to the line-by-line reader.

Every decision PyYAML makes about meaning is PyYAML's own: plain scalars are resolved by its resolver's
implicit rules (``yes`` is a bool, ``0x1f`` an int, ``2025-01-01`` a date) and built by its
``SafeConstructor``; escapes in double-quoted scalars come from its scanner's tables. What this module
adds is only the layout: indentation and line folding. ``tests/test_yaml_load.py`` compares :func:`load`
with ``yaml.load(..., CSafeLoader)`` on generated data dumped by vcrpy's serializer and by ``safe_dump``
at several widths, and on mutated texts (where it must give PyYAML's result or give up).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

__all__ = ["Unsupported", "load"]

_STR = "tag:yaml.org,2002:str"
_UNSAFE_TAGS = ("tag:yaml.org,2002:merge", "tag:yaml.org,2002:value", "tag:yaml.org,2002:yaml")
_RESOLVERS = yaml.resolver.Resolver.yaml_implicit_resolvers
_ESCAPES = yaml.scanner.Scanner.ESCAPE_REPLACEMENTS
_ESCAPE_CODES = yaml.scanner.Scanner.ESCAPE_CODES
# Outside the printable set YAML reads unescaped, plus NEL / LS / PS (line breaks to YAML) and BOM.
_REFUSED = re.compile("[^\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]")
_ASCII_ALLOWED = b"\n" + bytes(range(0x20, 0x7F))  # what _REFUSED allows among ASCII characters
_FIRST_BAD = frozenset("#&*!|>%@`{[]},'\"?:-")
_HEX = re.compile(r"[0-9A-Fa-f]+")
_NOT_SIMPLE = _FIRST_BAD | {" "}
_NONE = object()  # "not this shape" (None is a value)
_SIMPLE_KEY = re.compile(r"([A-Za-z_][A-Za-z0-9_.\-]*):(?: (.*))?$")

# -- whole-text fast paths ----------------------------------------------------------------------------------
# A run of simple mapping entries (see :meth:`_Reader.entry_run`) is recognised by one regex match on the
# whole text, instead of Python work per line; the line-by-line reader takes over where a run ends. Each
# piece is a subset of what the line-by-line reader accepts, read to the same (PyYAML's) value.
_KEY_RE = r"[A-Za-z_][A-Za-z0-9_.\-]*"  # as _SIMPLE_KEY: a name PyYAML reads as a one-line plain scalar
# A one-line plain scalar: no indicator or space first; no ': ' or ' #' (a mapping value or a comment to
# YAML) and no ':' or space at the end (neither can be followed by a line break inside it).
_PLAIN_RE = r"""[^ \n#&*!|>%@`{}\[\],'"?:\-][^\n: ]*(?:(?::(?=[^ \n])| +(?=[^ #\n]))[^\n: ]*)*"""
# A one-line single-quoted scalar, quotes included ('' is an escaped quote); written so that a line with
# no closing quote fails at once (each repetition ends with a quote, so regex backtracking jumps to quotes).
_QUOTED_RE = r"'[^'\n]*'(?:'[^'\n]*')*"
_VALUE_RE = f"(?:{_QUOTED_RE}|{_PLAIN_RE})"
_runs: dict[tuple[int, bool], re.Pattern[str]] = {}


def _run_pattern(indent: int, headers: bool) -> re.Pattern[str]:
    """The regex matching a run of simple entries of a block mapping at ``indent``, from its first key.

    The entries are all ``key: value`` lines or all headers, ``key:`` with a one-item list ``- value`` on
    the next line at the same indentation (``headers``); a value is a one-line plain or single-quoted
    scalar, with nothing after it on its line. The line after the run must be neither blank nor deeper (it
    would continue the last value, or be an error PyYAML reports) nor, after a header, a second item of
    its list; or only blank lines may follow, to the end of the text. (The line after any other entry of
    the run is the next entry's key, which is all of these.)
    """
    try:
        return _runs[indent, headers]
    except KeyError:
        pass
    same, deeper = " " * indent, " " * (indent + 1)
    if headers:
        entry = f"{_KEY_RE}:\n{same}- {_VALUE_RE}"
        after = f"(?!{deeper})(?!{same}- )"
    else:
        entry = f"{_KEY_RE}: {_VALUE_RE}"
        after = f"(?!{deeper})"
    follow = f"(?=\n{after}(?= *[^ \n])|(?:\n[ \n]*)?\\Z)"
    pattern = _runs[indent, headers] = re.compile(f"{entry}(?:\n{same}{entry})*{follow}")
    return pattern


# The rest of a single-quoted scalar, from after its opening quote to its closing one (a quote not part of
# a '' pair) and the spaces after it to the end of the line; group 1 is the text between the quotes.
_SINGLE_QUOTED = re.compile(r"((?:[^']*'')*[^']*)' *(?=\n|\Z)")
_LINE_BREAK = re.compile("\n *")  # a line break and the next line's indentation


class Unsupported(Exception):
    """The text uses YAML this fast path does not read: parse it with PyYAML instead."""


_plain_cache: dict[str, Any] = {}
_constructor = yaml.constructor.SafeConstructor()
# What the lines of entry runs (:meth:`_Reader.entry_run`) read to, by the whole line: header names and most
# header values recur across a cassette's interactions and across cassettes, and one lookup of the line
# costs less than cutting the key or value out of it and looking that up.
_header_keys: dict[str, Any] = {}  # "      name:" -> name
_header_items: dict[str, Any] = {}  # "      - value" -> value
_entry_lines: dict[str, tuple[Any, Any]] = {}  # "    name: value" -> (name, value)
_CACHE_SIZE = 65536


def _remember(cache: dict[str, Any], line: str, value: Any) -> Any:
    """``value``, stored as what ``line`` reads to while ``cache`` is not full."""
    if len(cache) < _CACHE_SIZE:
        cache[line] = value
    return value


def _one_line_value(text: str) -> Any:
    """A one-line single-quoted (``''`` is ``'``) or plain scalar of an entry run, without its line."""
    if text[0] == "'":
        return text[1:-1].replace("''", "'")
    return _plain(text)


def _plain(value: str) -> Any:
    """A plain scalar as PyYAML's resolver and ``SafeConstructor`` read it."""
    try:
        return _plain_cache[value]
    except KeyError:
        pass
    resolvers = _RESOLVERS.get(value[0] if value else "", []) + _RESOLVERS.get(None, [])
    tag = _STR
    for candidate, regexp in resolvers:
        if regexp.match(value):
            tag = candidate
            break
    if tag == _STR:
        result: Any = value
    elif tag in _UNSAFE_TAGS:
        raise Unsupported(f"plain scalar {value!r} resolves to {tag}")
    else:
        try:
            result = _constructor.construct_object(yaml.ScalarNode(tag, value))
        except yaml.YAMLError as exc:
            raise Unsupported(str(exc)) from None
    return _remember(_plain_cache, value, result)


def _check_plain(text: str) -> None:
    """Give up on a plain scalar line PyYAML might read differently (comments, mapping values, ...)."""
    if not text or text[0] == " " or " #" in text or ": " in text or text.endswith(":"):
        raise Unsupported(f"plain scalar line {text!r}")
    if text.startswith("- "):
        raise Unsupported(f"plain scalar line {text!r}")
    first = text[0]
    if first in _FIRST_BAD and not (first in "-?:" and len(text) > 1 and text[1] != " "):
        raise Unsupported(f"plain scalar starting with {first!r}")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


class _Reader:
    """Reads ``lines`` (the text's lines, trailing blank ones dropped) from line ``i`` on.

    The fast paths match regexes on the whole ``text`` instead: :meth:`offset` gives where a line starts in
    it, from ``mark``, a line whose start is known, and the lengths of the lines read since.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines = text.split("\n")
        while self.lines and not self.lines[-1].strip(" "):
            self.lines.pop()
        self.n = len(self.lines)
        self.i = 0
        self.mark = (0, 0)  # (line, offset of its start in text)

    def offset(self, i: int) -> int:
        """Where line ``i`` (at or after ``mark``) starts in ``text``; it becomes the mark."""
        line, start = self.mark
        if i != line:
            start += sum(map(len, self.lines[line:i])) + i - line
            self.mark = (i, start)
        return start

    # -- nodes -------------------------------------------------------------------------------------------
    def block(self, indent: int) -> Any:
        rest = self.lines[self.i][indent:]
        if rest.startswith("- "):
            return self.sequence(indent)
        return self.mapping(indent)

    def mapping(self, indent: int) -> dict[Any, Any]:
        lines = self.lines
        n = self.n
        item = " " * indent + "- "  # how a line of a list at this indentation starts
        result: dict[Any, Any] = {}
        while self.i < n:
            line = lines[self.i]
            cur = len(line) - len(line.lstrip(" "))
            if cur < indent:
                break
            if cur > indent or cur == len(line):
                raise Unsupported(f"line {self.i + 1}: unexpected indentation")
            rest = line[indent:]
            if rest.startswith("- "):
                break  # the end of an indentless sequence's parent is decided by the caller
            # a run of entries starts with a header (a list item follows) or with "key: value"
            below = lines[self.i + 1] if self.i + 1 < n else ""
            if rest[-1:] == ":":
                if below.startswith(item) and self.entry_run(indent, result, headers=True):
                    continue
            elif ": " in rest and self.entry_run(indent, result, headers=False):
                continue
            found = self.key(rest)
            if found is None:
                raise Unsupported(f"line {self.i + 1}: not a mapping entry")
            key, after = found
            if after:
                result[key] = self.inline(after, indent)
                continue
            self.i += 1
            single = self.single_item(indent) if below.startswith(item) else _NONE
            result[key] = [single] if single is not _NONE else self.value_below(indent)
        return result

    def entry_run(self, indent: int, result: dict[Any, Any], *, headers: bool) -> bool:
        """Read the run of simple entries of the mapping at ``indent`` that starts on the current line into
        ``result``, recognised by one regex match (:func:`_run_pattern`, ``headers`` says which kind);
        ``False`` if there is none.

        The values are those :meth:`mapping` gives such entries line by line (through :meth:`key` with
        ``_SIMPLE_KEY``, :meth:`inline` and :meth:`single_item`): a plain scalar through :func:`_plain`, a
        single-quoted one with ``''`` read as ``'``, a header's as a one-item list.
        """
        i = self.i
        lines = self.lines
        start = self.offset(i) + indent
        found = _run_pattern(indent, headers).match(self.text, start)
        if found is None:
            return False
        end = found.end()
        stop = i + self.text.count("\n", start, end) + 1
        self.i = stop
        self.mark = (stop, end + 1)
        if headers:
            keys, items = _header_keys, _header_items
            for key_line, item_line in zip(lines[i:stop:2], lines[i + 1 : stop : 2], strict=True):
                key = keys.get(key_line, _NONE)
                if key is _NONE:
                    key = _remember(keys, key_line, _plain(key_line[indent:-1]))
                value = items.get(item_line, _NONE)
                if value is _NONE:
                    value = _remember(items, item_line, _one_line_value(item_line[indent + 2 :]))
                result[key] = [value]
        else:
            entries = _entry_lines
            for line in lines[i:stop]:
                entry = entries.get(line)
                if entry is None:
                    key, _, value = line[indent:].partition(": ")
                    entry = _remember(entries, line, (_plain(key), _one_line_value(value)))
                result[entry[0]] = entry[1]
        return True

    def single_item(self, indent: int) -> Any:
        """The value of the one-item list vcrpy writes for each header (``name:`` then ``- value`` at the
        same indentation), read in one step; ``_NONE`` when the next lines are anything else.

        Only a plain value that :meth:`sequence` and :meth:`inline` would read the same way qualifies: no
        indicator or space first, no ``': '``, ``' #'`` or final ``':'``, not followed by a continuation
        line, a blank line or a second item.
        """
        i = self.i
        if i >= self.n:
            return _NONE
        line = self.lines[i]
        dash = indent + 2
        if line[indent:dash] != "- " or len(line) - len(line.lstrip(" ")) != indent:
            return _NONE
        item = line[dash:]
        quoted = item[:1] == "'" and item.count("'") == 2 and item.rstrip(" ").endswith("'") and len(item) > 1
        if not quoted and (
            not item or item[0] in _NOT_SIMPLE or ": " in item or " #" in item or item.endswith(":")
        ):
            return _NONE
        if i + 1 < self.n:
            follow = self.lines[i + 1]
            bare = follow.lstrip(" ")
            if (
                not bare
                or len(follow) - len(bare) > indent
                or (len(follow) - len(bare) == indent and bare[:2] == "- ")
            ):
                return _NONE
        value = item.rstrip(" ")
        if quoted:
            self.i = i + 1
            return value[1:-1]
        if value.endswith(":"):
            return _NONE
        self.i = i + 1
        return _plain(value)

    def value_below(self, indent: int) -> Any:
        """The value of ``key:`` with nothing after the colon: a nested block, or null."""
        if self.i >= self.n:
            return None
        line = self.lines[self.i]
        cur = _indent(line)
        if cur == len(line):
            raise Unsupported(f"line {self.i + 1}: blank line")
        if cur > indent:
            return self.block(cur)
        if cur == indent and line[indent:].startswith("- "):
            return self.sequence(indent)
        return None

    def sequence(self, indent: int) -> list[Any]:
        lines = self.lines
        result: list[Any] = []
        while self.i < self.n:
            line = lines[self.i]
            cur = len(line) - len(line.lstrip(" "))
            if cur < indent:
                break
            if cur > indent:
                raise Unsupported(f"line {self.i + 1}: unexpected indentation")
            rest = line[indent:]
            if not rest.startswith("- "):
                if rest == "-":
                    raise Unsupported(f"line {self.i + 1}: empty sequence entry")
                break
            item = rest[2:]
            inner = indent + 2
            if item.startswith(" "):
                raise Unsupported(f"line {self.i + 1}: extra indentation after '-'")
            plain_key = (": " in item or item.endswith(":")) and item[:1] not in ("'", '"')
            if item.startswith("- ") or (plain_key and self.key(item) is not None):
                lines[self.i] = " " * inner + item  # a compact nested block starts on the dash's line
                result.append(self.block(inner))
            elif item[:1] in ("'", '"') and self._quoted_key(item):
                lines[self.i] = " " * inner + item
                result.append(self.mapping(inner))
            else:
                result.append(self.inline(item, indent))
        return result

    # -- keys --------------------------------------------------------------------------------------------
    def _quoted_key(self, text: str) -> bool:
        end = _closing_quote(text)
        return end is not None and (text[end + 1 :] == ":" or text[end + 1 :].startswith(": "))

    def key(self, rest: str) -> tuple[Any, str] | None:
        """``(key, text after ': ')`` of a mapping entry line, ``None`` if the line is not one."""
        simple = _SIMPLE_KEY.match(rest)
        if simple is not None:  # a header name or a field name: what nearly every key is
            after = simple.group(2)
            return _plain(simple.group(1)), after.lstrip(" ") if after else ""
        first = rest[:1]
        if first in ("'", '"'):
            end = _closing_quote(rest)
            if end is None:
                return None
            tail = rest[end + 1 :]
            if tail == ":":
                after = ""
            elif tail.startswith(": "):
                after = tail[2:].lstrip(" ")
            else:
                return None
            key = _single_line_single(rest[1:end]) if first == "'" else _double_line(rest[1:end])
            return key, after if after.strip(" ") else ""
        if first == "?" and rest[1:2] in ("", " "):
            raise Unsupported("complex mapping key")
        j = rest.find(": ")
        if j == -1:
            if not rest.endswith(":"):
                return None
            j = len(rest) - 1
        text = rest[:j]
        _check_plain(text)
        if text.endswith(" "):
            raise Unsupported(f"key {text!r}")
        return _plain(text), rest[j + 2 :].lstrip(" ")

    # -- scalars -----------------------------------------------------------------------------------------
    def inline(self, text: str, indent: int) -> Any:
        """The scalar that starts with ``text`` on the current line (continuation lines deeper than
        ``indent``); leaves ``self.i`` on the next line."""
        first = text[:1]
        if first == "'":
            return self.quoted(text[1:], indent, double=False)
        if first == '"':
            return self.quoted(text[1:], indent, double=True)
        if text == "{}" or text == "[]":
            self.i += 1
            return {} if text == "{}" else []
        value = text.rstrip(" ")
        _check_plain(value)
        self.i += 1
        parts = [value]
        while self.i < self.n:
            blanks = 0
            k = self.i
            while k < self.n and not self.lines[k].strip(" "):
                blanks += 1
                k += 1
            if k >= self.n:
                break
            line = self.lines[k]
            if _indent(line) <= indent:
                break
            more = line.strip(" ")
            _check_plain(more)
            parts.append("\n" * blanks if blanks else " ")
            parts.append(more)
            self.i = k + 1
        return _plain("".join(parts))

    def single_quoted(self, s: str, indent: int) -> str | None:
        """The single-quoted scalar whose text after the opening quote starts with ``s`` (on the current
        line), read on the whole text: found by one regex match, its line breaks folded by one substitution;
        ``None`` if it is not one this reads (then :meth:`quoted` reads it line by line).

        Taken: a scalar each of whose line breaks has no space before it and, after it, a line indented
        deeper than ``indent`` (so not blank either: a blank line deeper than that ends with `` \n``). PyYAML
        folds such a line break with the next line's indentation into one space, exactly what
        ``_LINE_BREAK`` replaces (as :meth:`quoted` does), and reads ``''`` as ``'``.
        """
        start = self.offset(self.i) + len(self.lines[self.i]) - len(s)
        found = _SINGLE_QUOTED.match(self.text, start)
        if found is None:
            return None
        value = found.group(1)
        breaks = 0
        if "\n" in value:
            if " \n" in value:
                return None
            value, breaks = _LINE_BREAK.subn(" ", value)
            if found.group(1).count("\n" + " " * (indent + 1)) != breaks:
                return None
        self.i += breaks + 1
        self.mark = (self.i, found.end() + 1)
        return value.replace("''", "'")

    def quoted(self, s: str, indent: int, *, double: bool) -> str:
        if not double:
            value = self.single_quoted(s, indent)
            if value is not None:
                return value
        out: list[str] = []
        lines = self.lines
        while True:
            end = _double_part(s, out) if double else _single_part(s, out)
            if end is not None:
                if s[end + 1 :].strip(" "):
                    raise Unsupported(f"line {self.i + 1}: text after a quoted scalar")
                self.i += 1
                return "".join(out)
            # the scalar goes on: fold the line break
            escaped_break = double and out and out[-1] is _ESCAPED_BREAK
            if escaped_break:
                out.pop()
            else:
                out.append(out.pop().rstrip(" ") if out else "")
            k = self.i + 1
            blanks = 0
            while k < self.n and not lines[k].strip(" "):
                blanks += 1
                k += 1
            if k >= self.n or _indent(lines[k]) <= indent:
                raise Unsupported(f"line {self.i + 1}: unterminated or dedented quoted scalar")
            if escaped_break:
                out.append("\n" * blanks)
            else:
                out.append("\n" * blanks if blanks else " ")
            self.i = k
            s = lines[k].lstrip(" ")


_ESCAPED_BREAK = "\\\n"  # marker appended by _double_part for a backslash at the end of a line


def _closing_quote(text: str) -> int | None:
    """Index of the quote closing the one-line quoted scalar ``text`` starts with, or ``None``."""
    quote = text[0]
    j = 1
    while True:
        k = text.find(quote, j)
        if k == -1:
            return None
        if quote == "'":
            if text[k + 1 : k + 2] == "'":
                j = k + 2
                continue
            return k
        backslashes = len(text[j:k]) - len(text[j:k].rstrip("\\"))
        if backslashes % 2:
            j = k + 1
            continue
        return k


def _single_line_single(text: str) -> str:
    return text.replace("''", "'")


def _double_line(text: str) -> str:
    out: list[str] = []
    if _double_part(text + '"', out) != len(text):
        raise Unsupported("double-quoted key")
    return "".join(out)


def _single_part(s: str, out: list[str]) -> int | None:
    """Append the content of single-quoted text ``s`` up to its closing quote (returned) or the line end."""
    start = 0
    while True:
        j = s.find("'", start)
        if j == -1:
            out.append(s[start:])
            return None
        if s[j + 1 : j + 2] == "'":
            out.append(s[start : j + 1])
            start = j + 2
            continue
        out.append(s[start:j])
        return j


_DQ = re.compile(r'["\\]')


def _double_part(s: str, out: list[str]) -> int | None:
    """As :func:`_single_part` for double-quoted text, with PyYAML's escapes."""
    start = 0
    while True:
        m = _DQ.search(s, start)
        if m is None:
            out.append(s[start:])
            return None
        j = m.start()
        if s[j] == '"':
            out.append(s[start:j])
            return j
        out.append(s[start:j])
        if j + 1 == len(s):  # an escaped line break
            out.append(_ESCAPED_BREAK)
            return None
        code = s[j + 1]
        if code in _ESCAPES:
            out.append(_ESCAPES[code])
            start = j + 2
        elif code in _ESCAPE_CODES:
            length = _ESCAPE_CODES[code]
            digits = s[j + 2 : j + 2 + length]
            if len(digits) != length or not _HEX.fullmatch(digits) or int(digits, 16) > 0x10FFFF:
                raise Unsupported("bad escape")
            out.append(chr(int(digits, 16)))
            start = j + 2 + length
        else:
            raise Unsupported(f"unknown escape \\{code}")


def load(text: str) -> Any:
    """Parse ``text`` as PyYAML's safe loader would, or raise :class:`Unsupported`.

    Args:
        text: A YAML document (a cassette as vcrpy writes it).

    Returns:
        The document's data: the top-level block mapping (or sequence) as dicts, lists and scalars.

    Raises:
        Unsupported: the text uses YAML outside what this reader handles (see the module docstring);
            parse it with PyYAML, which gives the same data or the error.
    """
    if text.isascii():  # the same test as _REFUSED's, some 8 times faster
        refused = bool(text.encode().translate(None, _ASCII_ALLOWED))
    else:
        refused = _REFUSED.search(text) is not None
    if refused or text.startswith(("%", "---", "...")) or "\n---" in text or "\n..." in text:
        raise Unsupported("characters, directives or document markers")
    reader = _Reader(text)
    if not reader.lines:
        raise Unsupported("empty document")
    first = reader.lines[0]
    if first.startswith(" ") or first.startswith("#"):
        raise Unsupported("indented or commented first line")
    try:
        data = reader.block(0)
    except RecursionError:  # nesting deeper than Python's stack: PyYAML reports it
        raise Unsupported("too deep") from None
    if reader.i != reader.n:
        raise Unsupported(f"line {reader.i + 1}: not read")
    return data
