"""The ranking page in a real headless Chromium: click and keyboard ordering, tie, all bad, undo, progress, next."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from pref_helpers import make_candidate_set

from semanticface.preferences.app import make_annotation_server
from semanticface.preferences.storage import RankingStore

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
    page.click(".candidate[data-id=c2]")
    page.click(".candidate[data-id=c1]")
    page.click("#undo")
    page.click(".candidate[data-id=c0]")
    page.click(".candidate[data-id=c3]")
    page.click("#tie")
    assert page.is_disabled("#submit")  # c1 not ranked yet
    page.click(".candidate[data-id=c1]")
    assert page.text_content(".candidate[data-id=c3] .rank") == "2"
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
    assert rankings["item-000"].groups == (("c2",), ("c0", "c3"), ("c1",))
    assert rankings["item-001"].groups == (("c3",), ("c1",), ("c0",), ("c2",))
    assert rankings["item-002"].all_bad and rankings["item-002"].groups == ()
    assert rankings["item-003"].groups == (("c0", "c1"), ("c2", "c3"))


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
    for cid in ["c3", "c0", "c2", "c1"]:
        page.drag_and_drop(f".candidate[data-id={cid}]", "#ranking")
    assert page.locator("#ranking li").all_text_contents() == ["#4", "#1", "#3", "#2"]
    page.click("#submit")
    _wait_item(page, "item-001")
    assert [r.annotator for r in store.rankings()] == ["bo", "cy"]
    assert store.rankings(annotator="cy")[0].groups == (("c3",), ("c0",), ("c2",), ("c1",))
