"""Signed state (issue 27, case 5): every pickle asynctune writes carries an HMAC made with the
user's key; a directory made with another key, or planted pickles, are refused before anything
is unpickled, until the user trusts the directory after reviewing it."""

from __future__ import annotations

import json
import os
import pathlib
import pickle
import re
import stat
import subprocess
import sys

import numpy as np
import pytest

import asynctune as at
HEADER = b"ATSIG1\n"  # the signed file format (docs/security.md): header, HMAC, pickle

SIGNED_NAMES = ("run_spec.pkl", "searcher_state.pkl", "params.pkl", "checkpoint.pkl")


def counting(config: dict) -> None:
    start = at.get_checkpoint() or {"i": 0}
    for i in range(start["i"] + 1, 4):
        at.report(loss=config["x"] / i, checkpoint={"i": i, "shape": (i, config["x"])})


def _run(storage: str, name: str = "exp", searcher: at.Searcher | None = None) -> at.ExperimentAnalysis:
    # A numpy value in the config: params.pkl is written too (JSON would lose its type).
    return at.run(counting, config={"x": at.choice([1, 2]), "scale": np.int64(3)}, num_samples=2, metric="loss",
                  mode="min", storage_path=storage, name=name, verbose=0, search_alg=searcher)


def _pickles(directory: str) -> list[str]:
    return sorted(os.path.join(parent, name) for parent, _, files in os.walk(directory)
                  for name in files if name in SIGNED_NAMES)


def _use_key(monkeypatch: pytest.MonkeyPatch, tmp_path, who: str) -> str:
    path = str(tmp_path / f"{who}-config" / "asynctune" / "key")
    monkeypatch.setenv("ASYNCTUNE_KEY_FILE", path)
    return path


class _Bomb:
    """Unpickling it creates `marker`: stands for any code a planted pickle runs."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "asynctune.cli", *args], capture_output=True, text=True,
                          timeout=120, env=env)


def test_every_pickle_is_signed_and_the_key_is_private(tmp_path, monkeypatch, storage):
    key = _use_key(monkeypatch, tmp_path, "me")
    analysis = _run(storage)
    assert os.stat(key).st_mode & 0o777 == 0o600 and os.stat(os.path.dirname(key)).st_mode & 0o077 == 0
    files = _pickles(analysis.experiment_dir)
    names = {os.path.basename(f) for f in files}
    assert names == set(SIGNED_NAMES), names
    for path in files:
        with open(path, "rb") as f:
            assert f.read(len(HEADER)) == HEADER, path
    assert analysis.load_best_checkpoint()["i"] == 3


def test_a_directory_made_with_another_key_is_refused_until_trusted(tmp_path, monkeypatch, storage):
    _use_key(monkeypatch, tmp_path, "alice")
    interrupted = _run(storage, "alices").experiment_dir  # in place: a copy's paths are issue 27's item 4
    _mark_interrupted(interrupted)

    key = _use_key(monkeypatch, tmp_path, "bob")  # as if bob got alice's directory (cp -r: his files now)
    with pytest.raises(at.UntrustedFileError, match=r"run_spec.pkl: its signature is not made with your key"
                                                    r".*asynctune trust " + _escape(interrupted)):
        at.resume(interrupted, verbose=0)
    refused = _cli("resume", interrupted, env={**os.environ, "ASYNCTUNE_KEY_FILE": key})
    assert refused.returncode == 2 and f"run `asynctune trust {interrupted}`" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
    copy = at.ExperimentAnalysis(interrupted)
    with pytest.raises(at.UntrustedFileError, match=r"checkpoint.pkl.*asynctune trust"):
        copy.load_best_checkpoint()
    assert copy.load_best_checkpoint(trust=True)["i"] == 3  # reviewed: loaded, nothing rewritten

    done = _cli("trust", interrupted, env={**os.environ, "ASYNCTUNE_KEY_FILE": key})
    assert done.returncode == 0, done.stderr
    assert f"signed {len(_pickles(interrupted))} file(s)" in done.stdout
    assert at.ExperimentAnalysis(interrupted).load_best_checkpoint()["i"] == 3
    resumed = at.resume(interrupted, verbose=0)
    assert len(resumed.trials) == 2


def test_resume_trust_signs_a_reviewed_directory(tmp_path, monkeypatch, storage):
    _use_key(monkeypatch, tmp_path, "alice")
    made = _run(storage)
    _mark_interrupted(made.experiment_dir)
    _use_key(monkeypatch, tmp_path, "bob")
    resumed = at.resume(made.experiment_dir, verbose=0, trust=True)
    assert resumed.load_best_checkpoint()["i"] == 3


@pytest.mark.parametrize("planted", ["run_spec.pkl", "searcher_state.pkl", "params.pkl"])
def test_a_planted_pickle_never_runs_on_resume(tmp_path, storage, planted):
    analysis = _run(storage, searcher=at.TPESearch(seed=0))  # its state is a pickle (the default's is JSON)
    _mark_interrupted(analysis.experiment_dir)
    marker = tmp_path / "ran"
    target = [p for p in _pickles(analysis.experiment_dir) if os.path.basename(p) == planted][0]
    with open(target, "wb") as f:  # unsigned, as an asynctune before signed state would write it
        pickle.dump(_Bomb(str(marker)), f)
    try:
        outcome = at.resume(analysis.experiment_dir, verbose=0)
    except Exception as exc:  # noqa: BLE001  what it must be is checked below
        outcome = exc
    assert not marker.exists(), "resume unpickled a file nobody signed"
    assert type(outcome).__name__ == "UntrustedFileError", outcome
    assert re.search(f"{planted}: it is not signed.*asynctune trust", str(outcome))


def test_a_planted_checkpoint_never_runs_in_load_best_checkpoint(tmp_path, storage):
    analysis = _run(storage)
    marker = tmp_path / "ran"
    with open(os.path.join(analysis.best_checkpoint, "checkpoint.pkl"), "wb") as f:
        pickle.dump(_Bomb(str(marker)), f)
    try:
        loaded = at.ExperimentAnalysis(analysis.experiment_dir).load_best_checkpoint()
    except Exception as exc:  # noqa: BLE001  what it must be is checked below
        loaded = exc
    assert not marker.exists(), "load_best_checkpoint unpickled a file nobody signed"
    assert type(loaded).__name__ == "UntrustedFileError" and "checkpoint.pkl: it is not signed" in str(loaded)


def test_ls_show_and_plot_never_unpickle(tmp_path, storage):
    """The commands docs/security.md lists as safe on a directory you did not make."""
    analysis = _run(storage)
    marker = tmp_path / "ran"
    for path in _pickles(analysis.experiment_dir):
        with open(path, "wb") as f:
            pickle.dump(_Bomb(str(marker)), f)
    for args in (["ls", storage], ["show", analysis.experiment_dir], ["show", "--json", analysis.experiment_dir],
                 ["plot", analysis.experiment_dir, "-o", str(tmp_path / "plots"), "--per-trial"]):
        done = _cli(*args)
        assert done.returncode == 0, (args, done.stderr)
        assert not marker.exists(), f"asynctune {' '.join(args)} unpickled a file"


def test_a_key_others_can_write_is_refused(tmp_path, monkeypatch, storage):
    key = _use_key(monkeypatch, tmp_path, "shared")
    _run(storage)
    os.chmod(key, stat.S_IRUSR | stat.S_IWUSR | stat.S_IWGRP)
    done = _cli("show", os.path.join(storage, "exp"))  # reads no pickle: needs no key
    assert done.returncode == 0
    with pytest.raises(at.UntrustedFileError, match="signing key is readable or writable by others.*chmod 600"):
        _load_with_fresh_process_cache(os.path.join(storage, "exp"))


def _load_with_fresh_process_cache(experiment_dir: str) -> None:
    from asynctune.store import signing

    signing._keys.clear()  # this process read the key before its mode changed
    at.ExperimentAnalysis(experiment_dir).load_best_checkpoint()


def _mark_interrupted(experiment_dir: str) -> None:
    """As if the driver was stopped: resume() then runs it (a finished one is only analysed)."""
    path = pathlib.Path(experiment_dir, "experiment.json")
    path.write_text(json.dumps({**json.loads(path.read_text()), "status": "INTERRUPTED"}))


def _escape(text: str) -> str:
    return re.escape(text)
