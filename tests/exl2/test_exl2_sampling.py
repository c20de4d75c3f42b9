"""Every ExLlamaV2Sampler.Settings field is set from SamplingParams, with llama.cpp's semantics."""

from __future__ import annotations

import pytest

from exl2_helpers import SETTINGS_FIELDS
from codebooga.server.engine.exllamav2.sampling import job_seed, sampler_fields
from codebooga.server.engine.types import SamplingParams


def test_every_field_is_set() -> None:
    assert set(sampler_fields(SamplingParams())) == SETTINGS_FIELDS


def test_openai_defaults_switch_every_truncation_off() -> None:
    fields = sampler_fields(SamplingParams())
    assert fields["temperature"] == 1.0 and fields["temperature_last"] is True
    assert (fields["top_k"], fields["top_p"], fields["min_p"], fields["typical"]) == (0, 0.0, 0.0, 0.0)
    assert fields["token_repetition_penalty"] == 1.0
    assert (fields["token_frequency_penalty"], fields["token_presence_penalty"]) == (0.0, 0.0)
    assert fields["mirostat"] is False and fields["dry_multiplier"] == 0.0 and fields["xtc_probability"] == 0.0
    assert fields["token_bias"] is None and fields["cfg_scale"] is None


def test_temperature_zero_is_greedy() -> None:
    fields = sampler_fields(SamplingParams(temperature=0.0, top_k=40, top_p=0.9, min_p=0.1, typical_p=0.5))
    assert (fields["temperature"], fields["top_k"], fields["top_p"], fields["min_p"], fields["typical"]) == (
        1.0, 1, 0.0, 0.0, 0.0
    )


def test_a_preset_maps_field_by_field() -> None:
    params = SamplingParams(
        temperature=0.7, top_p=0.9, top_k=20, min_p=0.05, typical_p=0.95, repetition_penalty=1.15,
        frequency_penalty=0.2, presence_penalty=0.1, penalty_last_n=128, seed=7, logit_bias=((13, -100.0), (5, 2.5)),
    )  # fmt: skip
    fields = sampler_fields(params)
    assert fields["temperature"] == 0.7 and fields["top_p"] == 0.9 and fields["top_k"] == 20
    assert fields["min_p"] == 0.05 and fields["typical"] == 0.95
    assert fields["token_repetition_penalty"] == 1.15 and fields["token_repetition_range"] == 128
    assert fields["token_frequency_penalty"] == 0.2 and fields["token_presence_penalty"] == 0.1
    assert fields["token_bias"] == {13: -100.0, 5: 2.5}


@pytest.mark.parametrize(("last_n", "expected_range"), [(-1, -1), (64, 64)])
def test_penalty_window(last_n: int, expected_range: int) -> None:
    assert sampler_fields(SamplingParams(penalty_last_n=last_n))["token_repetition_range"] == expected_range


def test_a_zero_penalty_window_disables_penalties_as_in_llama_cpp() -> None:
    fields = sampler_fields(SamplingParams(penalty_last_n=0, repetition_penalty=1.3, presence_penalty=0.5))
    assert fields["token_repetition_penalty"] == 1.0 and fields["token_presence_penalty"] == 0.0


def test_choices_of_a_seeded_request_get_consecutive_seeds() -> None:
    assert [job_seed(SamplingParams(seed=41), choice) for choice in range(3)] == [41, 42, 43]
    assert job_seed(SamplingParams(), 0) is None
