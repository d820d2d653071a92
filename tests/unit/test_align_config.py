"""AlignConfig names the model size once; the generic stage follows it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from toolbench.distill.training.align import AlignConfig
from toolbench.distill.training.pretrain import PretrainConfig


def test_the_generic_stage_builds_the_configured_preset():
    assert AlignConfig().pretrain.preset == "target"
    config = AlignConfig(preset="tiny")
    assert config.pretrain.preset == "tiny"
    assert config.pretrain.train.max_steps == 40  # the stage's own defaults survive
    assert AlignConfig.model_validate(config.model_dump()) == config  # a run record reloads as is


def test_a_contradicting_pretrain_preset_is_refused():
    with pytest.raises(ValidationError, match=r"pretrain.preset 'draft' differs from preset 'tiny'"):
        AlignConfig(preset="tiny", pretrain=PretrainConfig(preset="draft"))
    assert AlignConfig(preset="tiny", pretrain=PretrainConfig(preset="tiny")).pretrain.preset == "tiny"
