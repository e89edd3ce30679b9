import pytest

from src import config, train


def test_profile_then_overrides():
    cfg = config.make_config("seed", epochs=2)
    assert (cfg.model, cfg.batch_size, cfg.epochs, cfg.profile) == ("seed", 256, 2, "seed")


def test_none_keeps_the_profile_value():
    assert config.make_config("fast", epochs=None).epochs == config.PROFILES["fast"]["epochs"]


def test_unknown_key_and_profile_are_errors():
    with pytest.raises(ValueError, match="unknown config keys"):
        config.make_config("fast", epoch=3)
    with pytest.raises(ValueError, match="unknown profile"):
        config.make_config("fastest")


def test_round_trip_through_json(tmp_path):
    cfg = config.make_config("fast", name="x", milestones=[3, 4])
    cfg.save(tmp_path / "c.json")
    import json
    assert config.Config.from_dict(json.loads((tmp_path / "c.json").read_text())) == cfg


def test_cli_turns_flags_into_overrides():
    args = vars(train._parser().parse_args(["--profile", "fast", "--epochs", "3", "--no-channels-last",
                                            "--milestones", "1", "2", "--lr", "0.1"]))
    assert args["profile"] == "fast" and args["epochs"] == 3 and args["channels_last"] is False
    assert args["milestones"] == [1, 2] and args["lr"] == 0.1 and args["batch_size"] is None
