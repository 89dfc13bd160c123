"""``POST /readings`` answers a re-sent file from what the ingest did with it this time."""

from __future__ import annotations

import warnings

from conftest import make_meter
from meter2cash.api import create_app

with warnings.catch_warnings():  # the test client warns about its httpx transport on import
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

BODY = (
    "meter,channel,start,value\n"
    "M1,kwh_import_15m,2026-10-01T00:00:00Z,1\n"
    "M9,kwh_import_15m,2026-10-01T00:00:00Z,2\n"
)
URL = "/api/v1/readings"
CSV = {"content-type": "text/csv"}


def test_unknown_meter_then_loaded_then_the_same_body_is_stored(platform):
    with platform.sessions() as s:
        make_meter(s, "M1")
        s.commit()
    with TestClient(create_app(platform)) as client:
        first = client.post(URL, content=BODY, headers=CSV)
        assert first.status_code == 200, first.text
        assert [p["code"] for p in first.json()["problems"]] == ["ingest.unknown_meter"]
        still = client.post(URL, content=BODY, headers=CSV)  # the meter is still unknown
        assert still.status_code == 200 and [p["line"] for p in still.json()["problems"]] == [3]
        assert still.json()["duplicate_file"] is False

        with platform.sessions() as s:
            make_meter(s, "M9")
            s.commit()
        stored = client.post(URL, content=BODY, headers=CSV)
        assert stored.status_code == 200, stored.text
        out = stored.json()
        assert (out["problems"], out["intervals_new"], out["rows_accepted"], out["duplicate_file"]) == (
            [],
            1,
            2,
            False,
        )
        again = client.post(URL, content=BODY, headers=CSV).json()
        assert (again["duplicate_file"], again["problems"], again["intervals_new"]) == (True, [], 0)


def test_a_file_refused_whole_is_refused_again_while_its_meter_is_unknown(platform):
    only_unknown = "meter,channel,start,value\nM9,kwh_import_15m,2026-10-01T00:00:00Z,2\n"
    with TestClient(create_app(platform)) as client:
        for _ in range(2):
            r = client.post(URL, content=only_unknown, headers=CSV)
            assert r.status_code == 422 and r.json()["error"]["code"] == "ingest.rejected"
