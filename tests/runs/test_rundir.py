"""Run folders written before a config field existed still open, with that field's default."""

import json

import pytest

from vizdeconv.config import default_config
from vizdeconv.runs import rundir


def test_a_config_from_before_the_newer_fields_opens_with_their_defaults(tmp_path):
    saved = rundir.config_to_dict(default_config())
    del saved["keep_steps"], saved["loss"]["label_smoothing"]
    del saved["optimizer"]["lookahead_every"], saved["optimizer"]["lookahead_alpha"], saved["data"]["flip"]
    (tmp_path / rundir.CONFIG_FILE).write_text(json.dumps(saved))
    config = rundir.load_config(str(tmp_path))
    assert config.loss.label_smoothing == 0.0 and config.optimizer.lookahead_every == 0
    assert (
        config.optimizer.lookahead_alpha == 0.5
        and config.data.flip == "random"
        and tuple(config.keep_steps) == tuple(default_config().keep_steps)
    )
    del saved["loss"]["reduction"]  # a field that was always there is still missing damage
    (tmp_path / rundir.CONFIG_FILE).write_text(json.dumps(saved))
    with pytest.raises(ValueError, match="lacks field 'loss.reduction'"):
        rundir.load_config(str(tmp_path))


def test_a_folder_another_trainer_is_creating_is_left_to_its_lock_and_a_foreign_one_is_refused(tmp_path):
    # The moment a second trainer can look in: the first holds the lock and has written its version file,
    # not yet its config. That is not "a foreign folder": the lock, asked next, names the trainer in it.
    (tmp_path / ".lock").write_text("{}")
    (tmp_path / rundir.VERSION_FILE).write_text("{}")
    (tmp_path / f"{rundir.CONFIG_FILE}.tmp").write_text("{")
    assert rundir.check(default_config(), str(tmp_path)) is False
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="exists and is not a vizdeconv run folder"):
        rundir.check(default_config(), str(tmp_path))
