"""The ranking page in a real headless Chromium: click and keyboard ordering, tie, all bad, undo, progress, next."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from pref_helpers import make_candidate_set

from semanticface.preferences.app import make_annotation_server
from semanticface.preferences.shuffle import display_order
from semanticface.preferences.storage import RankingStore

IDS = ["c0", "c1", "c2", "c3"]


def _shown(annotator: str, item_id: str) -> tuple[str, ...]:
    """Candidate ids in the order the page shows them to ``annotator`` (slot p1 first)."""
    return display_order(IDS, item_id=item_id, annotator=annotator, seed=0)


CHROMIUM = Path("/usr/bin/chromium")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() and shutil.which("chromium") is None,
    reason="Debian's chromium is not installed (apt-get install -y chromium)",
)


@pytest.fixture()
def served(tmp_path):
    candidates = make_candidate_set(tmp_path / "cands", n_items=4, k=4, regions=("full", "upper", "full", "lower"))
    store = RankingStore(tmp_path / "rankings.sqlite")
    srv = make_annotation_server(candidates, store, port=0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium")))
        page = browser.new_page()
        page.set_default_timeout(15_000)
        yield page, f"http://127.0.0.1:{srv.server_port}", store
        browser.close()
    srv.shutdown()
    thread.join()


def _wait_item(page, item_id: str) -> None:
    page.wait_for_function(f"document.getElementById('work').dataset.itemId === '{item_id}'")
    page.wait_for_function("[...document.querySelectorAll('.candidate img')].every(i => i.complete && i.naturalWidth)")


def test_rank_by_click_and_keyboard_with_tie_all_bad_and_progress(served):
    page, url, store = served
    page.goto(url + "/")
    page.fill("#annotator", "ana")
    page.click("#start")
    _wait_item(page, "item-000")
    assert page.text_content("#progress") == "0 / 4"
    assert page.is_visible("#input-image")
    assert page.locator(".candidate").count() == 4

    # Item 0 by clicking: c2 best, then c0 tied with c3 (tie button), then c1; an undo on the way.
    assert page.is_disabled("#submit")
    page.click(".candidate[data-id=p3]")
    page.click(".candidate[data-id=p2]")
    page.click("#undo")
    page.click(".candidate[data-id=p1]")
    page.click(".candidate[data-id=p4]")
    page.click("#tie")
    assert page.is_disabled("#submit")  # c1 not ranked yet
    page.click(".candidate[data-id=p2]")
    assert page.text_content(".candidate[data-id=p4] .rank") == "2"
    assert page.locator("#ranking li").all_text_contents() == ["#3", "#1 = #4", "#2"]
    page.click("#submit")
    _wait_item(page, "item-001")
    assert page.text_content("#progress") == "1 / 4"
    assert "UPPER" in page.text_content("#instruction")

    # Item 1 by keyboard: 4, 2, t (tie with 4), Backspace (undo the tie's last pick), 2, 1, 3, Enter.
    for key in ["4", "2", "t", "Backspace", "2", "1", "3"]:
        page.keyboard.press(key)
    assert page.locator("#ranking li").all_text_contents() == ["#4", "#2", "#1", "#3"]
    page.keyboard.press("Enter")
    _wait_item(page, "item-002")
    assert page.text_content("#progress") == "2 / 4"

    # Item 2: all bad (x), submitted without ranking anything.
    page.keyboard.press("x")
    assert page.get_attribute("#all-bad", "aria-pressed") == "true"
    page.keyboard.press("Enter")
    _wait_item(page, "item-003")
    assert page.text_content("#progress") == "3 / 4"
    assert "LOWER" in page.text_content("#instruction")

    # Item 3: keys with a tie, then the page says everything is done.
    for key in ["1", "2", "t", "3", "4", "t", "Enter"]:
        page.keyboard.press(key)
    page.wait_for_selector("#done", state="visible")
    assert page.text_content("#progress") == "4 / 4"

    rankings = {r.item_id: r for r in store.rankings(annotator="ana")}
    o = {item: _shown("ana", item) for item in rankings}
    assert rankings["item-000"].groups == (
        (o["item-000"][2],),
        (o["item-000"][0], o["item-000"][3]),
        (o["item-000"][1],),
    )
    assert rankings["item-001"].groups == tuple((o["item-001"][i],) for i in (3, 1, 0, 2))
    assert rankings["item-002"].all_bad and rankings["item-002"].groups == ()
    assert rankings["item-003"].groups == (o["item-003"][0:2], o["item-003"][2:4])
    assert all(r.display_order == o[item] for item, r in rankings.items())


def test_annotator_from_query_parameter_resumes_their_progress(served):
    page, url, store = served
    page.goto(url + "/?annotator=bo")
    _wait_item(page, "item-000")
    for key in ["1", "2", "3", "4", "Enter"]:
        page.keyboard.press(key)
    _wait_item(page, "item-001")
    page.goto(url + "/?annotator=bo")  # reload: bo continues where they stopped
    _wait_item(page, "item-001")
    assert page.text_content("#progress") == "1 / 4"
    page.goto(url + "/?annotator=cy")  # another annotator starts at the beginning
    _wait_item(page, "item-000")
    assert page.text_content("#progress") == "0 / 4"
    # cy orders by dragging the candidates onto the ranking bar.
    for slot in ["p4", "p1", "p3", "p2"]:
        page.drag_and_drop(f".candidate[data-id={slot}]", "#ranking")
    assert page.locator("#ranking li").all_text_contents() == ["#4", "#1", "#3", "#2"]
    page.click("#submit")
    _wait_item(page, "item-001")
    assert [r.annotator for r in store.rankings()] == ["bo", "cy"]
    shown = _shown("cy", "item-000")
    assert store.rankings(annotator="cy")[0].groups == tuple((shown[i],) for i in (3, 0, 2, 1))


def test_guidelines_dimmed_half_zoom_skip_and_back(served):
    page, url, store = served
    page.goto(url + "/?annotator=di")
    _wait_item(page, "item-000")
    assert page.is_visible("#guidelines") and "same expression" in page.text_content("#guidelines")
    assert page.get_attribute("#progress-bar", "value") == "0" and page.get_attribute("#progress-bar", "max") == "4"
    assert not page.locator(".candidate .dim").first.is_visible()  # full face: nothing dimmed
    # Zoom: the magnifier opens the candidate large next to the input; Escape closes it; nothing was picked.
    page.click(".candidate[data-id=p2] .zoom")
    assert page.is_visible("#zoom") and page.get_attribute("#zoom-candidate", "src").endswith("p2.png?annotator=di")
    page.keyboard.press("Escape")
    assert not page.is_visible("#zoom") and page.locator("#ranking li").count() == 0
    # Skip item 0, rank item 1 (upper face: the lower part of every image is dimmed).
    page.click("#skip")
    _wait_item(page, "item-001")
    dim = page.locator(".candidate .dim").first
    assert dim.is_visible()
    box, frame = dim.bounding_box(), page.locator(".candidate .frame").first.bounding_box()
    assert (
        abs(box["y"] - (frame["y"] + frame["height"] / 2)) <= 2
        and box["y"] + box["height"] <= frame["y"] + frame["height"] + 1
    )
    assert page.locator(".input .dim").is_visible()
    for key in ["1", "2", "3", "4", "Enter"]:
        page.keyboard.press(key)
    _wait_item(page, "item-002")
    assert page.get_attribute("#progress-bar", "value") == "1"
    # Back reopens item 1 (ranked before: says so); re-ranking it replaces the earlier ranking.
    page.keyboard.press("b")
    _wait_item(page, "item-001")
    assert page.is_visible("#ranked-before")
    for key in ["4", "3", "2", "1", "Enter"]:
        page.keyboard.press(key)
    _wait_item(page, "item-002")
    (ranking,) = store.rankings(annotator="di")
    assert ranking.groups == tuple((_shown("di", "item-001")[i],) for i in (3, 2, 1, 0))
    # The skipped item comes back after the others.
    for following in ("item-003", "item-000"):
        page.keyboard.press("x")
        page.keyboard.press("Enter")
        _wait_item(page, following)
    assert page.text_content("#progress") == "3 / 4"
