"""``extsched runs ...`` (list with filters, --follow, replay), ``extsched cron preview`` and
``extsched login``/``logout``: the rest of the tenant commands."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from extsched.cli.client import Api, ApiError, remove_profile, resolve, save_profile
from extsched.cli.common import out
from extsched.cli.schedules import ExtOpt, started
from extsched.cli.tenant import Columns, Show, api_error, at, command
from extsched.domain.timing import parse_duration

app = typer.Typer(help="Runs of the tenant's schedules (API): list, follow, replay.")
cron_app = typer.Typer(help="Cron expressions.")

RUN_COLUMNS: Columns = [
    ("scheduled for", lambda r: at(r["scheduled_for"])),
    ("status", "status"),
    ("trigger", "trigger"),
    ("schedule", lambda r: r.get("schedule_name") or r["schedule_id"]),
    ("attempts", "attempts"),
    ("ms", "duration_ms"),
    ("http", "http_status"),
    ("run", "id"),
    ("error", "error"),
]


def _since(text: str | None) -> str | None:
    """RFC 3339 as given, or a duration back from now (``1h``, ``7d``)."""
    if text is None:
        return None
    try:
        return (datetime.now(UTC) - parse_duration(text)).strftime("%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return text


def _keep(run: dict[str, Any], q: dict[str, Any]) -> bool:
    """The filters applied again here: the result is right whichever route answered."""
    for key in ("status", "trigger"):
        if q.get(key) and run[key] not in q[key].split(","):
            return False
    since, until = q.get("since"), q.get("until")
    when = run["scheduled_for"]
    return not ((since and when < _z(since)) or (until and when >= _z(until)))


def _z(text: str) -> str:
    """An instant as the API writes it, so it compares as text with ``scheduled_for``."""
    try:
        return datetime.fromisoformat(text).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return text


@command(app, "list")
def runs_list(
    api: Api,
    extension: ExtOpt = None,
    schedule: Annotated[
        str | None, typer.Option("--schedule", "-s", help="Schedule id, or name with -e.")
    ] = None,
    status: Annotated[
        str | None, typer.Option(help="Comma-separated: succeeded,failed,timed_out,...")
    ] = None,
    trigger: Annotated[str | None, typer.Option(help="schedule, run_now, replay.")] = None,
    since: Annotated[str | None, typer.Option(help="RFC 3339, or a duration (1h, 7d).")] = None,
    until: Annotated[str | None, typer.Option(help="RFC 3339, or a duration ago.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="Runs per page.")] = 20,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new runs.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between polls (--follow).")] = 2.0,
    timeout: Annotated[
        float | None, typer.Option(help="Stop following after this many seconds.")
    ] = None,
) -> Show:
    """List runs, newest first, of one schedule or across the tenant's schedules."""
    q: dict[str, Any] = {
        "status": status,
        "trigger": trigger,
        "since": _since(since),
        "until": _since(until),
        "limit": limit,
    }
    if schedule is not None:
        path = f"/schedules/{api.schedule(schedule, extension)['id']}/runs"
    else:
        path = "/runs"
        if extension is not None:
            q["extension_id"] = api.install(extension)["extension_id"]

    def page() -> list[dict[str, Any]]:
        return [r for r in api.get(path, **q)["items"] if _keep(r, q)]

    if not follow:
        first = api.get(path, **q)
        items = [r for r in first["items"] if _keep(r, q)]
        return Show({**first, "items": items}, RUN_COLUMNS)
    return Show(None, RUN_COLUMNS, stream=_follow(page, interval, timeout))


def _follow(page: Any, interval: float, timeout: float | None) -> Iterator[list[dict[str, Any]]]:
    """The newest page, oldest first, then each new run and each change of status."""
    seen: dict[str, str] = {}
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        fresh = [r for r in reversed(page()) if seen.get(r["id"]) != r["status"]]
        seen.update((r["id"], r["status"]) for r in fresh)
        yield fresh
        if deadline is not None and time.monotonic() >= deadline:
            return
        try:
            time.sleep(interval)  # a poll interval: the API has no push channel
        except KeyboardInterrupt:
            return


@command(app, "replay")
def runs_replay(
    api: Api,
    run: Annotated[str, typer.Argument(help="The run's id.")],
    wait: Annotated[bool, typer.Option("--wait", help="Wait and show the result.")] = False,
    schedule: Annotated[
        str | None, typer.Option("--schedule", "-s", help="The run's schedule (for --wait).")
    ] = None,
    extension: ExtOpt = None,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits at most.")] = 120.0,
) -> Show:
    """Run a past run again (same scheduled_for, today's payload and configuration)."""
    result = api.post(f"/runs/{run}/replay")
    if not wait:
        return started(api, "", result, False, timeout)
    if schedule is not None:
        schedule_id = api.schedule(schedule, extension)["id"]
    else:
        found = [r for r in api.get("/runs", limit=200)["items"] if r["id"] == result["run_id"]]
        if not found:
            raise ApiError("NOT_FOUND", "give --schedule to wait for the replayed run")
        schedule_id = found[0]["schedule_id"]
    return started(api, schedule_id, result, True, timeout)


@command(cron_app, "preview")
def cron_preview(
    api: Api,
    cron: Annotated[str, typer.Argument(help='Five fields, e.g. "30 9 * * 1-5".')],
    timezone: Annotated[str | None, typer.Option(help="IANA zone (default: yours).")] = None,
    count: Annotated[int, typer.Option(min=1, max=100, help="How many fires.")] = 5,
    start: Annotated[str | None, typer.Option("--from", help="First instant (RFC 3339).")] = None,
    dst_gap: Annotated[str | None, typer.Option(help="shift or skip.")] = None,
    dst_repeat: Annotated[str | None, typer.Option(help="first, last or both.")] = None,
) -> Show:
    """Describe a cron expression and list its next fires, and the fires DST moves."""
    body = {
        k: v
        for k, v in {
            "cron": cron,
            "timezone": timezone,
            "count": count,
            "from": start,
            "dst_gap": dst_gap,
            "dst_repeat": dst_repeat,
        }.items()
        if v is not None
    }
    p = api.post("/cron/preview", body)
    rows = [{**f, "kind": "next"} for f in p["next_runs"]]
    rows += [{**f, "kind": "clock change"} for f in p["dst_fires"]]
    columns: Columns = [
        ("", "kind"),
        ("at (UTC)", lambda f: at(f["at"])),
        ("local", "local"),
        ("note", "note"),
    ]
    return Show(p, columns, rows=rows, lines=[p["description"]])


def login(
    url: Annotated[str, typer.Option("--url", envvar="EXTSCHED_URL", help="Service URL.")],
    token: Annotated[
        str,
        typer.Option(
            "--token", envvar="EXTSCHED_TOKEN", prompt=True, hide_input=True, help="API token."
        ),
    ],
    profile: Annotated[str, typer.Option(help="Profile name.")] = "default",
) -> None:
    """Check a token against the service and save it as a profile (file mode 0600)."""
    try:
        with Api(resolve(url, token, None)) as api:
            api.get("/extensions")
    except ApiError as exc:
        if exc.code != "FORBIDDEN":  # a token without tenant rights may still be saved
            raise api_error(exc) from None
    path = save_profile(profile, url, token)
    out.print(f"saved profile {profile!r} for {url} in {path}", highlight=False, markup=False)


def logout(profile: Annotated[str, typer.Option(help="Profile name.")] = "default") -> None:
    """Forget a saved profile."""
    found = remove_profile(profile)
    out.print(f"removed profile {profile!r}" if found else f"no profile {profile!r}")
