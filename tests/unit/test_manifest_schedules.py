"""Default schedules in the manifest (SPEC §7) and the published JSON Schema, which must agree
with the validator on what it accepts and refuses."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from extsched.domain.manifest import DefaultSchedule, parse_manifest
from extsched.domain.manifest_schema import manifest_json_schema
from tests.unit.test_manifest import errors_of, make_manifest

SYNC = {"name": "Nightly sync", "endpoint": "POST /sync", "cron": "0 2 * * *"}


def with_schedules(*entries: object) -> dict[str, Any]:
    return make_manifest(schedules=list(entries))


class TestDefaultSchedules:
    def test_it_resolves_each_schedule_to_an_endpoint_of_the_manifest(self) -> None:
        m = parse_manifest(
            with_schedules(
                SYNC,
                {
                    "name": "Hourly",
                    "endpoint": "post  sync/",
                    "cron": "15 * * * *",
                    "timezone": "Europe/Paris",
                    "payload": {"full": False},
                    "enabled": False,
                },
            )
        )
        assert m.schedules == (
            DefaultSchedule("Nightly sync", "POST", "/sync", "0 2 * * *", None, None, True),
            DefaultSchedule(
                "Hourly", "POST", "/sync", "15 * * * *", "Europe/Paris", {"full": False}, False
            ),
        )

    def test_a_manifest_without_schedules_has_none(self) -> None:
        assert parse_manifest(make_manifest()).schedules == ()
        assert parse_manifest(make_manifest(schedules=None)).schedules == ()

    @pytest.mark.parametrize(
        ("entry", "key", "message"),
        [
            ({**SYNC, "endpoint": "POST /nope"}, "endpoint", "POST /nope is not an endpoint"),
            ({**SYNC, "endpoint": "GET /contacts/:id"}, "endpoint", "cannot be scheduled"),
            ({**SYNC, "endpoint": "/sync"}, "endpoint", 'must be "METHOD /path"'),
            ({**SYNC, "cron": "* * *"}, "cron", "cron"),
            ({**SYNC, "cron": "@daily"}, "cron", "cron"),
            ({**SYNC, "timezone": "Mars/Olympus"}, "timezone", ""),
            ({**SYNC, "payload": 3}, "payload", "must be a JSON object or array"),
            ({**SYNC, "enabled": "yes"}, "enabled", "must be true or false"),
            ({**SYNC, "name": "  "}, "name", "must be 1 to 128 characters"),
            ({**SYNC, "every": "day"}, "every", "unknown field"),
            ({"endpoint": "POST /sync", "cron": "0 2 * * *"}, "name", "required"),
        ],
    )
    def test_it_refuses_an_invalid_schedule_by_field(
        self, entry: dict[str, Any], key: str, message: str
    ) -> None:
        errors = errors_of(with_schedules(entry))
        assert message in errors[f"schedules.0.{key}"]

    def test_it_refuses_an_endpoint_that_cannot_be_scheduled(self) -> None:
        doc = make_manifest(
            api={"endpoints": [{"method": "DELETE", "path": "/cache"}]},
            schedules=[{**SYNC, "endpoint": "DELETE /cache"}],
        )
        assert "cannot be scheduled" in errors_of(doc)["schedules.0.endpoint"]

    def test_it_refuses_duplicate_names_and_non_lists(self) -> None:
        dup = errors_of(with_schedules(SYNC, {**SYNC, "name": "NIGHTLY SYNC"}))
        assert dup == {"schedules.1.name": "duplicate schedule name"}
        assert errors_of(make_manifest(schedules={})) == {"schedules": "must be a list of objects"}
        assert errors_of(with_schedules("x")) == {"schedules.0": "must be an object"}


VALID = [
    make_manifest(),
    with_schedules(SYNC),
    make_manifest(description=..., capabilities=..., runtime=..., api=...),
    make_manifest(version="2.0.0-beta.1+build.5", capabilities=None),
    make_manifest(api={"endpoints": [{"method": "brew", "path": "/tea"}]}),  # skipped, not refused
]
INVALID = [
    make_manifest(publisher=...),
    make_manifest(name="Not Valid"),
    make_manifest(version="1.4"),
    make_manifest(capabilities=["http.fetch"]),
    make_manifest(capabilities=["cap:a", "cap:a"]),
    make_manifest(runtime={"upstream": "http://x"}),
    make_manifest(api={"endpoints": {"method": "GET"}}),
    make_manifest(api={"endpoints": [{"method": "GET"}]}),
    make_manifest(typo=1),
    with_schedules({**SYNC, "endpoint": "sync"}),
    with_schedules({**SYNC, "payload": "text"}),
    with_schedules({"name": "x", "cron": "0 2 * * *"}),
    "not an object",
]


class TestPublishedSchema:
    @pytest.mark.parametrize("doc", VALID)
    def test_it_accepts_what_the_registry_accepts(self, doc: Any) -> None:
        parse_manifest(doc)
        jsonschema.Draft202012Validator(manifest_json_schema()).validate(doc)

    @pytest.mark.parametrize("doc", INVALID)
    def test_it_refuses_what_the_registry_refuses(self, doc: Any) -> None:
        errors_of(doc)
        validator = jsonschema.Draft202012Validator(manifest_json_schema())
        assert not validator.is_valid(doc)

    def test_it_is_a_valid_draft_2020_12_schema_naming_every_field(self) -> None:
        schema = manifest_json_schema()
        jsonschema.Draft202012Validator.check_schema(schema)
        assert set(schema["properties"]) == {
            "name",
            "publisher",
            "version",
            "description",
            "capabilities",
            "runtime",
            "api",
            "schedules",
        }
        assert schema["additionalProperties"] is False
