"""Flux through the Python binding, on the tiny dev-style pipeline of scripts/flux_reference.py (ctest sets
TP_FLUX_DEV_DIR from the pipeline.flux_reference fixture): the family is detected from model_index.json, the
image equals the CLI's to the byte, and true CFG goes through the generic request option."""

import json
import os
import pathlib
import subprocess

import pytest

import twistedpic

DEV = os.environ.get("TP_FLUX_DEV_DIR")
PROMPT = "a red circle on a white background"
SETTINGS = dict(seed=5, steps=2, width=48, height=32)

pytestmark = pytest.mark.skipif(not DEV, reason="TP_FLUX_DEV_DIR is not set (ctest sets it)")


@pytest.fixture(scope="module")
def pipeline():
    config = {"models": {"default": {"path": DEV, "dtype": "fp32"}}}  # no pipeline_type: detected
    with twistedpic.Registry.from_string(json.dumps(config)) as registry, registry.pipeline("default") as p:
        yield p


def test_flux_is_detected_and_equals_the_cli_to_the_byte(pipeline, tmp_path):
    assert pipeline.pipeline_type == "flux" and pipeline.size_multiple == 16
    [image] = pipeline.generate(PROMPT, **SETTINGS)
    assert (image.width, image.height) == (48, 32) and len(set(image.tobytes())) > 1
    cli = pathlib.Path(os.environ.get("TP_CLI", ""))
    if not cli.is_file():
        pytest.skip("no CLI to compare with (TP_CLI)")
    out = tmp_path / "cli.png"
    run = subprocess.run([str(cli), "-q", "--model-dir", DEV, "generate", PROMPT, "--seed", "5", "--steps", "2",
                          "-W", "48", "-H", "32", "-o", str(out)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert image.png_bytes() == out.read_bytes()


def test_true_cfg_is_a_request_option(pipeline):
    [plain] = pipeline.generate(PROMPT, **SETTINGS)
    [cfg] = pipeline.generate(PROMPT, "blurry", options={"true_cfg_scale": 2.0}, **SETTINGS)
    assert cfg.tobytes() != plain.tobytes()
    with pytest.raises(twistedpic.InvalidArgumentError, match="true_cfg_scale"):
        pipeline.generate(PROMPT, options={"true_cfg_scale": "lots"}, **SETTINGS)
    with pytest.raises(twistedpic.UnimplementedError, match="no_such_option"):
        pipeline.generate(PROMPT, options={"no_such_option": 1}, **SETTINGS)
    with pytest.raises(twistedpic.InvalidArgumentError, match="multiple of 16"):
        pipeline.generate(PROMPT, seed=5, steps=1, width=40, height=32)
