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
    assert [c["id"] for c in item["candidates"]] == ["p1", "p2", "p3", "p4"]  # slots on screen, not candidate ids
    assert "coefficients" not in json.dumps(item)  # annotators judge faces, not numbers
    assert "c0" not in json.dumps(item)  # nor which candidate is which (renders are served by slot)
    assert item["dim"] is None
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
    assert body["item"]["dim"] == [0.5, 1.0]  # the lower half is dimmed (no boundary recorded: the middle)
    assert _json(port, "GET", "/api/next?annotator=bo")[1]["item"]["id"] == "item-000"  # per annotator
    assert _json(port, "GET", "/api/items/item-002")[1]["region"] == "lower"
    assert _json(port, "GET", "/api/items/item-002")[1]["dim"] == [0.0, 0.5]
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


def test_shuffled_order_round_trips_through_storage_and_export(server):
    """Each annotator sees their own seeded order; a ranking given in on-screen slots is stored in candidate ids
    with the order shown, and export turns it into the pairs of the candidates that were meant."""
    from semanticface.preferences.export import ExportConfig, export_summary, preference_dataset
    from semanticface.preferences.shuffle import display_order

    srv, candidates, store, _ = server
    port = srv.server_port
    orders = {}
    for name in ("ana", "bo", "cy", "di"):
        item = _json(port, "GET", f"/api/items/item-000?annotator={name}")[1]
        renders = [_request(port, "GET", c["render"])[2] for c in item["candidates"]]
        item_set = candidates.get("item-000")
        files = {c.id: (candidates.root / c.render).read_bytes() for c in item_set.candidates}
        # The render in each slot is the candidate the seeded order puts there.
        orders[name] = display_order(item_set.candidate_ids, item_id="item-000", annotator=name, seed=0)
        assert renders == [files[cid] for cid in orders[name]]
    assert len(set(orders.values())) > 1  # annotators see different orders
    assert any(order[0] != "c0" for order in orders.values())  # the first candidate is not always first
    assert orders["ana"] == display_order(["c0", "c1", "c2", "c3"], item_id="item-000", annotator="ana", seed=0)

    # ana ranks slot p2 best, then p1 tied with p4, then p3.
    payload = {"submission_id": uuid.uuid4().hex, "annotator": "ana", "item_id": "item-000",
               "display_groups": [["p2"], ["p1", "p4"], ["p3"]], "all_bad": False}  # fmt: skip
    assert _json(port, "POST", "/api/rankings", payload)[0] == 201
    bad = {**payload, "submission_id": uuid.uuid4().hex, "display_groups": [["p2"], ["p1", "p4"], ["p9"]]}
    assert _json(port, "POST", "/api/rankings", bad)[0] == 400
    (stored,) = store.rankings(annotator="ana")
    order = orders["ana"]
    assert stored.display_order == order
    assert stored.groups == ((order[1],), (order[0], order[3]), (order[2],))
    # bo ranks the same item in candidate ids through the API; then export.
    payload = {"submission_id": uuid.uuid4().hex, "annotator": "bo", "item_id": "item-000",
               "groups": [list(order[1:2]), list(order[0:1]), list(order[3:4]), list(order[2:3])]}  # fmt: skip
    assert _json(port, "POST", "/api/rankings", payload)[0] == 201
    rankings = store.rankings()
    prompt = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "face?"}]}]
    dataset = preference_dataset(candidates, rankings, prompt, ExportConfig())
    ana = [r for r in dataset if r["annotator"] == "ana"]
    assert {(r["chosen_id"], r["rejected_id"]) for r in ana} == {
        (order[1], order[0]), (order[1], order[3]), (order[1], order[2]), (order[0], order[2]), (order[3], order[2])
    }  # fmt: skip
    first = next(r for r in ana if r["chosen_id"] == order[1] and r["rejected_id"] == order[2])
    assert (first["chosen_position"], first["rejected_position"]) == (2, 3)  # where ana saw them
    summary = export_summary(rankings, dataset)
    assert summary["agreement"]["items_ranked_twice"] == 1 and summary["agreement"]["pairs"] == 1
    assert summary["agreement"]["kendall_tau"] > 0.5  # the two rankings nearly agree
    assert summary["best_shown_first"] == 0.0 and summary["orders_recorded"] == 2


def test_storage_migrates_a_database_without_display_orders(tmp_path):
    import sqlite3

    from semanticface.preferences.storage import Ranking

    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript(
            "CREATE TABLE rankings (id INTEGER PRIMARY KEY AUTOINCREMENT, submission_id TEXT NOT NULL UNIQUE,"
            " annotator TEXT NOT NULL, item_id TEXT NOT NULL, groups TEXT NOT NULL, all_bad INTEGER NOT NULL,"
            " created_at REAL NOT NULL, UNIQUE (annotator, item_id));"
            "INSERT INTO rankings VALUES (1, 'sub-000001', 'ana', 'i', '[[\"a\"],[\"b\"]]', 0, 1.0);"
        )
    store = RankingStore(path)
    assert store.rankings()[0].display_order == ()
    store.submit(Ranking("j", "ana", (("b",), ("a",)), False, "sub-000002", 0.0, ("b", "a")), ["a", "b"])
    assert store.rankings()[1].display_order == ("b", "a")
