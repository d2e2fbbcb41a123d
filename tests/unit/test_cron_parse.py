"""The cron dialect of SPEC §5: what we accept, what we refuse (with the exact message), and
how expressions are described to users."""

from __future__ import annotations

import pytest

from extsched.domain.cron import CronError, CronExpr, describe, parse_cron

ALL_MINUTES = frozenset(range(60))
ALL_HOURS = frozenset(range(24))
ALL_DAYS = frozenset(range(1, 32))
ALL_MONTHS = frozenset(range(1, 13))
ALL_WEEKDAYS = frozenset(range(7))


def test_it_parses_the_star_expression_into_full_sets() -> None:
    expr = parse_cron("* * * * *")
    assert expr == CronExpr(
        source="* * * * *",
        minutes=ALL_MINUTES,
        hours=ALL_HOURS,
        days=ALL_DAYS,
        months=ALL_MONTHS,
        weekdays=ALL_WEEKDAYS,
        dom_restricted=False,
        dow_restricted=False,
    )
    assert not expr.fixed_time


@pytest.mark.parametrize(
    ("field", "text", "values"),
    [
        ("minutes", "5", {5}),
        ("minutes", "05", {5}),
        ("minutes", "0,15,45", {0, 15, 45}),
        ("minutes", "10-13", {10, 11, 12, 13}),
        ("minutes", "*/15", {0, 15, 30, 45}),
        ("minutes", "*/1", set(range(60))),
        ("minutes", "*/60", {0}),
        ("minutes", "*/7", set(range(0, 60, 7))),
        ("minutes", "10-30/10", {10, 20, 30}),
        ("minutes", "50/5", {50, 55}),
        ("minutes", "1,5-7,*/30", {0, 1, 5, 6, 7, 30}),
        ("minutes", "59", {59}),
        ("hours", "*/6", {0, 6, 12, 18}),
        ("hours", "9-17", set(range(9, 18))),
        ("hours", "23", {23}),
        ("days", "1", {1}),
        ("days", "31", {31}),
        ("days", "*/10", {1, 11, 21, 31}),
        ("days", "1-7", set(range(1, 8))),
        ("months", "JAN", {1}),
        ("months", "jan-mar", {1, 2, 3}),
        ("months", "Dec", {12}),
        ("months", "JAN-DEC/3", {1, 4, 7, 10}),
        ("months", "2,feb,FEB", {2}),
        ("months", "*/2", {1, 3, 5, 7, 9, 11}),
        ("weekdays", "MON-FRI", {1, 2, 3, 4, 5}),
        ("weekdays", "sun", {0}),
        ("weekdays", "7", {0}),
        ("weekdays", "0,7", {0}),
        ("weekdays", "5-7", {5, 6, 0}),
        ("weekdays", "SAT-7", {6, 0}),
        ("weekdays", "0-7", set(range(7))),
        ("weekdays", "*/2", {0, 2, 4, 6}),
        ("weekdays", "1/2", {1, 3, 5, 0}),
        ("weekdays", "mon,Wed,FRI", {1, 3, 5}),
    ],
)
def test_it_accepts_every_form_of_field(field: str, text: str, values: set[int]) -> None:
    position = {"minutes": 0, "hours": 1, "days": 2, "months": 3, "weekdays": 4}[field]
    parts = ["*"] * 5
    parts[position] = text
    expr = parse_cron(" ".join(parts))
    assert getattr(expr, field) == frozenset(values)


def test_it_tolerates_extra_whitespace_and_keeps_the_source_as_given() -> None:
    source = "  30\t9  *  * \t1-5 "
    expr = parse_cron(source)
    assert expr.source == source
    assert (expr.minutes, expr.hours, expr.weekdays) == (
        frozenset({30}),
        frozenset({9}),
        frozenset({1, 2, 3, 4, 5}),
    )


@pytest.mark.parametrize(
    ("cron", "dom", "dow"),
    [
        ("0 0 1 * *", True, False),
        ("0 0 * * 1", False, True),
        ("0 0 */1 * 1", False, True),
        ("0 0 1 * */1", True, False),
        ("0 0 * * *", False, False),
    ],
)
def test_it_records_which_day_field_is_restricted(cron: str, dom: bool, dow: bool) -> None:
    expr = parse_cron(cron)
    assert (expr.dom_restricted, expr.dow_restricted) == (dom, dow)


@pytest.mark.parametrize(
    ("cron", "fixed"),
    [
        ("30 2 * * *", True),
        ("0 0 1 1 *", True),
        ("30 2 * * 1-5", True),
        ("0,30 2 * * *", False),
        ("30 1,2 * * *", False),
        ("30 * * * *", False),
        ("*/15 2 * * *", False),
        ("0-0 2-2 * * *", True),
    ],
)
def test_it_knows_fixed_time_schedules(cron: str, fixed: bool) -> None:
    assert parse_cron(cron).fixed_time is fixed


BOTH_DAYS = (
    "cron: day-of-month and day-of-week cannot both be restricted (cron engines disagree "
    "on whether that means 'and' or 'or'); use '*' in one of them"
)
FIELD_COUNT = "cron: expected 5 fields (minute hour day-of-month month day-of-week), got {}"


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("", "cron: must not be empty"),
        ("   ", "cron: must not be empty"),
        ("* * * *", FIELD_COUNT.format(4)),
        ("* * * * * *", FIELD_COUNT.format(6)),
        ("0 * * * * * 2026", FIELD_COUNT.format(7)),
        (
            "@daily",
            "cron: macros such as '@daily' are not supported; write the 5 fields, "
            "e.g. '0 0 * * *' for daily at midnight",
        ),
        (
            "@reboot",
            "cron: macros such as '@reboot' are not supported; write the 5 fields, "
            "e.g. '0 0 * * *' for daily at midnight",
        ),
        ("61 * * * *", "minute: 61 is out of range 0-59"),
        ("60 * * * *", "minute: 60 is out of range 0-59"),
        ("99999999999 * * * *", "minute: 99999999999 is out of range 0-59"),
        ("* 24 * * *", "hour: 24 is out of range 0-23"),
        ("* * 0 * *", "day-of-month: 0 is out of range 1-31"),
        ("* * 32 * *", "day-of-month: 32 is out of range 1-31"),
        ("* * * 0 *", "month: 0 is out of range 1-12"),
        ("* * * 13 *", "month: 13 is out of range 1-12"),
        ("* * * * 8", "day-of-week: 8 is out of range 0-7"),
        ("*/0 * * * *", "minute: step must be at least 1"),
        ("* */0 * * *", "hour: step must be at least 1"),
        ("* 1-5/0 * * *", "hour: step must be at least 1"),
        ("*/61 * * * *", "minute: step 61 is larger than the field's 60 values"),
        ("* * * * */8", "day-of-week: step 8 is larger than the field's 7 values"),
        ("*/ * * * *", "minute: the step in '*/' must be a number"),
        ("*/2x * * * *", "minute: the step in '*/2x' must be a number"),
        ("*/-1 * * * *", "minute: the step in '*/-1' must be a number"),
        ("/5 * * * *", "minute: '/5' needs a start, e.g. '*/5'"),
        ("1,,2 * * * *", "minute: empty item in the list '1,,2'"),
        ("1, * * * *", "minute: empty item in the list '1,'"),
        ("5-1 * * * *", "minute: range '5-1' is backwards (the start must not exceed the end)"),
        (
            "0 0 * * SAT-SUN",
            "day-of-week: range 'SAT-SUN' is backwards (the start must not exceed the end); "
            "Sunday can also be written 7, e.g. 'SAT-7'",
        ),
        ("1- * * * *", "minute: '1-' is not a valid range"),
        ("-1 * * * *", "minute: '-1' is not a valid range"),
        ("1-2-3 * * * *", "minute: '1-2-3' is not a valid range"),
        ("abc * * * *", "minute: 'abc' is not a number"),
        ("1.5 * * * *", "minute: '1.5' is not a number"),
        ("\u0661 * * * *", "minute: '\u0661' is not a number"),  # Arabic-Indic digit one
        ("* MON * * *", "hour: 'MON' is not a number"),
        ("* * * FOO *", "month: 'FOO' is not a number or month name (JAN-DEC)"),
        ("* * * MON *", "month: 'MON' is not a number or month name (JAN-DEC)"),
        ("* * * JANUARY *", "month: 'JANUARY' is not a number or month name (JAN-DEC)"),
        ("* * * * JAN", "day-of-week: 'JAN' is not a number or weekday name (SUN-SAT)"),
        ("* * * * MONDAY", "day-of-week: 'MONDAY' is not a number or weekday name (SUN-SAT)"),
        ("* * L * *", "day-of-month: 'L' (last day of the month) is not supported"),
        ("* * l * *", "day-of-month: 'L' (last day of the month) is not supported"),
        ("* * 15W * *", "day-of-month: 'W' (nearest weekday) is not supported"),
        ("* * LW * *", "day-of-month: 'LW' (last weekday of the month) is not supported"),
        ("* * * * 5L", "day-of-week: 'L' (last given weekday of the month) is not supported"),
        ("* * * * 5#3", "day-of-week: '#' (nth weekday of the month) is not supported"),
        ("* * ? * *", "day-of-month: '?' is not supported; use '*'"),
        ("* * * * ?", "day-of-week: '?' is not supported; use '*'"),
        ("* * 1 * 1", BOTH_DAYS),
        ("0 0 1-31 * 1-5", BOTH_DAYS),
        ("0 0 */2 * MON", BOTH_DAYS),
        ("0 0 1 * */2", BOTH_DAYS),
        ("x" * 300, "cron: too long (at most 256 characters)"),
    ],
)
def test_it_refuses_with_a_message_naming_the_field(cron: str, message: str) -> None:
    with pytest.raises(CronError) as caught:
        parse_cron(cron)
    assert str(caught.value) == message
    assert caught.value.field == "cron"


def test_it_reports_the_first_bad_field_from_the_left() -> None:
    with pytest.raises(CronError, match=r"^minute: 61 is out of range 0-59$"):
        parse_cron("61 25 * * *")


def test_it_is_a_value_error_so_generic_handlers_catch_it() -> None:
    assert issubclass(CronError, ValueError)


@pytest.mark.parametrize(
    ("cron", "text"),
    [
        ("* * * * *", "Every minute"),
        ("*/1 * * * *", "Every minute"),
        ("*/5 * * * *", "Every 5 minutes"),
        ("*/15 * * * *", "Every 15 minutes"),
        ("*/7 * * * *", "At every 7th minute"),
        ("5 * * * *", "At minute 5 past every hour"),
        ("0 * * * *", "At minute 0 past every hour"),
        ("0,30 * * * *", "Every 30 minutes"),
        ("0,45 * * * *", "At minutes 0 and 45 past every hour"),
        ("0-29 * * * *", "At minutes 0 through 29 past every hour"),
        ("5/15 * * * *", "At every 15th minute from 5 through 50 past every hour"),
        ("30 9 * * *", "At 09:30"),
        ("0 0 * * *", "At 00:00"),
        ("30 9 * * 1-5", "At 09:30, Monday through Friday"),
        ("30 9 * * MON-FRI", "At 09:30, Monday through Friday"),
        ("0 9,17 * * *", "At 09:00 and 17:00"),
        ("*/30 9 * * *", "At 09:00 and 09:30"),
        ("0 */4 * * *", "At 00:00, 04:00, 08:00, 12:00, 16:00 and 20:00"),
        ("0 */2 * * *", "At minute 0 past every 2nd hour"),
        ("0 9-17 * * *", "At minute 0 past every hour from 9 through 17"),
        ("15 1,3,5,7,9,11,13 * * *", "At minute 15 past every 2nd hour from 1 through 13"),
        ("0 1,2,3,9,20,21,22 * * *", "At minute 0 past hours 1, 2, 3, 9, 20, 21 and 22"),
        ("0-29 6 * * *", "At minutes 0 through 29 past hour 6"),
        ("*/15 9-17 * * 1-5", "Every 15 minutes, between 09:00 and 17:59, Monday through Friday"),
        ("* 9 * * *", "Every minute, between 09:00 and 09:59"),
        ("*/10 */2 * * *", "Every 10 minutes during every 2nd hour"),
        ("0 0 1 * *", "At 00:00 on day 1 of the month"),
        ("0 0 1,15 * *", "At 00:00 on days 1 and 15 of the month"),
        ("0 0 1-7 * *", "At 00:00 on days 1 through 7 of the month"),
        ("15 10 */2 * *", "At 10:15 on every 2nd day of the month"),
        ("0 0 1 1 *", "At 00:00 on day 1 of the month in January"),
        ("0 0 * * 0", "At 00:00 on Sunday"),
        ("0 0 * * 7", "At 00:00 on Sunday"),
        ("0 12 * * SAT,SUN", "At 12:00 on Saturday and Sunday"),
        ("0 12 * * 1,3,5", "At 12:00 on Monday, Wednesday and Friday"),
        ("0 18 * * 5-7", "At 18:00, Friday through Sunday"),
        ("0 0 * 1-3 *", "At 00:00, January through March"),
        ("0 0 1 */3 *", "At 00:00 on day 1 of the month in January, April, July and October"),
        ("0 8 * 6,7 1-5", "At 08:00, Monday through Friday in June and July"),
    ],
)
def test_it_describes_expressions_in_plain_english(cron: str, text: str) -> None:
    assert describe(parse_cron(cron)) == text
