"""The modelmgr Python module against the hub emulator: the model_manager API (model sets, specs, cache
queries, verification), error classes, pull (incl. REPO:QUANT), progress callbacks, Ctrl-C, and
`python3 -m modelmgr`."""

import os
import signal
import subprocess
import sys
import json
import textwrap
import threading
import urllib.request
from pathlib import Path

import pytest

import modelmgr
from modelmgr import (
    BadChecksumError,
    ConfigurationError,
    DownloadError,
    MissingModelError,
    ModelManager,
    ModelManagerError,
    ModelSpec,
)

TINY_SET = """\
cache_dir: {cache}
verify: sha256
models:
  - id: tiny
    repo_id: test-org/tiny-model
    files: [config.json, model.safetensors]
  - id: data
    repo_id: test-org/tiny-dataset
    repo_type: dataset
    files: ["data/*.csv"]
"""


def write_set(tmp_path, cache):
    path = tmp_path / "models.yaml"
    path.write_text(TINY_SET.format(cache=cache))
    return path


def test_ensure_models_with_sha256_returns_each_models_folder_and_writes_the_manifest(hub_env, tmp_path):
    config = write_set(tmp_path, hub_env)
    paths = modelmgr.ensure_models(config)
    assert set(paths) == {"tiny", "data"}
    assert isinstance(paths["tiny"], Path)
    assert (paths["tiny"] / "config.json").is_file()
    assert (paths["tiny"] / "model.safetensors").stat().st_size == 3145848
    assert sorted(p.name for p in (paths["data"] / "data").iterdir()) == ["test.csv", "train.csv"]
    assert str(paths["tiny"]).startswith(str(hub_env / "models--test-org--tiny-model" / "snapshots"))
    assert (tmp_path / "model_manifest.json").is_file()


def test_ensure_models_cache_dir_argument_overrides_the_config(hub_env, tmp_path):
    config = write_set(tmp_path, hub_env)
    other = tmp_path / "other-cache"
    paths = modelmgr.ensure_models(str(config), cache_dir=other)
    assert str(paths["tiny"]).startswith(str(other))


def test_model_manager_api(hub_env, tmp_path):
    mm = ModelManager.from_config(write_set(tmp_path, hub_env))
    cfg = mm.config
    assert cfg.verify == "sha256"
    assert [m.id for m in cfg.models] == ["tiny", "data"]
    assert cfg.cache_dir == str(hub_env)
    spec = mm.get_model_spec("tiny")
    assert (spec.id, spec.repo_id, spec.revision, spec.files, spec.local_dir) == (
        "tiny", "test-org/tiny-model", "main", ["config.json", "model.safetensors"], None)

    assert not modelmgr.is_cached(spec, hub_env)
    with pytest.raises(MissingModelError):
        modelmgr.get_model_path(spec, hub_env)

    path = mm.ensure_model("tiny")
    assert (path / "config.json").is_file()
    assert modelmgr.is_cached(spec, hub_env)
    assert modelmgr.get_model_path(spec, hub_env) == path
    assert mm.ensure_all() == {"tiny": path, "data": modelmgr.get_model_path(mm.get_model_spec("data"), hub_env)}


def test_a_missing_id_raises_missing_model_error(hub_env, tmp_path):
    mm = ModelManager.from_config(write_set(tmp_path, hub_env))
    with pytest.raises(MissingModelError) as e:
        mm.ensure_model("no-such-model")
    assert "no-such-model" in str(e.value) and "tiny" in str(e.value)
    assert isinstance(e.value, ModelManagerError)
    with pytest.raises(MissingModelError):
        mm.get_model_spec("no-such-model")
    # A repo the Hub does not have is missing too (HTTP 404 → not_found).
    with pytest.raises(MissingModelError) as e:
        modelmgr.download_model(ModelSpec("ghost", "test-org/does-not-exist"), hub_env)
    assert e.value.kind == "not_found"
    assert e.value.exit_code == 3


def test_a_corrupted_blob_raises_bad_checksum_error(hub_env, tmp_path):
    mm = ModelManager.from_config(write_set(tmp_path, hub_env))
    path = mm.ensure_model("tiny")
    assert modelmgr.verify_model(path, "sha256") is True
    blob = (path / "model.safetensors").resolve()
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only the hash can tell
    os.chmod(blob, 0o644)
    blob.write_bytes(bytes(data))
    assert modelmgr.verify_model(path, "size") is True
    with pytest.raises(BadChecksumError) as e:
        modelmgr.verify_model(path, "sha256")
    assert "model.safetensors" in str(e.value)
    assert e.value.kind == "checksum"


def test_configuration_errors(hub_env, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  - id: x\n    revision: main\n")  # no repo_id
    with pytest.raises(ConfigurationError) as e:
        ModelManager.from_config(bad)
    assert "repo_id" in str(e.value)
    with pytest.raises(ConfigurationError):
        modelmgr.verify_model(tmp_path, "paranoid")


def test_pull_returns_paths_and_picks_gguf_quantizations(hub_env):
    paths = modelmgr.pull("test-org/tiny-model", files=["config.json", "sub/dir/deep.txt"])
    assert [p.name for p in paths] == ["config.json", "deep.txt"]
    assert paths[0].read_text().startswith("{")
    gguf = modelmgr.pull("test-org/Split-Vision-GGUF:q8_0")
    assert [p.name for p in gguf] == ["Split-Vision-Q8_0.gguf", "mmproj-Split-Vision-F16.gguf"]
    split = modelmgr.pull("test-org/Split-Vision-GGUF", quant="Q4_K_M")
    assert [p.name for p in split][:3] == [f"Split-Vision-Q4_K_M-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    with pytest.raises(MissingModelError) as e:
        modelmgr.pull("test-org/Split-Vision-GGUF:Q2_K")
    assert "Q4_K_M, Q8_0" in str(e.value)
    with pytest.raises(DownloadError) as e:
        modelmgr.pull("test-org/private-model", files=["config.json"], token="hf_bad_token_value")
    assert e.value.kind == "auth"
    assert "hf_bad_token_value" not in str(e.value)


def test_progress_reaches_the_callback_on_the_calling_thread(hub_env):
    events = []
    caller = threading.get_ident()

    def progress(event):
        assert threading.get_ident() == caller
        events.append(event)

    modelmgr.pull("test-org/tiny-model", files=["model.safetensors"], progress=progress)
    types = [e["type"] for e in events]
    assert "done" in types
    done = next(e for e in events if e["type"] == "done")
    assert done["path"] == "model.safetensors" and done["repo_id"] == "test-org/tiny-model"


def test_an_exception_in_the_callback_stops_the_download_and_is_raised(hub_env):
    class Stop(Exception):
        pass

    def progress(event):
        raise Stop("from the callback")

    with pytest.raises(Stop):
        modelmgr.pull("test-org/tiny-model", files=["model.safetensors"], progress=progress)
    # Nothing half-done is in the snapshot; the next call completes it.
    paths = modelmgr.pull("test-org/tiny-model", files=["model.safetensors"])
    assert paths[0].stat().st_size == 3145848


def test_the_gil_is_released_while_downloading(hub_env, slow_emulator, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", slow_emulator)
    counter = 0
    seen = []
    stop = threading.Event()

    def spin():
        nonlocal counter
        while not stop.is_set():
            counter += 1

    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        modelmgr.pull("test-org/private-model", files=["model.safetensors"],
                      token="hf_test_token_with_access",
                      progress=lambda e: seen.append(counter) if e["type"] == "bytes" else None)
    finally:
        stop.set()
        spinner.join()
    # Between two progress events the other Python thread ran: the download did not hold the GIL.
    assert len(seen) >= 2
    assert any(b > a for a, b in zip(seen, seen[1:]))


def test_ctrl_c_raises_keyboard_interrupt_and_the_next_call_resumes(hub_env, slow_emulator, tmp_path):
    script = tmp_path / "pull.py"
    script.write_text(textwrap.dedent("""\
        import sys, modelmgr
        def progress(e):
            if e["type"] == "bytes" and e["current"] > 0:
                print("bytes", flush=True)
        try:
            modelmgr.pull("test-org/private-model", files=["model.safetensors"],
                          token="hf_test_token_with_access", progress=progress)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(42)
        print("finished", flush=True)
        """))
    env = dict(os.environ, HF_ENDPOINT=slow_emulator)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline() == "bytes\n"
    proc.send_signal(signal.SIGINT)
    out = proc.stdout.read()
    assert proc.wait(timeout=60) == 42, out
    assert "interrupted" in out
    repo = hub_env / "models--test-org--private-model"
    partial = [p for p in (repo / "blobs").iterdir() if p.name.endswith(".incomplete")]
    assert partial, "the interrupted download left its resumable temp file"
    assert not list((repo / "snapshots").rglob("model.safetensors"))
    # The next run keeps the bytes already there, fetches only the rest and finishes.
    before = served_bytes(slow_emulator, "model.safetensors")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout
    assert "finished" in proc.stdout
    assert (next((repo / "snapshots").iterdir()) / "model.safetensors").stat().st_size == 1024 * 1024
    assert served_bytes(slow_emulator, "model.safetensors") - before < 1024 * 1024


def served_bytes(endpoint, path):
    with urllib.request.urlopen(endpoint + "/_emulator/counters") as r:
        return json.load(r)["body_bytes_by_path"].get(path, 0)


def test_python_m_modelmgr_runs_the_cli():
    env = {k: v for k, v in os.environ.items() if k != "MODELMGR_BINARY"}
    r = subprocess.run([sys.executable, "-m", "modelmgr", "--version"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "modelmgr 0.1.0"
