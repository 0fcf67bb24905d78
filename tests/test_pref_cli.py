"""The preference CLIs end to end: candidates -> annotate (real server process) -> export-prefs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
import uuid

import pytest

from semanticface.cli import main
from semanticface.preferences.manifest import CandidateSet
from semanticface.testing.faces import face_dataset, random_faces


@pytest.fixture()
def dataset_dir(tmp_path):
    face_dataset(random_faces(3, high=0.5), size=48).save_to_disk(str(tmp_path / "faces"))
    return tmp_path / "faces"


def test_candidates_annotate_export(tmp_path, dataset_dir, tiny_model_dir, capsys):
    cands = tmp_path / "cands"
    assert main(["candidates", "--dataset", str(dataset_dir), "--out", str(cands), "--model", str(tiny_model_dir),
                 "--decoding", "forced", "--num-samples", "0", "--num-perturbations", "3", "--region-mode", "upper",
                 "--render-size", "48"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "candidates: 100%" in err and "3/3" in err  # the progress bar
    candidate_set = CandidateSet.load(cands)
    assert len(candidate_set) == 3 and all(len(item.candidates) == 4 for item in candidate_set)
    assert {item.region for item in candidate_set} == {"upper"}
    assert all(0.2 < item.metadata["half_boundary"] < 0.8 for item in candidate_set)  # where the app dims

    db = tmp_path / "r.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-m", "semanticface.cli", "annotate", "--candidates", str(cands), "--db", str(db),
         "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        url = re.search(r"http://127\.0\.0\.1:\d+", "".join(lines)).group(0)
        for item in candidate_set:
            ids = list(item.candidate_ids)
            body = {"submission_id": uuid.uuid4().hex, "annotator": "ana", "item_id": item.id,
                    "groups": [[ids[0]], [ids[1], ids[2]], [ids[3]]], "all_bad": False}  # fmt: skip
            request = urllib.request.Request(
                url + "/api/rankings", json.dumps(body).encode(), {"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                assert response.status == 201
        with urllib.request.urlopen(url + "/api/next?annotator=ana", timeout=30) as response:
            assert json.loads(response.read()) == {"item": None, "progress": {"done": 3, "total": 3}}
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    out = tmp_path / "prefs"
    capsys.readouterr()
    assert main(["export-prefs", "--candidates", str(cands), "--db", str(db), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "15 pairs from 3 rankings by 1 annotator(s)" in printed  # 5 per item: the tie gives none
    assert "no item was ranked by two people" in printed
    from datasets import load_from_disk

    assert load_from_disk(str(out)).column_names[:4] == ["prompt", "chosen", "rejected", "images"]


def test_cli_errors_are_clean(tmp_path, capsys):
    assert main(["annotate", "--candidates", str(tmp_path / "nowhere"), "--db", str(tmp_path / "r.sqlite")]) == 1
    assert "no candidate manifest" in capsys.readouterr().err
    assert main(["export-prefs", "--candidates", str(tmp_path), "--db", str(tmp_path / "r.sqlite")]) == 1
    assert "--out" in capsys.readouterr().err
    assert main(["candidates", "--images", str(tmp_path), "--out", str(tmp_path / "c")]) == 1
    assert "no image files" in capsys.readouterr().err
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "face.png")
    assert main(["candidates", "--images", str(tmp_path), "--out", str(tmp_path / "c")]) == 1
    assert "give --model" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--region-mode", "uper"), ("--renderer", "avatar_shaded"), ("--decoding", "force")],
)
def test_candidates_refuses_a_misspelt_choice_at_parse_time(tmp_path, flag, value, capsys):
    with pytest.raises(SystemExit) as info:
        main(["candidates", "--images", str(tmp_path), "--out", str(tmp_path / "c"), "--model", "m", flag, value])
    assert info.value.code == 2 and f"invalid choice: '{value}'" in capsys.readouterr().err


def test_candidates_checks_the_renderer_before_loading_the_model(tmp_path, dataset_dir, capsys, monkeypatch):
    """A mesh renderer without a mesh folder is refused before the (here unloadable) model is touched."""
    monkeypatch.delenv("SEMANTICFACE_MESH_DIR", raising=False)
    model = tmp_path / "no-such-model"
    code = main(["candidates", "--dataset", str(dataset_dir), "--out", str(tmp_path / "c"), "--model", str(model),
                 "--renderer", "mesh", "--limit", "1"])  # fmt: skip
    assert code == 1 and "the mesh renderer needs mesh_dir" in capsys.readouterr().err


def test_candidates_flags_are_the_candidate_config_fields():
    """Built from the dataclass: every CandidateConfig field is a flag with the field's default and choices."""
    import argparse
    import dataclasses

    from semanticface.cli.candidates import add_arguments
    from semanticface.preferences.candidates import CandidateConfig

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    actions: dict = {}
    for action in parser._actions:
        actions.setdefault(action.dest, action)
    for spec in dataclasses.fields(CandidateConfig):
        action = actions[spec.name]
        assert action.option_strings[0] == "--" + spec.name.replace("_", "-")
        assert action.default == getattr(CandidateConfig(), spec.name)
        assert action.choices == spec.metadata.get("choices")
    args = parser.parse_args(["--images", "x", "--out", "y", "--temperatures", "0.5", "--no-own-output"])
    from semanticface.cli.options import dataclass_from_arguments

    config = dataclass_from_arguments(CandidateConfig, args)
    assert config == CandidateConfig(temperatures=(0.5,), include_own_output=False)


def test_candidates_reads_images_like_predict(tmp_path, capsys):
    """--images goes through images.read_image: a damaged file is a clean error naming it."""
    folder = tmp_path / "faces"
    folder.mkdir()
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    assert main(["candidates", "--images", str(folder), "--out", str(tmp_path / "c"), "--model", "m"]) == 1
    assert "broken.png" in capsys.readouterr().err
