"""SDXL through the Python binding, on the tiny base pipeline of scripts/sdxl_reference.py (ctest sets
TP_SDXL_BASE_DIR from the pipeline.sdxl_reference fixture): the family is detected from model_index.json, the
scheduler and guidance_rescale go through the generic request options, and bad ones are named."""

import json
import os

import pytest

import twistedpic

BASE = os.environ.get("TP_SDXL_BASE_DIR")
PROMPT = "a red circle on a white background"
SETTINGS = dict(seed=5, steps=2, width=64, height=48)

pytestmark = pytest.mark.skipif(not BASE, reason="TP_SDXL_BASE_DIR is not set (ctest sets it)")


@pytest.fixture(scope="module")
def pipeline():
    config = {"models": {"default": {"path": BASE, "dtype": "fp32"}}}  # no pipeline_type: detected
    with twistedpic.Registry.from_string(json.dumps(config)) as registry, registry.pipeline("default") as p:
        yield p


def test_sdxl_is_detected_and_generates(pipeline):
    assert pipeline.pipeline_type == "sdxl" and pipeline.size_multiple == 8
    [image] = pipeline.generate(PROMPT, **SETTINGS)
    assert (image.width, image.height) == (64, 48) and len(set(image.tobytes())) > 1
    [again] = pipeline.generate(PROMPT, **SETTINGS)
    assert again.tobytes() == image.tobytes()


def test_the_scheduler_is_a_request_option(pipeline):
    [euler] = pipeline.generate(PROMPT, **SETTINGS)
    [named] = pipeline.generate(PROMPT, options={"scheduler": "EulerDiscreteScheduler"}, **SETTINGS)
    assert named.tobytes() == euler.tobytes()  # the folder's own class, by its diffusers name
    seen = {euler.tobytes()}
    for name in ("euler_a", "dpmpp_2m", "dpmpp_2m_karras"):
        [image] = pipeline.generate(PROMPT, "blurry", options={"scheduler": name}, **SETTINGS)
        seen.add(image.tobytes())
    assert len(seen) == 4
    with pytest.raises(twistedpic.InvalidArgumentError, match="ddim.*euler_a"):
        pipeline.generate(PROMPT, options={"scheduler": "ddim"}, **SETTINGS)
    with pytest.raises(twistedpic.InvalidArgumentError, match="guidance_rescale"):
        pipeline.generate(PROMPT, options={"guidance_rescale": "2"}, **SETTINGS)
    [rescaled] = pipeline.generate(PROMPT, options={"guidance_rescale": 0.7}, **SETTINGS)
    assert rescaled.tobytes() != euler.tobytes()
    with pytest.raises(twistedpic.InvalidArgumentError, match="multiple of 8"):
        pipeline.generate(PROMPT, seed=5, steps=1, width=60, height=48)
