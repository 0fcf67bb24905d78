"""Issue 12, item 2: the ranking app checks who is asking.

A ``Host`` header that does not name the server (DNS rebinding) gets 400, a state-changing request from a page of
another origin gets 403, a JSON body nested thousands of levels deep gets 400 (not 500), and names and submission
ids must match their whole pattern ("probe\\n" is not "probe").
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import uuid

import pytest
from pref_helpers import make_candidate_set

from semanticface.cli.annotate import add_arguments
from semanticface.preferences.app import allowed_host_headers, make_annotation_server
from semanticface.preferences.storage import Ranking, RankingError, RankingStore, validate_ranking


@pytest.fixture()
def server(tmp_path):
    candidates = make_candidate_set(tmp_path / "cands", n_items=2, k=2)
    store = RankingStore(tmp_path / "rankings.sqlite")
    srv = make_annotation_server(candidates, store, port=0, allowed_hosts=["annotate.lab.example"])
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv, store
    srv.shutdown()
    thread.join()


def _send(port: int, method: str, path: str, *, host: str | None, body: str | None = None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        if host is not None:
            conn.putheader("Host", host)
        for key, value in (headers or {}).items():
            conn.putheader(key, value)
        data = body.encode() if body is not None else b""
        if body is not None:
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Content-Length", str(len(data)))
        conn.endheaders(data if body is not None else None)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _ranking(**overrides) -> str:
    payload = {
        "submission_id": uuid.uuid4().hex,
        "annotator": "ana",
        "item_id": "item-000",
        "groups": [["c0"], ["c1"]],
        "all_bad": False,
    }
    payload.update(overrides)
    return json.dumps(payload)


def test_requests_must_name_this_server_in_their_host_header(server) -> None:
    srv, store = server
    port = srv.server_port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}", f"annotate.lab.example:{port}"):
        assert _send(port, "GET", "/api/next?annotator=ana", host=host)[0] == 200, host
    for host in ("evil.example", f"evil.example:{port}", f"localhost:{port + 1}", "localhost", "", None,
                 f"annotate.lab.example:{port + 1}", f"127.0.0.1.evil.example:{port}"):  # fmt: skip
        for method, path, body in (("GET", "/", None), ("GET", "/api/next?annotator=ana", None),
                                   ("GET", "/media/images/item-000.png", None), ("POST", "/api/rankings", _ranking())):  # fmt: skip
            status, data = _send(port, method, path, host=host, body=body)
            assert status == 400, (host, path, status)
    assert store.count() == 0


def test_state_changing_requests_from_another_origin_get_403(server) -> None:
    srv, store = server
    port = srv.server_port
    host = f"127.0.0.1:{port}"
    for origin in (
        "http://evil.example",
        f"http://evil.example:{port}",
        "null",
        "file://",
        f"http://localhost:{port + 1}",
    ):
        status, _ = _send(port, "POST", "/api/rankings", host=host, body=_ranking(), headers={"Origin": origin})
        assert status == 403, origin
    assert store.count() == 0
    assert (
        _send(port, "GET", "/api/next?annotator=ana", host=host, headers={"Origin": "http://evil.example"})[0] == 200
    )
    status, _ = _send(port, "POST", "/api/rankings", host=host, body=_ranking(), headers={"Origin": f"http://{host}"})
    assert status == 201 and store.count() == 1
    status, _ = _send(port, "POST", "/api/rankings", host=host, body=_ranking(item_id="item-001"))  # no Origin: curl
    assert status == 201


@pytest.mark.parametrize(
    "body",
    [
        "[" * 5000 + "]" * 5000,
        '{"groups": ' + "[" * 20_000 + "]" * 20_000 + "}",
        _ranking(groups=[["c0", [[[[[[[["deep"]]]]]]]]], ["c1"]]),
        '{"a": ' * 3000 + "1" + "}" * 3000,
        "\udcff",
    ],
)
def test_deeply_nested_or_undecodable_json_gets_400_not_500(server, body) -> None:
    srv, store = server
    port = srv.server_port
    data = body.encode("utf-8", "surrogateescape") if "\udcff" in body else body
    if isinstance(data, bytes):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", "/api/rankings", data, {"Content-Type": "application/json"})
        status = conn.getresponse().status
        conn.close()
    else:
        status, _ = _send(port, "POST", "/api/rankings", host=f"127.0.0.1:{port}", body=data)
    assert status == 400
    assert store.count() == 0


@pytest.mark.parametrize(
    "overrides",
    [
        {"annotator": "probe\n"},
        {"annotator": "ana\n"},
        {"submission_id": "abcdefgh\n"},
        {"submission_id": "a" * 80 + "\n"},
    ],
)
def test_names_and_ids_must_match_their_whole_pattern(server, overrides) -> None:
    srv, store = server
    port = srv.server_port
    status, _ = _send(port, "POST", "/api/rankings", host=f"127.0.0.1:{port}", body=_ranking(**overrides))
    assert status == 400 and store.count() == 0
    assert _send(port, "GET", "/api/next?annotator=probe%0A", host=f"127.0.0.1:{port}")[0] == 400
    ranking = Ranking("item-000", "ana", (("c0",), ("c1",)), submission_id="abcdefgh")
    validate_ranking(ranking)
    with pytest.raises(RankingError):
        validate_ranking(Ranking("item-000", "probe\n", (("c0",),), submission_id="abcdefgh"))


def test_allowed_host_option_and_the_header_set() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--candidates", "c", "--db", "d", "--allowed-host", "box.lan", "--allowed-host", "x:81"])
    assert args.allowed_host == ["box.lan", "x:81"]
    hosts = allowed_host_headers("0.0.0.0", 8000, args.allowed_host)
    assert {"127.0.0.1:8000", "localhost:8000", "[::1]:8000", "box.lan:8000", "x:81"} <= hosts
    assert "0.0.0.0:8000" not in hosts and "box.lan:8001" not in hosts
    assert "[::1]:9000" in allowed_host_headers("::1", 9000)
    assert "192.168.1.5:8000" in allowed_host_headers("192.168.1.5", 8000)
