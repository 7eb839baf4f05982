"""The catalog: what each model accepts, the sentences it refuses with, the bodies it sends."""

from __future__ import annotations

from typing import Any

import pytest

from providers.catalog import CATALOG, OPENVIDEO_LORA_KEYS, get_model
from providers.params import (
    AnimateParams,
    InvalidParameters,
    LoraSpec,
    OpenVideoLoraParams,
    Wan21Params,
    Wan22FastParams,
    parse_lora_arg,
)

IMG = "https://cdn.example/in.png"
LORA_URL = "https://huggingface.co/a/b/resolve/main/motion.safetensors"


def problems_of(model: str, raw: dict[str, Any]) -> list[str]:
    with pytest.raises(InvalidParameters) as info:
        get_model(model).validate(raw)
    assert str(info.value) == "; ".join(info.value.problems)
    return info.value.problems


def one_problem(model: str, raw: dict[str, Any]) -> str:
    problems = problems_of(model, {"prompt": "a wave", **raw})
    assert len(problems) == 1, problems
    return problems[0]


def test_catalog_lists_the_five_models_in_order() -> None:
    assert list(CATALOG) == ["openvideo", "openvideo-lora", "sora-2", "wan-2.2-fast", "wan-2.1"]
    assert {m.provider for m in CATALOG.values()} == {"wavespeed", "novita"}
    assert CATALOG["sora-2"].endpoint == "/api/v3/openai/sora-2/image-to-video"
    assert CATALOG["wan-2.1"].endpoint == "/v3/async/wan-i2v"
    for spec in CATALOG.values():
        assert spec.default_duration in spec.durations
        assert spec.typical_render_s > 0
        assert (spec.default_resolution is None) == (not spec.resolutions)


def test_unknown_model_names_the_choices() -> None:
    with pytest.raises(InvalidParameters) as info:
        get_model("x")
    assert str(info.value) == (
        "unknown model 'x': choose openvideo, openvideo-lora, sora-2, wan-2.2-fast or wan-2.1"
    )
    with pytest.raises(InvalidParameters, match="did you mean 'sora-2'"):
        get_model("sora2")
    assert get_model(" Sora-2 ").id == "sora-2"


@pytest.mark.parametrize(
    ("model", "duration", "resolution", "extra"),
    [
        ("openvideo", 5, "480p", {"seed": -1}),
        ("openvideo-lora", 5, "480p", {"preset": "tuned", "loras": ()}),
        ("sora-2", 4, None, {"seed": -1}),
        ("wan-2.2-fast", 5, "480p", {"loras": (), "negative_prompt": None, "last_image": None}),
        ("wan-2.1", 5, "480p", {"steps": 30, "guidance_scale": 5.0, "flow_shift": 5.0}),
    ],
)
def test_defaults(model: str, duration: int, resolution: str | None, extra: dict[str, Any]) -> None:
    params = get_model(model).validate({"prompt": "  a wave  "})
    assert params.model == model
    assert params.prompt == "a wave"
    assert (params.duration, params.resolution) == (duration, resolution)
    for name, value in extra.items():
        assert getattr(params, name) == value


@pytest.mark.parametrize(
    "raw",
    [
        {"prompt": "p", "duration": 8, "resolution": "720p", "seed": 7},
        {"prompt": "p", "preset": "original", "loras": [{"path": "omninft", "scale": 0.8}]},
        {"prompt": "p", "duration": 12},
        {
            "prompt": "p",
            "duration": 8,
            "loras": [f"{LORA_URL}=1"],
            "last_image": IMG,
            "negative_prompt": "blur",
            "high_noise_loras": [{"path": LORA_URL, "scale": 2}],
        },
        {
            "prompt": "p",
            "resolution": "720p",
            "seed": 9_999_999_999,
            "steps": 12,
            "guidance_scale": 7.5,
            "flow_shift": 3,
            "enable_safety_checker": True,
        },
    ],
)
def test_stored_params_round_trip(raw: dict[str, Any]) -> None:
    """The lead stores `model_dump(mode="json")`; both reload paths give the same params."""
    accepted = 0
    for spec in CATALOG.values():
        try:
            params = spec.validate(raw)
        except InvalidParameters:
            continue
        accepted += 1
        stored = params.model_dump(mode="json")
        assert spec.validate(stored) == params
        assert type(params).model_validate(stored) == params
        assert isinstance(params, AnimateParams)
    assert accepted >= 1


def test_loose_input_is_accepted() -> None:
    params = get_model("openvideo-lora").validate(
        {
            "prompt": "p",
            "duration": "8",
            "resolution": "720",
            "seed": " 42 ",
            "preset": "Original",
            "loras": "OmniNFT=0.8, physics_v2=1",
        }
    )
    assert isinstance(params, OpenVideoLoraParams)
    assert (params.duration, params.resolution, params.seed, params.preset) == (
        8,
        "720p",
        42,
        "original",
    )
    assert params.loras == (
        LoraSpec(path="omninft", scale=0.8),
        LoraSpec(path="physics_v2", scale=1.0),
    )
    mapped = get_model("openvideo-lora").validate({"prompt": "p", "loras": {"hardcut": 0}})
    assert mapped.loras == (LoraSpec(path="hardcut", scale=0.0),)
    assert get_model("openvideo").validate({"prompt": "p", "duration": 8.0}).duration == 8


@pytest.mark.parametrize(
    ("model", "raw", "message"),
    [
        (
            "sora-2",
            {"duration": 7},
            "duration 7 is not offered by sora-2: choose 4, 8, 12, 16 or 20",
        ),
        (
            "openvideo",
            {"duration": 21},
            "duration 21 is not offered by openvideo: choose 3 to 20 seconds",
        ),
        (
            "openvideo",
            {"duration": 2},
            "duration 2 is not offered by openvideo: choose 3 to 20 seconds",
        ),
        (
            "wan-2.1",
            {"duration": 8},
            "duration 8 is not offered by wan-2.1: it is fixed at 5 seconds",
        ),
        (
            "wan-2.2-fast",
            {"duration": 6},
            "duration 6 is not offered by wan-2.2-fast: choose 5 or 8",
        ),
        ("openvideo", {"duration": "8.5"}, "duration '8.5' is not a whole number"),
        ("openvideo", {"duration": True}, "duration must be a whole number, not True"),
        (
            "openvideo",
            {"resolution": "4k"},
            "resolution 4k is not offered by openvideo: choose 480p, 720p or 1080p",
        ),
        (
            "wan-2.1",
            {"resolution": "1080p"},
            "resolution 1080p is not offered by wan-2.1: choose 480p or 720p",
        ),
        (
            "wan-2.2-fast",
            {"resolution": "720p"},
            "resolution 720p is not offered by wan-2.2-fast: it renders 480p only",
        ),
        (
            "sora-2",
            {"resolution": "720p"},
            "sora-2 takes no resolution: the model decides the size",
        ),
        ("sora-2", {"seed": 5}, "sora-2 takes no seed: it always picks its own"),
        ("sora-2", {"loras": ["omninft=1"]}, "sora-2 takes no LoRAs"),
        ("openvideo", {"loras": ["omninft=1"]}, "openvideo takes no LoRAs"),
        ("openvideo", {"preset": "tuned"}, "openvideo takes no preset"),
        (
            "openvideo-lora",
            {"high_noise_loras": [f"{LORA_URL}=1"]},
            "openvideo-lora takes no high-noise LoRAs",
        ),
        ("wan-2.2-fast", {"steps": 10}, "wan-2.2-fast takes no steps"),
        ("openvideo", {"negative_prompt": "x"}, "openvideo takes no negative prompt"),
        ("sora-2", {"last_image": IMG}, "sora-2 takes no last image"),
        ("sora-2", {"foo": 1}, "unknown option 'foo': sora-2 takes prompt and duration"),
        ("openvideo", {"model": "sora-2"}, "these options are for openvideo, not 'sora-2'"),
        (
            "openvideo",
            {"seed": 2_147_483_648},
            "seed 2147483648 is out of range for openvideo: use -1 (random) to 2147483647",
        ),
        (
            "openvideo",
            {"seed": -2},
            "seed -2 is out of range for openvideo: use -1 (random) to 2147483647",
        ),
        (
            "wan-2.1",
            {"seed": 10_000_000_000},
            "seed 10000000000 is out of range for wan-2.1: use -1 (random) to 9999999999",
        ),
        (
            "openvideo-lora",
            {"preset": "fast"},
            "preset fast is not offered by openvideo-lora: choose tuned or original",
        ),
        (
            "openvideo-lora",
            {"loras": ["omnift=0.8"]},
            "unknown LoRA 'omnift': did you mean 'omninft'? valid keys: "
            + ", ".join(OPENVIDEO_LORA_KEYS),
        ),
        (
            "openvideo-lora",
            {"loras": ["zzzz=0.8"]},
            "unknown LoRA 'zzzz': valid keys: " + ", ".join(OPENVIDEO_LORA_KEYS),
        ),
        (
            "openvideo-lora",
            {"loras": ["omninft=4.5"]},
            "LoRA 'omninft' scale 4.5 is out of range: use 0 to 4",
        ),
        (
            "openvideo-lora",
            {"loras": [{"path": "omninft", "scale": -0.1}]},
            "LoRA 'omninft' scale -0.1 is out of range: use 0 to 4",
        ),
        (
            "openvideo-lora",
            {"loras": ["omninft=nan"]},
            "LoRA 'omninft' scale 'nan' is not a number",
        ),
        (
            "openvideo-lora",
            {"loras": ["omninft=1", "OMNINFT=2"]},
            "LoRA 'omninft' is listed twice in LoRAs: give it once",
        ),
        (
            "openvideo-lora",
            {"loras": ["omninft"]},
            "LoRA 'omninft' is not in the form KEY=SCALE (e.g. omninft=0.8)",
        ),
        (
            "openvideo-lora",
            {"loras": [{"path": "omninft"}]},
            "LoRA 'omninft' needs a scale from 0 to 4",
        ),
        (
            "openvideo-lora",
            {"loras": [{"path": "omninft", "scale": 1, "w": 2}]},
            "LoRA 'omninft' has unknown fields w: use path and scale",
        ),
        ("openvideo-lora", {"loras": 5}, "loras must be a list of LoRAs like omninft=0.8"),
        (
            "wan-2.2-fast",
            {"loras": [f"{LORA_URL}{i}=1" for i in range(4)]},
            "too many LoRAs (4): wan-2.2-fast takes at most 3",
        ),
        (
            "wan-2.2-fast",
            {"low_noise_loras": [f"{LORA_URL}{i}=1" for i in range(4)]},
            "too many low-noise LoRAs (4): wan-2.2-fast takes at most 3",
        ),
        (
            "wan-2.1",
            {"loras": [f"{LORA_URL}{i}=1" for i in range(4)]},
            "too many LoRAs (4): wan-2.1 takes at most 3",
        ),
        (
            "wan-2.2-fast",
            {"loras": ["omninft=1"]},
            "LoRA 'omninft' is not a LoRA URL: wan-2.2-fast takes http(s) links to LoRA weights",
        ),
        (
            "wan-2.2-fast",
            {"loras": ["ftp://x/y=1"]},
            "LoRA 'ftp://x/y' is not a LoRA URL: wan-2.2-fast takes http(s) links to LoRA weights",
        ),
        (
            "wan-2.2-fast",
            {"last_image": "not a url"},
            "last image must be an http(s) URL of a picture",
        ),
        (
            "wan-2.2-fast",
            {"negative_prompt": "n" * 2001},
            "negative prompt is 2001 characters long: the limit is 2000",
        ),
        ("wan-2.1", {"steps": 41}, "steps 41 is out of range for wan-2.1: use 1 to 40"),
        ("wan-2.1", {"steps": 0}, "steps 0 is out of range for wan-2.1: use 1 to 40"),
        (
            "wan-2.1",
            {"guidance_scale": 10.5},
            "guidance scale 10.5 is out of range for wan-2.1: use 0 to 10",
        ),
        ("wan-2.1", {"flow_shift": 0.5}, "flow shift 0.5 is out of range for wan-2.1: use 1 to 10"),
        (
            "wan-2.1",
            {"enable_safety_checker": "maybe"},
            "enable safety checker 'maybe' is not true or false",
        ),
    ],
)
def test_each_bad_input_has_a_clear_sentence(model: str, raw: dict[str, Any], message: str) -> None:
    assert one_problem(model, raw) == message


@pytest.mark.parametrize("model", list(CATALOG))
def test_prompt_rules_apply_to_every_model(model: str) -> None:
    assert problems_of(model, {}) == ["a prompt is required: describe the motion you want"]
    assert problems_of(model, {"prompt": "   "}) == [
        "the prompt is empty: describe the motion you want"
    ]
    assert problems_of(model, {"prompt": "x" * 2001}) == [
        "prompt is 2001 characters long: the limit is 2000"
    ]
    assert problems_of(model, {"prompt": 5}) == ["prompt must be text"]
    assert get_model(model).validate({"prompt": "x" * 2000}).prompt == "x" * 2000


def test_all_problems_are_collected_at_once() -> None:
    problems = problems_of(
        "openvideo-lora",
        {
            "prompt": "",
            "duration": 99,
            "resolution": "4k",
            "seed": "x",
            "loras": ["omnift=0.8", "sulphur=9"],
            "steps": 3,
        },
    )
    assert len(problems) == 7
    assert problems[0].startswith("the prompt is empty")
    assert any("did you mean 'omninft'" in p for p in problems)
    assert any("scale 9 is out of range" in p for p in problems)
    assert problems[-1] == "openvideo-lora takes no steps"


def test_every_lora_key_and_the_cap_for_openvideo_lora() -> None:
    spec = get_model("openvideo-lora")
    every = [f"{key}=1" for key in OPENVIDEO_LORA_KEYS]
    params = spec.validate({"prompt": "p", "loras": every})
    assert isinstance(params, OpenVideoLoraParams)
    assert [lora.path for lora in params.loras] == list(OPENVIDEO_LORA_KEYS)
    problems = problems_of("openvideo-lora", {"prompt": "p", "loras": [*every, "omninft=2"]})
    assert "too many LoRAs (14): openvideo-lora takes at most 13" in problems
    assert "LoRA 'omninft' is listed twice in LoRAs: give it once" in problems


def test_scale_bounds_are_inclusive() -> None:
    params = get_model("wan-2.1").validate(
        {"prompt": "p", "loras": [f"{LORA_URL}a=0", f"{LORA_URL}b=4"]}
    )
    assert isinstance(params, Wan21Params)
    assert [lora.scale for lora in params.loras] == [0.0, 4.0]


def test_sora_accepts_the_random_seed_and_no_resolution() -> None:
    params = get_model("sora-2").validate({"prompt": "p", "seed": -1, "resolution": None})
    assert (params.seed, params.resolution) == (-1, None)


# --- parse_lora_arg ---


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("omninft=0.8", {"path": "omninft", "scale": 0.8}),
        (" omninft = 1 ", {"path": "omninft", "scale": 1.0}),
        ("https://h/x.safetensors?a=b=0.5", {"path": "https://h/x.safetensors?a=b", "scale": 0.5}),
    ],
)
def test_parse_lora_arg(text: str, expected: dict[str, Any]) -> None:
    assert parse_lora_arg(text) == expected


@pytest.mark.parametrize("text", ["omninft", "=0.8", "omninft=", "omninft=abc", "omninft=inf"])
def test_parse_lora_arg_refuses_bad_forms(text: str) -> None:
    with pytest.raises(InvalidParameters):
        parse_lora_arg(text)


# --- build_payload ---


def test_payload_openvideo() -> None:
    spec = get_model("openvideo")
    params = spec.validate({"prompt": "a wave", "duration": 8, "resolution": "720p", "seed": 7})
    assert spec.build_payload(params, image_url=IMG, image_size=(800, 600)) == {
        "image": IMG,
        "prompt": "a wave",
        "duration": 8,
        "resolution": "720p",
        "seed": 7,
    }


def test_payload_openvideo_lora() -> None:
    spec = get_model("openvideo-lora")
    params = spec.validate({"prompt": "p", "preset": "original", "loras": ["omninft=0.8"]})
    assert spec.build_payload(params, image_url=IMG, image_size=(1, 1)) == {
        "image": IMG,
        "prompt": "p",
        "duration": 5,
        "resolution": "480p",
        "seed": -1,
        "preset": "original",
        "loras": [{"path": "omninft", "scale": 0.8}],
    }
    plain = spec.validate({"prompt": "p"})
    assert spec.build_payload(plain, image_url=IMG, image_size=(1, 1)) == {
        "image": IMG,
        "prompt": "p",
        "duration": 5,
        "resolution": "480p",
        "seed": -1,
        "preset": "tuned",
    }


def test_payload_sora() -> None:
    spec = get_model("sora-2")
    params = spec.validate({"prompt": "p", "duration": 12})
    assert spec.build_payload(params, image_url=IMG, image_size=(720, 1280)) == {
        "image": IMG,
        "prompt": "p",
        "duration": 12,
    }


def test_payload_wan22() -> None:
    spec = get_model("wan-2.2-fast")
    params = spec.validate(
        {
            "prompt": "p",
            "duration": 8,
            "seed": 3,
            "loras": [f"{LORA_URL}=1"],
            "high_noise_loras": [f"{LORA_URL}=0.5"],
            "low_noise_loras": [f"{LORA_URL}=2"],
            "negative_prompt": "blurry",
            "last_image": "https://example.org/last.png",
        }
    )
    assert isinstance(params, Wan22FastParams)
    expected = {
        "image": IMG,
        "prompt": "p",
        "duration": 8,
        "seed": 3,
        "loras": [{"path": LORA_URL, "scale": 1.0}],
        "high_noise_loras": [{"path": LORA_URL, "scale": 0.5}],
        "low_noise_loras": [{"path": LORA_URL, "scale": 2.0}],
        "negative_prompt": "blurry",
        "last_image": "https://example.org/last.png",
    }
    assert spec.build_payload(params, image_url=IMG, image_size=(640, 480)) == expected
    rehosted = spec.build_payload(
        params, image_url=IMG, image_size=(640, 480), last_image_url="https://cdn/last.png"
    )
    assert rehosted == {**expected, "last_image": "https://cdn/last.png"}


@pytest.mark.parametrize(
    ("resolution", "size", "width", "height"),
    [
        ("480p", (1920, 1080), 832, 480),
        ("480p", (1000, 1000), 832, 480),  # square counts as landscape
        ("480p", (1080, 1920), 480, 832),
        ("720p", (1920, 1080), 1280, 720),
        ("720p", (512, 512), 1280, 720),
        ("720p", (600, 601), 720, 1280),
    ],
)
def test_payload_wan21_orientation(
    resolution: str, size: tuple[int, int], width: int, height: int
) -> None:
    spec = get_model("wan-2.1")
    params = spec.validate({"prompt": "p", "resolution": resolution})
    assert spec.build_payload(params, image_url=IMG, image_size=size) == {
        "model_name": "wan2.1-i2v",
        "image_url": IMG,
        "prompt": "p",
        "width": width,
        "height": height,
        "seed": -1,
        "steps": 30,
        "guidance_scale": 5.0,
        "flow_shift": 5.0,
    }


def test_payload_wan21_all_options() -> None:
    spec = get_model("wan-2.1")
    params = spec.validate(
        {
            "prompt": "p",
            "seed": 9_999_999_999,
            "steps": "12",
            "guidance_scale": "7.5",
            "flow_shift": 2,
            "negative_prompt": "ugly",
            "loras": [f"{LORA_URL}=0.7"],
            "enable_safety_checker": "false",
        }
    )
    assert spec.build_payload(params, image_url=IMG, image_size=(800, 600)) == {
        "model_name": "wan2.1-i2v",
        "image_url": IMG,
        "prompt": "p",
        "width": 832,
        "height": 480,
        "seed": 9_999_999_999,
        "steps": 12,
        "guidance_scale": 7.5,
        "flow_shift": 2.0,
        "negative_prompt": "ugly",
        "loras": [{"path": LORA_URL, "scale": 0.7}],
        "enable_safety_checker": False,
    }


def test_payload_refuses_mismatched_calls() -> None:
    sora = get_model("sora-2").validate({"prompt": "p"})
    with pytest.raises(ValueError, match="sora-2"):
        get_model("openvideo").build_payload(sora, image_url=IMG, image_size=(1, 1))
    with pytest.raises(ValueError, match="last image"):
        get_model("sora-2").build_payload(
            sora, image_url=IMG, image_size=(1, 1), last_image_url=IMG
        )
    wan = get_model("wan-2.1").validate({"prompt": "p"})
    with pytest.raises(ValueError, match="picture size"):
        get_model("wan-2.1").build_payload(wan, image_url=IMG, image_size=(0, 10))


def test_params_are_immutable() -> None:
    params = get_model("openvideo").validate({"prompt": "p"})
    with pytest.raises(ValueError, match="frozen"):
        params.duration = 20  # type: ignore[misc]
