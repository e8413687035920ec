"""The CPU's weights: a Q4_1 model (the bundled default) is served re-encoded as Q8_0, made once
in the model cache's derived/, unless `[engine] expand_q4_1 = false`."""
import json
import re

import pytest

from conftest import Server, make_client, shared_models_dir

MODEL = "smollm2-135m-instruct"
DERIVED = f"derived/{MODEL}.q8_0.gguf"


@pytest.fixture
def models_dir(tmp_path):
    """A model cache of its own (links to the shared one's files), so that derived/ starts empty."""
    shared = shared_models_dir()
    for name in (f"{MODEL}.gguf", "all-minilm-l6-v2"):
        (tmp_path / name).symlink_to(shared / name)
    return tmp_path


def code_word(server, word):
    body = {"prompt": f"\n\nHuman: The code word is {word}. What is the code word?\n\nAssistant: The code word is",
            "max_tokens_to_sample": 12, "temperature": 0}
    r = make_client(server).invoke_model(modelId="anthropic.claude-v2", body=json.dumps(body))
    return json.loads(r["body"].read())["completion"]


def loaded_path(server):
    """The file the log says llama.cpp loaded (its colours taken out); a first request loads
    the model."""
    code_word(server, "FIRST")
    plain = re.sub(r"\x1b\[[0-9;]*m", "", server.logs())
    line = next(l for l in plain.splitlines() if "model loaded" in l and MODEL in l)
    return line.split(" path=")[1].split()[0]


def test_a_q4_1_model_is_served_as_q8_0_made_once(models_dir):
    s = Server(env={"OUTCROP_MODELS_DIR": str(models_dir)})
    try:
        assert "re-encoding Q4_1 weights as Q8_0" in s.logs()
        assert loaded_path(s) == str(models_dir / DERIVED)
        assert "COBALT" in code_word(s, "COBALT").upper()
    finally:
        s.stop()
    derived = models_dir / DERIVED
    # 34 bytes per 32 weights instead of 20, the norms and the Q8_0 embeddings as they were.
    assert 1.3 < derived.stat().st_size / (models_dir / f"{MODEL}.gguf").stat().st_size < 1.7
    made = derived.stat().st_mtime_ns
    again = Server(env={"OUTCROP_MODELS_DIR": str(models_dir)})
    try:
        assert "re-encoding" not in again.logs()
        assert loaded_path(again) == str(derived)
    finally:
        again.stop()
    assert derived.stat().st_mtime_ns == made
    assert sorted(p.name for p in (models_dir / "derived").iterdir()) == [f"{MODEL}.q8_0.gguf", f"{MODEL}.q8_0.source"]


def test_expand_q4_1_off_loads_the_stored_file(models_dir):
    s = Server("[engine]\nexpand_q4_1 = false\n", env={"OUTCROP_MODELS_DIR": str(models_dir)})
    try:
        assert loaded_path(s) == str(models_dir / f"{MODEL}.gguf")
        assert "COBALT" in code_word(s, "COBALT").upper()
    finally:
        s.stop()
    assert not (models_dir / "derived").exists()


def test_a_derived_file_that_cannot_be_written_costs_only_speed(models_dir):
    (models_dir / "derived").write_text("a file where the directory should be")
    s = Server(env={"OUTCROP_MODELS_DIR": str(models_dir)})
    try:
        assert "could not re-encode Q4_1 weights as Q8_0; loading the stored file" in s.logs()
        assert loaded_path(s) == str(models_dir / f"{MODEL}.gguf")
        assert "COBALT" in code_word(s, "COBALT").upper()
    finally:
        s.stop()
