"""The ranking app over real HTTP: item flow, 4xx for malformed requests, media confined to the candidate dir."""

from __future__ import annotations

import http.client
import json
import os
import threading
import uuid

import pytest
from pref_helpers import make_candidate_set

from semanticface.preferences.app import make_annotation_server
from semanticface.preferences.storage import RankingStore


@pytest.fixture()
def server(tmp_path):
    candidates = make_candidate_set(tmp_path / "cands", n_items=3, k=4, regions=("full", "upper", "lower"))
    (tmp_path / "secret.png").write_bytes(b"\x89PNG secret outside the candidate dir")
    (tmp_path / "cands" / "notes.txt").write_text("not an image")
    store = RankingStore(tmp_path / "rankings.sqlite")
    srv = make_annotation_server(candidates, store, port=0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv, candidates, store, tmp_path
    srv.shutdown()
    thread.join()


def _request(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body, headers or {})
        response = conn.getresponse()
        data = response.read()
        return response.status, response.getheader("Content-Type", ""), data
    finally:
        conn.close()


def _json(port, method, path, payload=None):
    body = None if payload is None else json.dumps(payload)
    status, _, data = _request(port, method, path, body, {"Content-Type": "application/json"} if body else {})
    return status, json.loads(data)


def test_binds_loopback_by_default(tmp_path):
    candidates = make_candidate_set(tmp_path / "c", n_items=1, k=2)
    srv = make_annotation_server(candidates, RankingStore(tmp_path / "r.sqlite"), port=0)
    try:
        assert srv.host == "127.0.0.1"
    finally:
        srv.server_close()


def test_next_item_ranking_and_progress(server):
    srv, candidates, store, _ = server
    port = srv.server_port
    status, body = _json(port, "GET", "/api/next?annotator=ana")
    assert status == 200 and body["progress"] == {"done": 0, "total": 3}
    item = body["item"]
    assert item["id"] == "item-000" and item["region"] == "full"
    assert [c["id"] for c in item["candidates"]] == ["c0", "c1", "c2", "c3"]
    assert "coefficients" not in json.dumps(item)  # annotators judge faces, not numbers
    status, ctype, data = _request(port, "GET", item["candidates"][0]["render"])
    assert status == 200 and ctype == "image/png" and data.startswith(b"\x89PNG")

    payload = {
        "submission_id": uuid.uuid4().hex,
        "annotator": "ana",
        "item_id": "item-000",
        "groups": [["c2"], ["c0", "c1"], ["c3"]],
        "all_bad": False,
    }
    assert _json(port, "POST", "/api/rankings", payload) == (
        201,
        {"status": "created", "progress": {"done": 1, "total": 3}},
    )
    assert _json(port, "POST", "/api/rankings", payload)[0] == 200  # resubmit: stored once
    assert store.count() == 1
    status, body = _json(port, "GET", "/api/next?annotator=ana")
    assert body["item"]["id"] == "item-001" and body["item"]["region"] == "upper"
    assert "UPPER" in body["item"]["instruction"]
    assert _json(port, "GET", "/api/next?annotator=bo")[1]["item"]["id"] == "item-000"  # per annotator
    assert _json(port, "GET", "/api/items/item-002")[1]["region"] == "lower"
    status, _, page = _request(port, "GET", "/")
    assert status == 200 and b"annotate.js" in page
    assert _request(port, "GET", "/static/annotate.js")[0] == 200


def _valid(**overrides):
    payload = {
        "submission_id": uuid.uuid4().hex,
        "annotator": "ana",
        "item_id": "item-000",
        "groups": [["c0"], ["c1"], ["c2"], ["c3"]],
        "all_bad": False,
    }
    payload.update(overrides)
    return payload


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (_valid(groups=[["c0"], ["c1"]]), 400),  # incomplete
        (_valid(groups=[["c0"], ["c0"], ["c1"], ["c2", "c3"]]), 400),  # repeated
        (_valid(groups=[["c0"], ["nope"], ["c1"], ["c2", "c3"]]), 400),  # unknown candidate
        (_valid(groups="c0,c1"), 400),
        (_valid(groups=[[1], [2]]), 400),
        (_valid(all_bad="yes"), 400),
        (_valid(annotator=""), 400),
        (_valid(annotator=None), 400),
        (_valid(submission_id=None), 400),
        (_valid(submission_id="short"), 400),
        (_valid(item_id="item-999"), 404),
        (_valid(item_id=["item-000"]), 404),
        ([1, 2, 3], 400),
    ],
)
def test_malformed_rankings_get_4xx(server, payload, expected):
    srv, _, store, _ = server
    status, body = _json(srv.server_port, "POST", "/api/rankings", payload)
    assert status == expected and body["message"]
    assert store.count() == 0


def test_more_malformed_requests(server):
    srv, _, store, _ = server
    port = srv.server_port
    assert _request(port, "POST", "/api/rankings", "{not json", {"Content-Type": "application/json"})[0] == 400
    assert _request(port, "POST", "/api/rankings", "groups=c0", {"Content-Type": "text/plain"})[0] == 415
    big = json.dumps(_valid(groups=[["c0"]] * 20000))
    assert _request(port, "POST", "/api/rankings", big, {"Content-Type": "application/json"})[0] == 413
    assert _json(port, "GET", "/api/next")[0] == 400
    assert _json(port, "GET", "/api/next?annotator=%3Cscript%3E")[0] == 400
    assert _json(port, "GET", "/api/items/item-999")[0] == 404
    assert _request(port, "GET", "/api/rankings")[0] == 405
    # Reusing a submission id for different content is a conflict.
    payload = _valid()
    assert _json(port, "POST", "/api/rankings", payload)[0] == 201
    assert _json(port, "POST", "/api/rankings", {**payload, "groups": [["c3"], ["c2"], ["c1"], ["c0"]]})[0] == 409
    assert store.count() == 1


@pytest.mark.parametrize(
    "path",
    [
        "/media/../secret.png",
        "/media/%2e%2e/secret.png",
        "/media/%2E%2E%2Fsecret.png",
        "/media/images/%2e%2e/%2e%2e/secret.png",
        "/media/..%5Csecret.png",
        "/media//etc/passwd",
        "/media/%2Fetc%2Fpasswd",
        "/media/{tmp}/secret.png",
        "/media/%2F{tmp}%2Fsecret.png",
        "/media/link-out.png",
        "/media/images/link-dir/secret.png",
        "/media/notes.txt",
        "/media/manifest.jsonl",
        "/media/images/missing.png",
        "/media/images%00.png",
    ],
)
def test_media_cannot_leave_the_candidate_dir(server, path):
    srv, _, _, tmp = server
    root = tmp / "cands"
    os.symlink(tmp / "secret.png", root / "link-out.png")
    os.symlink(tmp, root / "images" / "link-dir")
    status, _, data = _request(srv.server_port, "GET", path.format(tmp=str(tmp).lstrip("/")))
    assert 400 <= status < 500
    assert b"secret" not in data


def test_symlink_inside_the_dir_is_served(server):
    srv, _, _, tmp = server
    root = tmp / "cands"
    os.symlink(root / "images" / "item-000.png", root / "alias.png")
    status, _, data = _request(srv.server_port, "GET", "/media/alias.png")
    assert status == 200 and data == (root / "images" / "item-000.png").read_bytes()
