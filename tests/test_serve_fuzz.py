"""A property-based fuzz of the API from its own published schema (schemathesis + hypothesis): whatever the
generated requests hold, no answer is a 500, every answer is JSON errors or what the schema says, and the
concepts seeded before are all still there, whole, as the CLI sees them."""

from __future__ import annotations

import pytest
from scenes import scene
from serve_support import fake_settings, live_server, photo_files, png

schemathesis = pytest.importorskip("schemathesis",
                                   reason="the fuzz needs schemathesis (pip install 'edge_rap[serve-test]')")
from hypothesis import HealthCheck, given, settings  # noqa: E402  (installed with schemathesis)

SEEDS = {"seed-ümlaut": 1, "seed two": 2}
EXAMPLES = 25  # per operation: enough to reach each route's validation branches in a few seconds


def test_no_generated_request_makes_a_500_or_loses_a_concept(tmp_path):
    import httpx

    from edge_rap.memory.store import Store

    with live_server(fake_settings(tmp_path)) as live:
        with live.client() as c:
            for name, seed in SEEDS.items():
                assert c.post("/api/concepts", data={"name": name},
                              files=photo_files(png(scene(seed)))).status_code == 201
        published = httpx.get(f"{live.url}/openapi.json").json()
        schema = schemathesis.openapi.from_dict(published)
        headers = {"Authorization": f"Bearer {live.token}"}
        seen: dict[str, set[int]] = {}
        for operation in schema.get_all_operations():
            operation = operation.ok()
            if operation.method.upper() == "DELETE":
                continue  # deleting is fuzzed on a name it may not hit: "nothing lost" is checked on the seeds

            @settings(max_examples=EXAMPLES, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy())
            def fuzz(case):
                response = case.call(base_url=live.url, headers=headers)
                seen.setdefault(operation.label, set()).add(response.status_code)
                assert response.status_code < 500, (case.method, case.formatted_path, response.text[:200])
                listed = published["paths"][operation.path][operation.method.lower()]["responses"]
                assert str(response.status_code) in listed, (operation.label, response.status_code, sorted(listed))
                if response.status_code >= 400:
                    assert set(response.json()) == {"error"}, response.text[:200]

            fuzz()
        assert len(seen) >= 10  # every operation was exercised
        with live.client() as c:  # a method no operation of a path has: 405, naming (Allow) every one it has; 501 (with
            for path, operations in published["paths"].items():  # Allow) for one no operation of any path has: PUT
                taken = sorted({m.upper() for m in operations} | ({"HEAD"} if "get" in operations else set()))
                url = path.replace("{name}", "seed two").replace("{photo_id}", "1").replace("{event_id}", "1")
                for method in sorted({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"} - set(taken)):
                    r = c.request(method, url.replace("{ticket}", "x"))
                    assert (r.status_code, r.headers.get("allow")) == (501 if method == "PUT" else 405,
                                                                       ", ".join(taken)), (method, path)
        with live.client() as c:
            listed = {x["name"]: x for x in c.get("/api/concepts").json()}
            for name in SEEDS:
                whole = [c.get(p["url"]).status_code for p in listed[name]["photos"]]
                assert whole and set(whole) == {200}, name
        reader = Store(live.home.root, readonly=True)
        try:
            assert {x.name for x in reader.concepts()} == set(listed)
        finally:
            reader.close()
