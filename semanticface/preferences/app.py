"""The ranking web app: a Flask application over a candidate directory and a :class:`RankingStore`.

Routes (JSON unless stated):

- ``GET /`` the page (HTML; static JS/CSS come from package data, no CDN).
- ``GET /api/next?annotator=NAME[&skip=ID,ID]`` the next item this annotator has not ranked (items they skipped
  come last), and their progress.
- ``GET /api/items/<id>[?annotator=NAME]`` one item: image, candidates in this annotator's order as on-screen slots
  (``p1``, ``p2``...) with render URLs, the region to judge and where its other half is (never the coefficients,
  never the candidate ids: the model's own output is not recognisable by name or place).
- ``GET /api/items/<id>/slots/<slot>.png?annotator=NAME`` the render in that slot.
- ``POST /api/rankings`` ``{"submission_id", "annotator", "item_id", "display_groups": [[slots], ...], "all_bad"}``
  (the page) or ``"groups": [[candidate ids], ...]`` (API clients): 201 stored, 200 duplicate resubmission,
  400 malformed, 404 unknown item, 409 submission id reused, 415 not JSON. The order shown is stored with it.
- ``GET /media/<path>`` an image file inside the candidate directory (nothing outside it, symlinks included).

Candidate order is shuffled per item and per annotator with ``shuffle_seed`` (:mod:`.shuffle`); None shows the
manifest order.

Every request must name the app by an allowed ``Host`` (the bound address or a loopback name with the port, or a
host given with ``allowed_hosts`` / ``--allowed-host``), else 400: a page on another site cannot reach the app by
DNS rebinding. A state-changing request from a browser page of another origin (its ``Origin`` header) gets 403.
JSON bodies are parsed with a depth limit (400, never 500).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Flask, abort, jsonify, render_template, request, send_file
from werkzeug.exceptions import HTTPException
from werkzeug.serving import BaseWSGIServer, make_server

from semanticface.preferences.manifest import CandidateSet, Item
from semanticface.preferences.shuffle import display_order, groups_from_slots, slot, slot_position
from semanticface.preferences.storage import (
    ANNOTATOR_PATTERN,
    Ranking,
    RankingError,
    RankingStore,
    SubmissionConflictError,
)

MEDIA_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif"})
REGION_PROMPTS = {
    "full": "Judge the whole face.",
    "upper": "Judge only the UPPER face (brows, eyes, cheek raise); the lower face is the same in every candidate.",
    "lower": "Judge only the LOWER face (mouth, jaw, cheeks, nose); the upper face is the same in every candidate.",
}


def resolve_media(root: Path, relative: str) -> Path | None:
    """The file ``relative`` names inside ``root``, or None if it would leave ``root`` (``..``, absolute paths,
    symlinks pointing outside) or is not an image file."""
    if not relative or "\x00" in relative or "\\" in relative or relative.startswith("/"):
        return None
    parts = relative.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return None
    root = root.resolve()
    candidate = root.joinpath(*parts)
    try:
        resolved = candidate.resolve(strict=True)  # follows symlinks: the *target* must stay inside root
    except (OSError, RuntimeError):
        return None
    if not resolved.is_relative_to(root) or not resolved.is_file():
        return None
    if resolved.suffix.lower() not in MEDIA_SUFFIXES:
        return None
    return resolved


def _item_json(item: Item, annotator: str, seed: int | None, done: bool = False) -> dict[str, Any]:
    order = display_order(item.candidate_ids, item_id=item.id, annotator=annotator, seed=seed)
    query = urlencode({"annotator": annotator})
    boundary = item.metadata.get("half_boundary", 0.5)
    return {
        "id": item.id,
        "image": f"/media/{item.image}",
        "region": item.region,
        "instruction": REGION_PROMPTS[item.region],
        # The part of each image (fractions of its height from the top) that is not judged: dimmed on the page.
        "dim": None if item.region == "full" else ([boundary, 1.0] if item.region == "upper" else [0.0, boundary]),
        "ranked": done,
        "candidates": [
            {"id": slot(i), "render": f"/api/items/{item.id}/slots/{slot(i)}.png?{query}"} for i in range(len(order))
        ],
    }


def _annotator_arg(value: Any) -> str:
    if not isinstance(value, str) or not ANNOTATOR_PATTERN.fullmatch(value):
        abort(400, description="annotator must be 1-64 letters, digits, spaces or ._@+-")
    return value


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
MAX_JSON_DEPTH = 8  # a ranking is an object of lists of lists: depth 3
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def header_host_name(host: str) -> str:
    """A bind address as it appears in a Host header (IPv6 in brackets), lower-cased."""
    host = host.strip().lower()
    try:
        if ipaddress.ip_address(host.strip("[]")).version == 6:
            return f"[{host.strip('[]')}]"
    except ValueError:
        pass
    return host


def allowed_host_headers(bind_host: str, port: int, extra: Iterable[str] = ()) -> frozenset[str]:
    """The ``Host`` header values that name this server: loopback names and the bound address with the port
    (bare, too, on port 80), and each extra host (``name`` or ``name:port``; bare names get the server's port)."""
    names = {*LOOPBACK_NAMES}
    if bind_host and bind_host not in ("0.0.0.0", "::", ""):
        names.add(header_host_name(bind_host))
    allowed = {f"{name}:{port}" for name in names}
    if port == 80:
        allowed |= names
    for host in extra:
        host = host.strip().lower()
        if not host:
            continue
        if host.rsplit(":", 1)[-1].isdigit() and not host.endswith("]"):
            allowed.add(host)
        else:
            name = header_host_name(host)
            allowed |= {f"{name}:{port}", *([name] if port == 80 else [])}
    return frozenset(allowed)


def _too_deep(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def _json_body() -> Any:
    """The request's JSON body, or 400: invalid JSON, nested deeper than MAX_JSON_DEPTH (however deep), not UTF-8."""
    try:
        body = json.loads(request.get_data(cache=True))
    except RecursionError:
        abort(400, description=f"JSON nested too deeply (at most {MAX_JSON_DEPTH} levels)")
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        abort(400, description="body is not valid JSON")
    if _too_deep(body, MAX_JSON_DEPTH):
        abort(400, description=f"JSON nested too deeply (at most {MAX_JSON_DEPTH} levels)")
    return body


def create_app(
    candidates: CandidateSet,
    store: RankingStore,
    *,
    allowed_hosts: Iterable[str] | None = None,
    shuffle_seed: int | None = 0,
) -> Flask:
    """The app. ``allowed_hosts``: the exact ``Host`` header values accepted (see :func:`allowed_host_headers`);
    None accepts the loopback names on any port (:func:`make_annotation_server` always passes the real set).
    ``shuffle_seed``: seed of each annotator's candidate order (None: manifest order)."""
    app = Flask(__name__, static_folder="static", template_folder="templates")
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024  # a ranking is a few hundred bytes
    app.config["ALLOWED_HOSTS"] = None if allowed_hosts is None else frozenset(h.lower() for h in allowed_hosts)
    app.url_map.merge_slashes = False  # "//etc/passwd" is refused outright, not redirected
    root = candidates.root.resolve()

    def _host_allowed(host: str) -> bool:
        allowed = app.config["ALLOWED_HOSTS"]
        if allowed is None:
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            return name in LOOPBACK_NAMES
        return host in allowed

    @app.before_request
    def _check_who_is_asking():
        host = request.headers.get("Host", "").strip().lower()
        if not host or not _host_allowed(host):
            abort(
                400, description=f"unexpected Host header {host!r:.80}: start the app with --allowed-host to allow it"
            )
        origin = request.headers.get("Origin")
        if request.method in STATE_CHANGING and origin is not None:
            parts = urlsplit(origin.strip().lower())
            if parts.scheme not in ("http", "https") or not parts.netloc or not _host_allowed(parts.netloc):
                abort(403, description=f"requests from origin {origin!r:.80} are not allowed")

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        if request.path.startswith("/api/"):
            return jsonify(error=error.name, message=error.description), error.code
        return error

    @app.get("/")
    def index():
        return render_template("annotate.html", total=len(candidates))

    def _order(item: Item, annotator: str) -> tuple[str, ...]:
        return display_order(item.candidate_ids, item_id=item.id, annotator=annotator, seed=shuffle_seed)

    @app.get("/api/next")
    def next_item():
        annotator = _annotator_arg(request.args.get("annotator"))
        skipped = set(request.args.get("skip", "").split(",")) - {""}
        done = store.done_items(annotator) & {item.id for item in candidates}
        pending = [item for item in candidates if item.id not in done]
        pending.sort(key=lambda item: item.id in skipped)  # skipped items come back last
        progress = {"done": len(done), "total": len(candidates)}
        return jsonify(item=_item_json(pending[0], annotator, shuffle_seed) if pending else None, progress=progress)

    @app.get("/api/items/<item_id>")
    def get_item(item_id: str):
        if item_id not in candidates:
            abort(404, description=f"unknown item {item_id!r}")
        annotator = request.args.get("annotator")
        annotator = "" if annotator is None else _annotator_arg(annotator)
        done = bool(annotator) and item_id in store.done_items(annotator)
        return jsonify(_item_json(candidates.get(item_id), annotator, shuffle_seed, done))

    @app.get("/api/items/<item_id>/slots/<name>.png")
    def slot_render(item_id: str, name: str):
        if item_id not in candidates:
            abort(404, description=f"unknown item {item_id!r}")
        item = candidates.get(item_id)
        annotator = request.args.get("annotator", "")
        annotator = "" if annotator == "" else _annotator_arg(annotator)
        try:
            candidate_id = _order(item, annotator)[slot_position(name, len(item.candidates))]
        except RankingError:
            abort(404, description=f"unknown slot {name!r}")
        path = resolve_media(root, item.candidate(candidate_id).render)
        if path is None:
            abort(404)
        return send_file(path, max_age=0)

    @app.post("/api/rankings")
    def post_ranking():
        if not request.is_json:
            abort(415, description="send the ranking as application/json")
        body = _json_body()
        if not isinstance(body, dict):
            abort(400, description="body must be a JSON object")
        by_slot = "display_groups" in body
        groups = body.get("display_groups" if by_slot else "groups", [])
        if not isinstance(groups, list) or not all(isinstance(g, list) for g in groups):
            abort(400, description="groups must be a list of lists of candidate ids (display_groups: of slots)")
        if not isinstance(body.get("all_bad", False), bool):
            abort(400, description="all_bad must be true or false")
        item_id = body.get("item_id")
        if not isinstance(item_id, str) or item_id not in candidates:
            abort(404, description=f"unknown item {item_id!r}")
        annotator = body.get("annotator")
        item = candidates.get(item_id)
        order = _order(item, annotator) if isinstance(annotator, str) else ()
        try:
            if by_slot:
                groups = [list(g) for g in groups_from_slots(groups, order)]
            ranking = Ranking(
                item_id=item_id,
                annotator=annotator,
                groups=tuple(tuple(g) for g in groups),
                all_bad=body.get("all_bad", False),
                submission_id=body.get("submission_id"),
                display_order=order,
            )
            status = store.submit(ranking, candidates.get(item_id).candidate_ids)
        except RankingError as error:
            abort(400, description=str(error))
        except SubmissionConflictError as error:
            abort(409, description=str(error))
        done = len(store.done_items(ranking.annotator) & {item.id for item in candidates})
        return jsonify(status=status, progress={"done": done, "total": len(candidates)}), (
            200 if status == "duplicate" else 201
        )

    @app.get("/media/<path:relative>")
    def media(relative: str):
        path = resolve_media(root, relative)
        if path is None:
            abort(404)
        return send_file(path, max_age=3600)

    return app


def make_annotation_server(
    candidates: CandidateSet,
    store: RankingStore,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    allowed_hosts: Iterable[str] = (),
    shuffle_seed: int | None = 0,
) -> BaseWSGIServer:
    """A threaded WSGI server (one thread per request); ``port=0`` picks a free port (``server.server_port``).

    Requests must name the server by a loopback name or the bound address with its port, or by one of
    ``allowed_hosts`` (e.g. ``"annotate.lab.example"``, for a reverse proxy or a name on the network)."""
    extra = tuple(allowed_hosts)
    app = create_app(candidates, store, allowed_hosts=(), shuffle_seed=shuffle_seed)
    server = make_server(host, port, app, threaded=True)
    app.config["ALLOWED_HOSTS"] = allowed_host_headers(host, server.server_port, extra)
    return server
