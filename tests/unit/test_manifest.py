"""Manifest validation, endpoint normalization, schedulability and content hashing."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from extsched.domain.manifest import (
    EndpointSpec,
    ManifestInvalid,
    SkippedEndpoint,
    content_hash,
    endpoint_schedulability,
    find_endpoint,
    normalize_path,
    parse_manifest,
    path_matches,
)


def make_manifest(**overrides: Any) -> dict[str, Any]:
    """The SPEC §7 example, with top-level fields replaced (a value of ... removes the field)."""
    data: dict[str, Any] = {
        "name": "com.example.crm-sync",
        "publisher": "Example Inc.",
        "version": "1.4.0",
        "description": "Keeps CRM contacts in sync",
        "capabilities": ["cap:http.fetch", "cap:secrets.get"],
        "runtime": {"upstream_url": "http://127.0.0.1:9100"},
        "api": {
            "endpoints": [
                {"method": "POST", "path": "/sync", "handler": "handlers/sync"},
                {"method": "GET", "path": "/contacts/:id", "handler": "handlers/contact"},
            ]
        },
    }
    for key, value in overrides.items():
        if value is ...:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def with_endpoints(*entries: object) -> dict[str, Any]:
    return make_manifest(api={"endpoints": list(entries)})


def errors_of(data: object) -> dict[str, str]:
    with pytest.raises(ManifestInvalid) as info:
        parse_manifest(data)
    return info.value.field_errors


class TestValidManifest:
    def test_it_parses_the_spec_example(self) -> None:
        manifest = parse_manifest(make_manifest())
        assert manifest.name == "com.example.crm-sync"
        assert manifest.publisher == "Example Inc."
        assert manifest.version == "1.4.0"
        assert manifest.description == "Keeps CRM contacts in sync"
        assert manifest.capabilities == ("cap:http.fetch", "cap:secrets.get")
        assert manifest.upstream_url == "http://127.0.0.1:9100"
        assert manifest.endpoints == (
            EndpointSpec("POST", "/sync", "handlers/sync"),
            EndpointSpec("GET", "/contacts/:id", "handlers/contact"),
        )
        assert manifest.skipped == ()
        assert manifest.content_hash == content_hash(make_manifest())

    def test_it_accepts_a_minimal_manifest(self) -> None:
        manifest = parse_manifest({"name": "ab", "publisher": "P", "version": "0.0.1"})
        assert manifest.description is None
        assert manifest.capabilities == ()
        assert manifest.upstream_url is None
        assert manifest.endpoints == ()

    def test_it_treats_null_optional_fields_as_absent(self) -> None:
        manifest = parse_manifest(
            make_manifest(description=None, capabilities=None, runtime=None, api=None)
        )
        assert (manifest.description, manifest.capabilities) == (None, ())
        assert (manifest.upstream_url, manifest.endpoints) == (None, ())

    def test_it_keeps_a_private_copy_of_the_raw_manifest(self) -> None:
        data = make_manifest()
        manifest = parse_manifest(data)
        data["api"]["endpoints"].clear()
        assert manifest.raw == make_manifest()
        assert manifest.raw is not data

    def test_it_defaults_a_missing_handler_to_empty(self) -> None:
        manifest = parse_manifest(with_endpoints({"method": "GET", "path": "/x"}))
        assert manifest.endpoints == (EndpointSpec("GET", "/x", ""),)


class TestFieldErrors:
    def test_it_refuses_a_non_object(self) -> None:
        assert errors_of([1, 2]) == {"manifest": "must be a JSON object"}
        assert errors_of("x") == {"manifest": "must be a JSON object"}
        assert errors_of(None) == {"manifest": "must be a JSON object"}

    def test_it_reports_every_error_at_once(self) -> None:
        data = make_manifest(name="Bad Name", version="1.0", publisher=..., extra=1)
        data["api"]["endpoints"][1] = {"method": 5, "path": "/x"}
        assert errors_of(data) == {
            "name": "must match ^[a-z0-9][a-z0-9._-]{1,127}$",
            "version": "must be a semantic version (e.g. 1.4.0)",
            "publisher": "required",
            "extra": "unknown field",
            "api.endpoints.1.method": "must be a string",
        }

    def test_it_refuses_unknown_top_level_fields_each_under_its_own_key(self) -> None:
        errors = errors_of(make_manifest(endpoints=[], capabilites=[]))
        assert errors == {"endpoints": "unknown field", "capabilites": "unknown field"}

    @pytest.mark.parametrize("field", ["name", "publisher", "version"])
    def test_it_requires_the_identity_fields(self, field: str) -> None:
        assert errors_of(make_manifest(**{field: ...})) == {field: "required"}

    @pytest.mark.parametrize("field", ["name", "publisher", "version", "description"])
    @pytest.mark.parametrize("value", [1, 1.5, True, ["x"], {"x": 1}])
    def test_it_does_not_coerce_string_fields(self, field: str, value: object) -> None:
        assert errors_of(make_manifest(**{field: value})) == {field: "must be a string"}

    @pytest.mark.parametrize(
        "name", ["ab", "a1", "com.example.crm-sync", "a_b", "0abc", "a" + "b" * 127]
    )
    def test_it_accepts_valid_names(self, name: str) -> None:
        assert parse_manifest(make_manifest(name=name)).name == name

    @pytest.mark.parametrize(
        "name",
        ["", "a", "Abc", "-abc", ".abc", "_abc", "ab c", "a/b", "a" + "b" * 128, "abc\n", "äbc"],
    )
    def test_it_refuses_invalid_names(self, name: str) -> None:
        assert set(errors_of(make_manifest(name=name))) == {"name"}

    @pytest.mark.parametrize(
        "version",
        [
            "0.0.0",
            "1.4.0",
            "10.20.30",
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-0.3.7",
            "1.0.0-x.7.z.92",
            "1.0.0-x-y-z.--",
            "1.0.0+20130313144700",
            "1.0.0-beta+exp.sha.5114f85",
            "1.0.0+21AF26D3----117B344092BD",
        ],
    )
    def test_it_accepts_semantic_versions(self, version: str) -> None:
        assert parse_manifest(make_manifest(version=version)).version == version

    @pytest.mark.parametrize(
        "version",
        [
            "",
            "1",
            "1.2",
            "1.2.3.4",
            "01.2.3",
            "1.02.3",
            "1.2.03",
            "v1.2.3",
            "1.2.3-",
            "1.2.3-01",
            "1.2.3-a..b",
            "1.2.3+",
            "1.2.3+a..b",
            "1.2.3 ",
            "1.2.3\n",
            "1.2.3-ä",
            "\u0661.2.3",  # Arabic-Indic digit one
        ],
    )
    def test_it_refuses_non_semantic_versions(self, version: str) -> None:
        assert set(errors_of(make_manifest(version=version))) == {"version"}

    def test_it_refuses_a_blank_publisher(self) -> None:
        assert errors_of(make_manifest(publisher="  ")) == {"publisher": "must not be blank"}

    def test_it_refuses_overlong_free_text(self) -> None:
        errors = errors_of(make_manifest(publisher="p" * 201, description="d" * 4001))
        assert set(errors) == {"publisher", "description"}


class TestCapabilities:
    def test_it_requires_a_list(self) -> None:
        errors = errors_of(make_manifest(capabilities="cap:http.fetch"))
        assert errors == {"capabilities": "must be a list of strings"}

    def test_it_reports_each_bad_capability_by_index(self) -> None:
        errors = errors_of(
            make_manifest(
                capabilities=["cap:http.fetch", 3, "http.fetch", "cap:HTTP", "cap:http.fetch"]
            )
        )
        assert errors == {
            "capabilities.1": "must be a string",
            "capabilities.2": "must match ^cap:[a-z0-9][a-z0-9._-]*$",
            "capabilities.3": "must match ^cap:[a-z0-9][a-z0-9._-]*$",
            "capabilities.4": "duplicate capability",
        }

    @pytest.mark.parametrize("cap", ["cap:x", "cap:http.fetch", "cap:a-b_c.1"])
    def test_it_accepts_capability_names(self, cap: str) -> None:
        assert parse_manifest(make_manifest(capabilities=[cap])).capabilities == (cap,)

    @pytest.mark.parametrize("cap", ["cap:", "cap:.x", "cap: x", "Cap:x", "cap:x\n"])
    def test_it_refuses_malformed_capability_names(self, cap: str) -> None:
        assert set(errors_of(make_manifest(capabilities=[cap]))) == {"capabilities.0"}


class TestRuntime:
    @pytest.mark.parametrize(
        "url",
        [
            "http://127.0.0.1:9100",
            "https://ext.example.com",
            "https://ext.example.com/base/path/",
            "http://[::1]:8080/demo",
        ],
    )
    def test_it_accepts_http_urls(self, url: str) -> None:
        manifest = parse_manifest(make_manifest(runtime={"upstream_url": url}))
        assert manifest.upstream_url == url

    @pytest.mark.parametrize(
        "url",
        [
            "",
            "ftp://example.com",
            "example.com",
            "http://",
            "http:///path",
            "http://exa mple.com",
            "http://example.com:99999",
            "http://example.com/?q=1",
            "http://example.com/#frag",
            "javascript:alert(1)",
        ],
    )
    def test_it_refuses_other_urls(self, url: str) -> None:
        errors = errors_of(make_manifest(runtime={"upstream_url": url}))
        assert set(errors) == {"runtime.upstream_url"}

    def test_it_checks_the_url_type(self) -> None:
        errors = errors_of(make_manifest(runtime={"upstream_url": 80}))
        assert errors == {"runtime.upstream_url": "must be a string"}

    def test_it_allows_a_runtime_without_upstream(self) -> None:
        assert parse_manifest(make_manifest(runtime={})).upstream_url is None

    def test_it_refuses_a_non_object_runtime_and_unknown_runtime_keys(self) -> None:
        assert errors_of(make_manifest(runtime="http://x")) == {"runtime": "must be an object"}
        errors = errors_of(make_manifest(runtime={"upstream_uri": "http://x"}))
        assert errors == {"runtime.upstream_uri": "unknown field"}


class TestEndpointStructure:
    def test_it_refuses_a_non_object_api(self) -> None:
        assert errors_of(make_manifest(api=[])) == {"api": "must be an object"}

    def test_it_refuses_unknown_api_keys(self) -> None:
        assert errors_of(make_manifest(api={"endpoint": []})) == {"api.endpoint": "unknown field"}

    def test_it_allows_an_api_without_endpoints(self) -> None:
        assert parse_manifest(make_manifest(api={})).endpoints == ()

    def test_it_requires_a_list_of_endpoints(self) -> None:
        errors = errors_of(make_manifest(api={"endpoints": {"method": "GET"}}))
        assert errors == {"api.endpoints": "must be a list of objects"}

    def test_it_reports_structural_endpoint_errors_by_index(self) -> None:
        errors = errors_of(
            with_endpoints(
                {"method": "GET", "path": "/ok"},
                "GET /x",
                {"path": "/y"},
                {"method": "GET", "path": None},
                {"method": "GET", "path": 7, "handler": 1},
                {"method": "GET", "path": "/z", "hander": "h"},
                None,
            )
        )
        assert errors == {
            "api.endpoints.1": "must be an object",
            "api.endpoints.2.method": "required",
            "api.endpoints.3.path": "required",
            "api.endpoints.4.path": "must be a string",
            "api.endpoints.4.handler": "must be a string",
            "api.endpoints.5.hander": "unknown field",
            "api.endpoints.6": "must be an object",
        }


class TestEndpointNormalization:
    @pytest.mark.parametrize(
        ("given", "expected"),
        [
            ("get", "GET"),
            ("Post", "POST"),
            (" put ", "PUT"),
            ("patch", "PATCH"),
            ("delete", "DELETE"),
            ("head", "HEAD"),
            ("options", "OPTIONS"),
        ],
    )
    def test_it_upper_cases_methods(self, given: str, expected: str) -> None:
        manifest = parse_manifest(with_endpoints({"method": given, "path": "/x"}))
        assert manifest.endpoints[0].method == expected

    @pytest.mark.parametrize("method", ["", "FETCH", "TRACE", "CONNECT", "G ET", "GET\n/x"])
    def test_it_skips_unknown_methods(self, method: str) -> None:
        manifest = parse_manifest(with_endpoints({"method": method, "path": "/x"}))
        assert manifest.endpoints == ()
        assert manifest.skipped == (SkippedEndpoint(method, "/x", "invalid_method"),)

    @pytest.mark.parametrize(
        ("given", "expected"),
        [
            ("/sync", "/sync"),
            ("sync", "/sync"),
            ("//sync", "/sync"),
            ("///a/b", "/a/b"),
            ("/sync/", "/sync"),
            ("/sync//", "/sync"),
            ("  /sync  ", "/sync"),
            ("/", "/"),
            ("//", "/"),
            ("/contacts/:id", "/contacts/:id"),
            ("/contacts/{id}/notes", "/contacts/{id}/notes"),
            ("/files/*", "/files/*"),
            ("/a-b_c.d~e/%20", "/a-b_c.d~e/%20"),
            ("/caf%C3%A9/%2e%2e.txt", "/caf%C3%A9/%2e%2e.txt"),
        ],
    )
    def test_it_normalizes_paths(self, given: str, expected: str) -> None:
        manifest = parse_manifest(with_endpoints({"method": "GET", "path": given}))
        assert manifest.endpoints == (EndpointSpec("GET", expected, ""),)

    @pytest.mark.parametrize(
        "path",
        [
            "",
            "   ",
            "/a//b",
            "/a b",
            "/a\tb",
            "/a\x00b",
            "/a\x7fb",
            "/sync?x=1",
            "/sync?",
            "/sync#top",
            "/a/../b",
            "/./a",
            "/" + "a" * 2048,
            # Servers that decode before routing would see another path.
            "/%2e%2e/etc",
            "/%2E%2E/etc",
            "/a/.%2e/b",
            "/%2e/a",
            "/a\\b",
            "\\a",
            "/a%5cb",
            "/a%2Fb",
            "/a%00b",
            "/a%0Ab",
            "/a%zzb",
            "/a%2",
        ],
    )
    def test_it_skips_invalid_paths(self, path: str) -> None:
        manifest = parse_manifest(with_endpoints({"method": "GET", "path": path}))
        assert manifest.endpoints == ()
        assert manifest.skipped == (SkippedEndpoint("GET", path, "invalid_path"),)

    def test_it_reports_an_invalid_method_before_an_invalid_path(self) -> None:
        manifest = parse_manifest(with_endpoints({"method": "NOPE", "path": "/a b"}))
        assert manifest.skipped == (SkippedEndpoint("NOPE", "/a b", "invalid_method"),)

    def test_it_drops_duplicates_after_normalization_first_wins(self) -> None:
        manifest = parse_manifest(
            with_endpoints(
                {"method": "POST", "path": "/sync", "handler": "first"},
                {"method": "post", "path": "sync/", "handler": "second"},
                {"method": "GET", "path": "/sync", "handler": "other-method"},
                {"method": "POST", "path": "/Sync", "handler": "case-differs"},
            )
        )
        assert manifest.endpoints == (
            EndpointSpec("POST", "/sync", "first"),
            EndpointSpec("GET", "/sync", "other-method"),
            EndpointSpec("POST", "/Sync", "case-differs"),
        )
        assert manifest.skipped == (SkippedEndpoint("post", "sync/", "duplicate"),)

    def test_it_keeps_declaration_order_and_reports_all_skips(self) -> None:
        manifest = parse_manifest(
            with_endpoints(
                {"method": "GET", "path": "/b"},
                {"method": "BREW", "path": "/pot"},
                {"method": "GET", "path": "/a"},
                {"method": "GET", "path": "/a?x"},
                {"method": "GET", "path": "/b/"},
            )
        )
        assert [e.path for e in manifest.endpoints] == ["/b", "/a"]
        assert [s.reason for s in manifest.skipped] == [
            "invalid_method",
            "invalid_path",
            "duplicate",
        ]

    def test_it_does_not_let_skips_block_other_errors(self) -> None:
        data = with_endpoints({"method": "BREW", "path": "/pot"})
        data["version"] = "x"
        assert errors_of(data) == {"version": "must be a semantic version (e.g. 1.4.0)"}

    @given(st.text(max_size=40))
    def test_it_normalizes_paths_idempotently(self, path: str) -> None:
        normalized = normalize_path(path)
        if normalized is not None:
            assert normalize_path(normalized) == normalized
            assert normalized.startswith("/")
            assert normalized == "/" or not normalized.endswith("/")
            assert "//" not in normalized


class TestSchedulability:
    @pytest.mark.parametrize(
        ("method", "path"),
        [("GET", "/report"), ("POST", "/sync"), ("post", "/a/b-c"), ("GET", "/")],
    )
    def test_it_allows_get_and_post_without_params(self, method: str, path: str) -> None:
        assert endpoint_schedulability(method, path) is None

    @pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
    def test_it_refuses_other_methods(self, method: str) -> None:
        assert endpoint_schedulability(method, "/cache") == "method_not_allowed"

    @pytest.mark.parametrize(
        "path",
        ["/contacts/:id", "/contacts/{id}", "/files/*", "/a/*.json", "/c/{id}/x", "/f/v-{n}"],
    )
    def test_it_refuses_path_parameters(self, path: str) -> None:
        assert endpoint_schedulability("GET", path) == "path_params"

    def test_it_reports_the_method_first(self) -> None:
        assert endpoint_schedulability("DELETE", "/x/:id") == "method_not_allowed"

    def test_it_treats_a_bare_colon_and_inner_colon_as_literal(self) -> None:
        assert endpoint_schedulability("GET", "/a:b") is None
        assert endpoint_schedulability("GET", "/time/12:00") is None


class TestPathMatching:
    @pytest.mark.parametrize(
        ("pattern", "path"),
        [
            ("/sync", "/sync"),
            ("/", "/"),
            ("/contacts/:id", "/contacts/42"),
            ("/contacts/{id}", "/contacts/abc"),
            ("/contacts/:id/notes", "/contacts/1/notes"),
            ("/files/*", "/files/a"),
            ("/files/*", "/files/a/b/c"),
            ("/files/*.json", "/files/x.json"),
            ("/v-{n}/x", "/v-2/x"),
            ("/a.b", "/a.b"),
        ],
    )
    def test_it_matches(self, pattern: str, path: str) -> None:
        assert path_matches(pattern, path)

    @pytest.mark.parametrize(
        ("pattern", "path"),
        [
            ("/sync", "/sync/x"),
            ("/sync", "/syn"),
            ("/contacts/:id", "/contacts"),
            ("/contacts/:id", "/contacts/1/2"),
            ("/files/*", "/files"),
            ("/files/*.json", "/files/a/x.json"),
            ("/a.b", "/axb"),
            ("/", "/x"),
        ],
    )
    def test_it_does_not_match(self, pattern: str, path: str) -> None:
        assert not path_matches(pattern, path)

    def test_it_finds_the_endpoint_preferring_exact_paths(self) -> None:
        endpoints = (
            EndpointSpec("GET", "/contacts/:id", "param"),
            EndpointSpec("GET", "/contacts/me", "exact"),
            EndpointSpec("POST", "/sync", "sync"),
        )
        assert find_endpoint(endpoints, "get", "/contacts/me/") == endpoints[1]
        assert find_endpoint(endpoints, "GET", "/contacts/7") == endpoints[0]
        assert find_endpoint(endpoints, "POST", "sync") == endpoints[2]
        assert find_endpoint(endpoints, "GET", "/sync") is None
        assert find_endpoint(endpoints, "BREW", "/sync") is None
        assert find_endpoint(endpoints, "POST", "/sync?x") is None


class TestContentHash:
    def test_it_hashes_the_documented_canonical_form(self) -> None:
        raw = {"b": 1, "a": {"é": [1, 2.5, None, True]}}
        canonical = '{"a":{"é":[1,2.5,null,true]},"b":1}'.encode()
        assert content_hash(raw) == "sha256:" + hashlib.sha256(canonical).hexdigest()

    def test_it_ignores_key_order_and_formatting(self) -> None:
        data = make_manifest()
        reordered = json.loads(json.dumps(dict(reversed(list(data.items()))), indent=4))
        assert content_hash(reordered) == content_hash(data)
        assert parse_manifest(reordered).content_hash == parse_manifest(data).content_hash

    def test_it_changes_with_any_content_change(self) -> None:
        changed = copy.deepcopy(make_manifest())
        changed["api"]["endpoints"][0]["handler"] = "handlers/sync2"
        assert content_hash(changed) != content_hash(make_manifest())

    def test_it_hashes_the_manifest_as_given_not_as_normalized(self) -> None:
        a = with_endpoints({"method": "get", "path": "x"})
        b = with_endpoints({"method": "GET", "path": "/x"})
        assert parse_manifest(a).endpoints == parse_manifest(b).endpoints
        assert parse_manifest(a).content_hash != parse_manifest(b).content_hash

    def test_it_has_the_expected_shape(self) -> None:
        digest = parse_manifest(make_manifest()).content_hash
        assert digest.startswith("sha256:")
        assert len(digest) == len("sha256:") + 64
        int(digest.removeprefix("sha256:"), 16)
