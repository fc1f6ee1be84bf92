"""What the command line prints, and how it reads values.

Values go in and come out as DAG-JSON (:mod:`orbitstore.core.dagjson`): bytes are
``{"/": {"bytes": "<base64>"}}``, links ``{"/": "<cid>"}``. Text mode prints one line
per item; ``--json`` prints one JSON object per line. Listings are printed as they are
read, never collected first.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from orbitstore.core import dagjson
from orbitstore.errors import DecodeError, InvalidValueError

if TYPE_CHECKING:  # only its attributes are read: `kv get` through the API never loads it
    from orbitstore.core.entry import Entry

# First characters of JSON text that is not a bare word: anything else is most likely a
# string the user forgot to quote.
_JSON_STARTS = frozenset('{["-0123456789tfn')


class Output:
    """Prints text lines, or JSON lines with ``--json``."""

    def __init__(self, *, json_lines: bool) -> None:
        self.json = json_lines

    def emit(self, text: str, obj: dict[str, Any]) -> None:
        """Print ``text``, or ``obj`` as one JSON line (its values must be JSON-able:
        pass DAG-CBOR values through :func:`jsonable`)."""
        print(json.dumps(obj, ensure_ascii=False) if self.json else text)

    def record(self, info: dict[str, Any]) -> None:
        """One record: a JSON line, or ``key: value`` lines (lists and maps indented)."""
        if self.json:
            self.emit("", info)
            return
        for key, value in info.items():
            if isinstance(value, list):
                print(f"{key}:" if value else f"{key}: -")
                for item in value:
                    print(f"  {item}")
            elif isinstance(value, dict):
                print(f"{key}:")
                for k, v in value.items():
                    print(f"  {k}: {v if isinstance(v, str) else render(v)}")
            else:
                print(f"{key}: {value}")

    def note(self, text: str) -> None:
        """A remark for the person at the terminal (stderr; not part of the output)."""
        if not self.json:
            print(f"note: {text}", file=sys.stderr)

    def table(self, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Rows as aligned columns (text), or one JSON object per row."""
        if self.json:
            for row in rows:
                obj = {c: jsonable(v) for c, v in zip(columns, row, strict=True)}
                print(json.dumps(obj, ensure_ascii=False))
            return
        cells = [[cell(v) for v in row] for row in rows]  # widths need every row
        widths = [len(c) for c in columns]
        for row_cells in cells:
            widths = [max(w, len(c)) for w, c in zip(widths, row_cells, strict=True)]
        print(_line(columns, widths))
        print(_line(["-" * w for w in widths], widths))
        for row_cells in cells:
            print(_line(row_cells, widths))


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()


def render(value: Any) -> str:
    """A DAG-CBOR value as compact DAG-JSON text."""
    return dagjson.to_json(value)


def cell(value: Any) -> str:
    """A table cell: strings as they are (on one line), everything else as DAG-JSON."""
    text = value if isinstance(value, str) else render(value)
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")


def jsonable(value: Any) -> Any:
    """A DAG-CBOR value as plain JSON data (bytes and links in their DAG-JSON forms)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return json.loads(dagjson.to_json(value))


def parse_value(text: str, what: str = "value") -> Any:
    """A DAG-JSON value from the command line; InvalidValueError if it does not parse."""
    try:
        return dagjson.from_json(text)
    except DecodeError as exc:
        hint = ""
        stripped = text.strip()
        if stripped and stripped[0] not in _JSON_STARTS:
            hint = f" (a string needs JSON quotes: '{json.dumps(stripped)}')"
        detail = str(exc).removeprefix("not valid DAG-JSON: ")
        raise InvalidValueError(f"the {what} is not valid JSON ({detail}){hint}") from exc


def parse_object(text: str, what: str) -> dict[str, Any]:
    """A DAG-JSON object from the command line."""
    value = parse_value(text, what)
    if not isinstance(value, dict):
        raise InvalidValueError(f"the {what} must be a JSON object, not {render(value):.80}")
    return value


def sort_spec(specs: list[str] | None) -> list[tuple[str, int]]:
    """``--sort FIELD[:asc|:desc]`` options as ``(field, 1 | -1)`` pairs."""
    out: list[tuple[str, int]] = []
    for spec in specs or []:
        field, _, direction = spec.rpartition(":") if ":" in spec else (spec, "", "asc")
        if direction not in ("asc", "desc") or not field:
            raise InvalidValueError(f"--sort is FIELD, FIELD:asc or FIELD:desc, not {spec!r}")
        out.append((field, -1 if direction == "desc" else 1))
    return out


def writer_lines(writers: Iterable[dict[str, Any]]) -> list[str]:
    """``info``'s writers as users with their devices, one text item per user:
    ``<user> (<rights>)`` then one indented line per device, linked or unlinked since
    when (UTC)."""
    lines = []
    for w in writers:
        rights = ", ".join(
            r["right"] + ("" if r["scope"] is None else f" {r['scope']!r}") for r in w["rights"]
        )
        text = f"{w['user']} ({rights or 'no rights'})"
        for d in w["devices"]:
            state = "linked" if d["linked"] else "unlinked"
            text += f"\n    device {d['device']} {state} since {utc(d['since'])}"
        lines.append(text)
    return lines


def shown_info(info: dict[str, Any], out: Output) -> dict[str, Any]:
    """``info``'s record as printed: in text, ``users`` as :func:`writer_lines` and no
    ``writers`` (the manifest's static write list: every one of them is a user with the
    ``write`` right, and a capabilities database has none, which read as "nobody may
    write"). ``--json`` keeps both."""
    if out.json or "users" not in info:
        return info
    return {
        **{key: value for key, value in info.items() if key != "writers"},
        "users": writer_lines(info["users"]),
    }


def utc(ms: int) -> str:
    """Milliseconds since the epoch as ``YYYY-MM-DD HH:MM:SS UTC``."""
    import datetime

    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def entry_dict(e: Entry) -> dict[str, Any]:
    return {
        "cid": str(e.cid),
        "clock": e.clock,
        "writer": e.writer,
        "ts": e.ts,
        "payload": jsonable(e.payload),
    }
