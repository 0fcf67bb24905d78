"""Ranking storage: transactional, idempotent, and correct under many concurrent annotators over real HTTP."""

from __future__ import annotations

import http.client
import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from pref_helpers import make_candidate_set

from semanticface.preferences.app import make_annotation_server
from semanticface.preferences.storage import (
    Ranking,
    RankingError,
    RankingStore,
    SubmissionConflictError,
)


def _ranking(item="item-000", annotator="ana", groups=(("c0",), ("c1", "c2"), ("c3",)), sid=None, all_bad=False):
    return Ranking(item, annotator, groups, all_bad, sid or uuid.uuid4().hex)


def test_roundtrip_wal_and_ties(tmp_path):
    store = RankingStore(tmp_path / "r.sqlite")
    assert store.submit(_ranking(sid="sub-00001"), ["c0", "c1", "c2", "c3"]) == "created"
    [stored] = store.rankings()
    assert stored.groups == (("c0",), ("c1", "c2"), ("c3",))
    assert stored.rank_of() == {"c0": 0, "c1": 1, "c2": 1, "c3": 2}
    assert stored.annotator == "ana" and not stored.all_bad
    import sqlite3

    with sqlite3.connect(tmp_path / "r.sqlite") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_resubmit_is_idempotent_and_new_submission_replaces(tmp_path):
    store = RankingStore(tmp_path / "r.sqlite")
    first = _ranking(sid="sub-00001")
    assert store.submit(first) == "created"
    assert store.submit(first) == "duplicate"
    assert store.count() == 1
    with pytest.raises(SubmissionConflictError):
        store.submit(_ranking(sid="sub-00001", groups=(("c3",), ("c2",), ("c1",), ("c0",))))
    # A new submission for the same annotator and item replaces the old one; others' rankings stay.
    assert store.submit(_ranking(sid="sub-00002", groups=(("c3",), ("c2", "c1", "c0")))) == "replaced"
    assert store.submit(_ranking(sid="sub-00003", annotator="bo")) == "created"
    rankings = store.rankings()
    assert [(r.annotator, r.submission_id) for r in rankings] == [("ana", "sub-00002"), ("bo", "sub-00003")]
    assert rankings[0].groups == (("c3",), ("c2", "c1", "c0"))


@pytest.mark.parametrize(
    ("ranking", "ids", "message"),
    [
        (_ranking(groups=(("c0",), ("c0",), ("c1", "c2", "c3"))), None, "more than once"),
        (_ranking(groups=(("c0",), ("zz",), ("c1", "c2", "c3"))), ["c0", "c1", "c2", "c3"], "unknown"),
        (_ranking(groups=(("c0",), ("c1",))), ["c0", "c1", "c2", "c3"], "not ranked"),
        (_ranking(groups=(("c0",), ())), None, "empty"),
        (_ranking(annotator=""), None, "annotator"),
        (_ranking(annotator="a/../b"), None, "annotator"),
        (_ranking(sid="x"), None, "submission_id"),
        (_ranking(groups=()), None, "empty ranking"),
    ],
)
def test_malformed_rankings_are_refused(tmp_path, ranking, ids, message):
    store = RankingStore(tmp_path / "r.sqlite")
    with pytest.raises(RankingError, match=message):
        store.submit(ranking, ids)
    assert store.count() == 0


def test_all_bad_may_be_empty_or_complete(tmp_path):
    store = RankingStore(tmp_path / "r.sqlite")
    ids = ["c0", "c1", "c2", "c3"]
    assert store.submit(_ranking(groups=(), all_bad=True), ids) == "created"
    assert store.submit(_ranking(annotator="bo", all_bad=True), ids) == "created"
    assert [r.all_bad for r in store.rankings()] == [True, True]


def _post(port: int, payload: dict) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", "/api/rankings", json.dumps(payload), {"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_eight_annotators_times_200_rankings_in_parallel_over_http(tmp_path):
    candidates = make_candidate_set(tmp_path / "cands", n_items=200, k=3)
    store = RankingStore(tmp_path / "rankings.sqlite")
    server = make_annotation_server(candidates, store, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        annotators = [f"annotator-{a}" for a in range(8)]
        payloads = [
            {
                "submission_id": f"{a}-{i}-{uuid.uuid4().hex}",
                "annotator": name,
                "item_id": item.id,
                "groups": [[item.candidate_ids[(i + a) % 3]], [item.candidate_ids[(i + a + 1) % 3]],
                           [item.candidate_ids[(i + a + 2) % 3]]],
                "all_bad": False,
            }
            for a, name in enumerate(annotators)
            for i, item in enumerate(candidates)
        ]  # fmt: skip
        # Every submission goes out twice (a client retry), interleaved with everyone else's.
        with ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(lambda p: _post(server.server_port, p), payloads + payloads))
    finally:
        server.shutdown()
        thread.join()
    statuses = [status for status, _ in results]
    assert statuses[: len(payloads)].count(201) + statuses[len(payloads) :].count(201) == len(payloads)
    assert statuses.count(200) == len(payloads)  # the other copy of each was recognised as a duplicate
    stored = store.rankings()
    assert len(stored) == 8 * 200
    assert sorted(r.submission_id for r in stored) == sorted(p["submission_id"] for p in payloads)
    by_id = {p["submission_id"]: p for p in payloads}
    for ranking in stored:
        payload = by_id[ranking.submission_id]
        assert (ranking.annotator, ranking.item_id) == (payload["annotator"], payload["item_id"])
        assert [list(g) for g in ranking.groups] == payload["groups"]
    for name in annotators:
        assert store.done_items(name) == {item.id for item in candidates}
