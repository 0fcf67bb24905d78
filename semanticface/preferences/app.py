"""The ranking web app: a Flask application over a candidate directory and a :class:`RankingStore`.

Routes (JSON unless stated):

- ``GET /`` the page (HTML; static JS/CSS come from package data, no CDN).
- ``GET /api/next?annotator=NAME`` the next item this annotator has not ranked, and their progress.
- ``GET /api/items/<id>`` one item: image and candidate render URLs, region to judge (never the coefficients).
- ``POST /api/rankings`` ``{"submission_id", "annotator", "item_id", "groups": [[ids], ...], "all_bad"}``:
  201 stored, 200 duplicate resubmission, 400 malformed, 404 unknown item, 409 submission id reused, 415 not JSON.
- ``GET /media/<path>`` an image file inside the candidate directory (nothing outside it, symlinks included).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask, abort, jsonify, render_template, request, send_file
from werkzeug.exceptions import HTTPException
from werkzeug.serving import BaseWSGIServer, make_server

from semanticface.preferences.manifest import CandidateSet, Item
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


def _item_json(item: Item) -> dict[str, Any]:
    return {
        "id": item.id,
        "image": f"/media/{item.image}",
        "region": item.region,
        "instruction": REGION_PROMPTS[item.region],
        "candidates": [{"id": c.id, "render": f"/media/{c.render}"} for c in item.candidates],
    }


def _annotator_arg(value: Any) -> str:
    if not isinstance(value, str) or not ANNOTATOR_PATTERN.match(value):
        abort(400, description="annotator must be 1-64 letters, digits, spaces or ._@+-")
    return value


def create_app(candidates: CandidateSet, store: RankingStore) -> Flask:
    app = Flask(__name__, static_folder="static", template_folder="templates")
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024  # a ranking is a few hundred bytes
    app.url_map.merge_slashes = False  # "//etc/passwd" is refused outright, not redirected
    root = candidates.root.resolve()

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        if request.path.startswith("/api/"):
            return jsonify(error=error.name, message=error.description), error.code
        return error

    @app.get("/")
    def index():
        return render_template("annotate.html", total=len(candidates))

    @app.get("/api/next")
    def next_item():
        annotator = _annotator_arg(request.args.get("annotator"))
        done = store.done_items(annotator) & {item.id for item in candidates}
        pending = [item for item in candidates if item.id not in done]
        progress = {"done": len(done), "total": len(candidates)}
        return jsonify(item=_item_json(pending[0]) if pending else None, progress=progress)

    @app.get("/api/items/<item_id>")
    def get_item(item_id: str):
        if item_id not in candidates:
            abort(404, description=f"unknown item {item_id!r}")
        return jsonify(_item_json(candidates.get(item_id)))

    @app.post("/api/rankings")
    def post_ranking():
        if not request.is_json:
            abort(415, description="send the ranking as application/json")
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            abort(400, description="body must be a JSON object")
        groups = body.get("groups", [])
        if not isinstance(groups, list) or not all(isinstance(g, list) for g in groups):
            abort(400, description="groups must be a list of lists of candidate ids")
        if not isinstance(body.get("all_bad", False), bool):
            abort(400, description="all_bad must be true or false")
        item_id = body.get("item_id")
        if not isinstance(item_id, str) or item_id not in candidates:
            abort(404, description=f"unknown item {item_id!r}")
        ranking = Ranking(
            item_id=item_id,
            annotator=body.get("annotator"),
            groups=tuple(tuple(g) for g in groups),
            all_bad=body.get("all_bad", False),
            submission_id=body.get("submission_id"),
        )
        try:
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
    candidates: CandidateSet, store: RankingStore, host: str = "127.0.0.1", port: int = 8000
) -> BaseWSGIServer:
    """A threaded WSGI server (one thread per request); ``port=0`` picks a free port (``server.server_port``)."""
    return make_server(host, port, create_app(candidates, store), threaded=True)
