"""How a tenant command is declared: ``@command(group, "name")`` on a function that takes an
``Api`` first and returns a ``Show``. The decorator adds ``--url``, ``--token``,
``--profile`` and ``--json`` to the command, connects, renders the result (an aligned table,
or the API's JSON with ``--json``) and turns every API error into ``error CODE: message``
with a non-zero exit."""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from extsched.cli.client import Api, ApiError, resolve
from extsched.cli.common import err, out

EXIT_API_ERROR = 1

UrlOpt = Annotated[
    str | None,
    typer.Option("--url", envvar="EXTSCHED_URL", help="Service URL, e.g. http://127.0.0.1:8000."),
]
TokenOpt = Annotated[
    str | None,
    typer.Option("--token", envvar="EXTSCHED_TOKEN", help="API token.", show_default=False),
]
ProfileOpt = Annotated[
    str | None,
    typer.Option("--profile", envvar="EXTSCHED_PROFILE", help="Saved profile (extsched login)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the API's JSON.")]

Getter = str | Callable[[dict[str, Any]], Any]
Columns = list[tuple[str, Getter]]


@dataclass(frozen=True)
class Show:
    """What a command prints: ``data`` with ``--json``; otherwise ``lines`` and a table of
    ``rows`` (default: ``data["items"]``) with ``columns`` (header, key path or function)."""

    data: Any
    columns: Sequence[tuple[str, Getter]] = ()
    rows: Sequence[dict[str, Any]] | None = None
    lines: Sequence[str] = ()
    after: Sequence[str] = ()
    exit_code: int = 0
    fields: Sequence[tuple[str, Getter]] = field(default_factory=list)
    # Batches of rows printed as they come (``--follow``): table lines, or JSON Lines.
    stream: Iterable[Sequence[dict[str, Any]]] | None = None


def value(row: dict[str, Any], getter: Getter) -> str:
    if callable(getter):
        v = getter(row)
    else:
        v = row
        for part in getter.split("."):
            v = v.get(part) if isinstance(v, dict) else None
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, dict | list):
        return json.dumps(v, separators=(",", ":"))
    return str(v)


def at(text: str | None) -> str:
    """``2026-11-30T08:30:00Z`` -> ``2026-11-30 08:30:00Z`` (None -> ``-``)."""
    return text.replace("T", " ") if text else "-"


def render(show: Show, as_json: bool) -> None:
    if show.stream is not None:
        _render_stream(show, as_json)
        return
    if as_json:
        out.print_json(json.dumps(show.data, default=str))
        return
    for line in show.lines:
        out.print(line, highlight=False, markup=False, emoji=False)
    for label, getter in show.fields:
        out.print(
            f"{label + ':':<16}{value(show.data, getter)}",
            highlight=False,
            markup=False,
            emoji=False,
        )
    if show.columns:
        rows = show.rows if show.rows is not None else show.data.get("items", [])
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, highlight=False)
        for header, _ in show.columns:
            table.add_column(header, overflow="fold")
        for row in rows:
            table.add_row(*(value(row, g) for _, g in show.columns))
        out.print(table)
    for line in show.after:
        out.print(line, highlight=False, markup=False, emoji=False)


def _render_stream(show: Show, as_json: bool) -> None:
    """Rows as they arrive: JSON Lines, or columns as wide as the header or first batch."""
    assert show.stream is not None
    widths: list[int] = []
    for batch in show.stream:
        for row in batch:
            if as_json:
                out.print(json.dumps(row, default=str), highlight=False, markup=False, emoji=False)
                continue
            cells = [value(row, g) for _, g in show.columns]
            if not widths:
                widths = [len(h) for h, _ in show.columns]
                widths = [max(w, len(c)) for w, c in zip(widths, cells, strict=True)]
                header = "  ".join(
                    h.ljust(w) for (h, _), w in zip(show.columns, widths, strict=True)
                )
                out.print(header.rstrip(), highlight=False, markup=False, emoji=False)
            line = "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))
            out.print(line.rstrip(), highlight=False, markup=False, emoji=False)
        out.file.flush()


def api_error(exc: ApiError) -> typer.Exit:
    err.print(f"error {exc.code}: {exc.message}", highlight=False, markup=False, emoji=False)
    for name, message in exc.field_errors.items():
        err.print(f"  {name}: {message}", highlight=False, markup=False, emoji=False)
    for item in exc.details.get("schedules", []) if isinstance(exc.details, dict) else []:
        if isinstance(item, dict):
            err.print(
                f"  {item.get('name') or item.get('schedule_id')}: "
                f"{item.get('method')} {item.get('path')}",
                highlight=False,
                markup=False,
            )
    return typer.Exit(EXIT_API_ERROR)


_COMMON = [
    inspect.Parameter("url", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=UrlOpt),
    inspect.Parameter("token", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=TokenOpt),
    inspect.Parameter(
        "profile", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ProfileOpt
    ),
    inspect.Parameter("as_json", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=JsonOpt),
]


def command(
    group: typer.Typer, name: str, **kwargs: Any
) -> Callable[[Callable[..., Show]], Callable[..., Show]]:
    """Register ``fn(api, ...) -> Show`` as ``group name`` with the common options."""

    def decorate(fn: Callable[..., Show]) -> Callable[..., Show]:
        hints = typing.get_type_hints(fn, include_extras=True)
        own = [
            p.replace(annotation=hints[p.name])
            for p in list(inspect.signature(fn).parameters.values())[1:]
        ]

        def run(*args: Any, **kw: Any) -> None:
            conn = {k: kw.pop(k) for k in ("url", "token", "profile")}
            as_json = kw.pop("as_json")
            try:
                with Api(resolve(**conn)) as api:
                    show = fn(api, *args, **kw)
                    render(show, as_json)  # a --follow stream still calls the API
            except ApiError as exc:
                raise api_error(exc) from None
            if show.exit_code:
                raise typer.Exit(show.exit_code)

        run.__signature__ = inspect.Signature([*own, *_COMMON])  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in [*own, *_COMMON]}
        run.__doc__ = fn.__doc__
        run.__name__ = fn.__name__
        group.command(name, **kwargs)(run)
        return fn

    return decorate


def parse_json_arg(text: str | None, what: str) -> Any:
    """A JSON value given inline or as ``@file``."""
    if text is None:
        return None
    try:
        if text.startswith("@"):
            with open(text[1:], encoding="utf-8") as f:
                return json.load(f)
        return json.loads(text)
    except (OSError, ValueError) as exc:
        raise ApiError("BAD_ARGUMENT", f"{what}: {exc}") from exc


def pairs(items: list[str] | None, what: str) -> dict[str, str] | None:
    """``["k=v", ...]`` -> ``{"k": "v"}``."""
    if not items:
        return None
    result: dict[str, str] = {}
    for item in items:
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise ApiError("BAD_ARGUMENT", f"{what} takes KEY=VALUE, not {item!r}")
        result[key] = val
    return result
