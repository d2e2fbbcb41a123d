"""The pure rules of notifications: URL form, address classes, backoff and give-up, payload."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import pytest

from extsched.domain import notify
from extsched.domain.notify import UrlRefused

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "private"),  # carrier-grade NAT: not global
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::ffff:10.0.0.1", "private"),
        ("93.184.215.14", None),
        ("2606:4700::6810:85e5", None),
    ],
)
def test_it_classifies_addresses(address: str, reason: str | None) -> None:
    assert notify.forbidden_reason(ipaddress.ip_address(address)) == reason


def test_it_parses_urls_keeping_host_for_the_header_and_sni() -> None:
    t = notify.parse_url("https://Hooks.Example.com/in?x=1")
    assert (t.scheme, t.host, t.port, t.target) == ("https", "hooks.example.com", 443, "/in?x=1")
    assert t.host_header == "hooks.example.com"
    assert t.url_for(ipaddress.ip_address("93.184.215.14")) == "https://93.184.215.14:443/in?x=1"
    v6 = notify.parse_url("http://[2606:4700::1]:8080")
    assert v6.host_header == "[2606:4700::1]:8080" and v6.target == "/"
    assert v6.url_for(ipaddress.ip_address("2606:4700::1")) == "http://[2606:4700::1]:8080/"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://x.example",
        "javascript:alert(1)",
        "http://",
        "http://a b.example",
        "http://u@x.example",
        "http://x.example/#f",
        "http://x.example:99999/",
        "https://" + "a" * 2050 + ".example",
    ],
)
def test_it_refuses_malformed_urls(url: str) -> None:
    with pytest.raises(UrlRefused):
        notify.parse_url(url)


def test_it_backs_off_exponentially_and_gives_up_after_a_day() -> None:
    waits = [notify.backoff_seconds(n, 30, 3600) for n in range(1, 10)]
    assert waits == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    kw = {"base": 30.0, "cap": 3600.0, "give_up": 86400.0}
    assert notify.next_attempt(attempts=1, now=T0, created_at=T0, **kw) == T0 + timedelta(
        seconds=30
    )
    late = T0 + timedelta(hours=23, minutes=30)
    assert notify.next_attempt(attempts=20, now=late, created_at=T0, **kw) is None


def test_it_builds_the_spec_payload() -> None:
    facts = {
        "extension_id": "e1",
        "schedule": {"id": "s1", "name": "Nightly"},
        "run": {
            "id": "r1",
            "status": "timed_out",
            "scheduled_for": "2026-12-01T10:00:00+01:00",
            "http_status": None,
            "error": "timed out",
        },
    }
    body = notify.payload(type="run_failed", at=T0, tenant_id="acme", facts=facts, count=3)
    assert body == {
        "type": "run_failed",
        "at": "2026-12-01T09:00:00Z",
        "tenant_id": "acme",
        "extension_id": "e1",
        "schedule": {"id": "s1", "name": "Nightly"},
        "run": {
            "id": "r1",
            "status": "timed_out",
            "scheduled_for": "2026-12-01T09:00:00Z",
            "http_status": None,
            "error": "timed out",
        },
        "count": 3,
    }
    test = notify.payload(type="test", at=T0, tenant_id="acme", facts={}, count=1)
    assert test == {"type": "test", "at": "2026-12-01T09:00:00Z", "tenant_id": "acme"}


def test_it_sends_an_idn_host_as_punycode() -> None:
    t = notify.parse_url("https://bücher.example/in")
    assert t.host == "xn--bcher-kva.example" and t.host_header == "xn--bcher-kva.example"
    with pytest.raises(UrlRefused, match="valid host"):
        notify.parse_url("http://" + "a" * 70 + ".example/")
