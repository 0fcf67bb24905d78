"""SQLite storage of rankings: the one write path shared by people (web app) and the simulated annotator.

A ranking is an ordered list of groups of candidate ids, best group first; candidates in one group are tied.
"All bad" means the annotator found no candidate acceptable (then the groups may be empty).

Concurrency: the database runs in WAL mode (readers never block the writer), every submission is written in one
``BEGIN IMMEDIATE`` transaction (the write lock is taken before reading, so two submissions for the same item
cannot interleave), and each call opens its own connection, so any thread or request may use the store.

Idempotency: every submission carries a client-generated ``submission_id`` (unique). Resubmitting the same id
with the same content is a no-op reported as ``"duplicate"``; the same id with different content is refused
(:class:`SubmissionConflictError`). A *new* submission by the same annotator for an item they already ranked
replaces their earlier ranking (people go back and correct themselves); other annotators' rankings are kept.

Display order: the web app shows each annotator the candidates in a seeded shuffled order
(:mod:`semanticface.preferences.shuffle`); the order shown is stored with the ranking (``display_order``, candidate
ids in the order they appeared) while the groups are stored in candidate ids, so export reads them as they are and
can report where on screen the chosen candidate stood. Databases written before the column existed are migrated.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from semanticface.errors import SemanticFaceError

# Whole-string patterns: use .fullmatch (with .match, "$" also matches before a final newline, so "probe\n" passed).
ANNOTATOR_PATTERN = re.compile(r"[\w][\w .@+-]{0,63}")
SUBMISSION_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{8,80}")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rankings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    submission_id TEXT NOT NULL UNIQUE,
    annotator TEXT NOT NULL,
    item_id TEXT NOT NULL,
    groups TEXT NOT NULL,
    all_bad INTEGER NOT NULL,
    created_at REAL NOT NULL,
    display_order TEXT NOT NULL DEFAULT '[]',
    UNIQUE (annotator, item_id)
);
CREATE INDEX IF NOT EXISTS rankings_item ON rankings (item_id);
"""


class RankingError(SemanticFaceError, ValueError):
    """A ranking is malformed (unknown or repeated candidate, bad annotator name, ...)."""


class SubmissionConflictError(SemanticFaceError, ValueError):
    """A submission id was reused for different content."""


@dataclass(frozen=True)
class Ranking:
    """One annotator's judgement of one item."""

    item_id: str
    annotator: str
    groups: tuple[tuple[str, ...], ...]
    all_bad: bool = False
    submission_id: str = ""
    created_at: float = field(default=0.0, compare=False)
    # Candidate ids in the order the annotator saw them (empty: not recorded, e.g. the simulated annotators).
    display_order: tuple[str, ...] = field(default=(), compare=False)

    def rank_of(self) -> dict[str, int]:
        """``{candidate_id: group index}`` (0 = best)."""
        return {cid: rank for rank, group in enumerate(self.groups) for cid in group}

    def content_key(self) -> tuple:
        return (self.item_id, self.annotator, self.groups, self.all_bad)


def validate_ranking(ranking: Ranking, candidate_ids: Sequence[str] | None = None) -> Ranking:
    """Check names and structure; with ``candidate_ids``, require every candidate ranked exactly once
    (unless "all bad", where an empty or complete ranking is accepted). Returns the ranking, normalised."""
    if not isinstance(ranking.annotator, str) or not ANNOTATOR_PATTERN.fullmatch(ranking.annotator):
        raise RankingError(f"annotator name {ranking.annotator!r} must be 1-64 letters, digits, spaces or ._@+-")
    if not isinstance(ranking.submission_id, str) or not SUBMISSION_ID_PATTERN.fullmatch(ranking.submission_id):
        raise RankingError("submission_id must be 8-80 characters of letters, digits, '-' or '_'")
    if not isinstance(ranking.item_id, str) or not ranking.item_id:
        raise RankingError("item_id must be a non-empty string")
    groups = tuple(tuple(g) for g in ranking.groups)
    seen: list[str] = []
    for group in groups:
        if not group:
            raise RankingError("a ranking group must not be empty")
        for cid in group:
            if not isinstance(cid, str) or not cid:
                raise RankingError(f"candidate id {cid!r} must be a non-empty string")
            seen.append(cid)
    if len(set(seen)) != len(seen):
        raise RankingError(f"item {ranking.item_id}: a candidate is ranked more than once")
    if candidate_ids is not None:
        unknown = set(seen) - set(candidate_ids)
        if unknown:
            raise RankingError(f"item {ranking.item_id}: unknown candidate(s) {sorted(unknown)}")
        complete = set(seen) == set(candidate_ids)
        if not complete and not (ranking.all_bad and not seen):
            missing = sorted(set(candidate_ids) - set(seen))
            raise RankingError(f"item {ranking.item_id}: candidates not ranked: {missing}")
    elif not seen and not ranking.all_bad:
        raise RankingError(f"item {ranking.item_id}: empty ranking")
    order = tuple(ranking.display_order)
    if order and (
        not all(isinstance(c, str) for c in order)
        or len(set(order)) != len(order)
        or (candidate_ids is not None and set(order) != set(candidate_ids))
    ):
        raise RankingError(f"item {ranking.item_id}: display_order must list each candidate once")
    return Ranking(
        ranking.item_id, ranking.annotator, groups, bool(ranking.all_bad), ranking.submission_id, 0.0, order
    )


class RankingStore:
    """Rankings in one SQLite file. Safe to share between threads and processes."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(rankings)")}
            if "display_order" not in columns:  # a database from before display orders were stored
                conn.execute("ALTER TABLE rankings ADD COLUMN display_order TEXT NOT NULL DEFAULT '[]'")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # One short-lived connection per call: sqlite3 connections must not be shared across threads.
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
            conn.execute("PRAGMA synchronous=NORMAL")  # durable at WAL checkpoints; commits stay atomic
            yield conn
        finally:
            conn.close()

    def submit(self, ranking: Ranking, candidate_ids: Sequence[str] | None = None) -> str:
        """Store a ranking in one transaction; returns ``"created"``, ``"replaced"`` or ``"duplicate"``."""
        ranking = validate_ranking(ranking, candidate_ids)
        groups_json = json.dumps([list(g) for g in ranking.groups])
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    "SELECT item_id, annotator, groups, all_bad FROM rankings WHERE submission_id = ?",
                    (ranking.submission_id,),
                ).fetchone()
                if row is not None:
                    conn.execute("ROLLBACK")
                    if (row[0], row[1], row[2], bool(row[3])) == (
                        ranking.item_id,
                        ranking.annotator,
                        groups_json,
                        ranking.all_bad,
                    ):
                        return "duplicate"
                    raise SubmissionConflictError(
                        f"submission {ranking.submission_id} was already stored with different content"
                    )
                cursor = conn.execute(
                    "DELETE FROM rankings WHERE annotator = ? AND item_id = ?", (ranking.annotator, ranking.item_id)
                )
                replaced = cursor.rowcount > 0
                conn.execute(
                    "INSERT INTO rankings (submission_id, annotator, item_id, groups, all_bad, created_at, display_order)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        ranking.submission_id,
                        ranking.annotator,
                        ranking.item_id,
                        groups_json,
                        int(ranking.all_bad),
                        time.time(),
                        json.dumps(list(ranking.display_order)),
                    ),
                )
                conn.execute("COMMIT")
            except SubmissionConflictError:
                raise
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return "replaced" if replaced else "created"

    def rankings(self, *, annotator: str | None = None, item_ids: Iterable[str] | None = None) -> list[Ranking]:
        """Stored rankings in submission order, optionally filtered."""
        query = "SELECT item_id, annotator, groups, all_bad, submission_id, created_at, display_order FROM rankings"
        params: list[str] = []
        if annotator is not None:
            query += " WHERE annotator = ?"
            params.append(annotator)
        query += " ORDER BY id"
        with self._connect() as conn:
            rows = conn.execute(query, params).fetchall()
        wanted = None if item_ids is None else set(item_ids)
        return [
            Ranking(
                r[0], r[1], tuple(tuple(g) for g in json.loads(r[2])), bool(r[3]), r[4], r[5], tuple(json.loads(r[6]))
            )
            for r in rows
            if wanted is None or r[0] in wanted
        ]

    def done_items(self, annotator: str) -> set[str]:
        with self._connect() as conn:
            rows = conn.execute("SELECT item_id FROM rankings WHERE annotator = ?", (annotator,)).fetchall()
        return {r[0] for r in rows}

    def count(self) -> int:
        with self._connect() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM rankings").fetchone()[0])
