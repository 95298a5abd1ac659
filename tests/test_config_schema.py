"""The node's config schema, as the host tools use it too."""

import pytest

from loaxa_node import config


def test_defaults_are_valid():
    cfg = config.defaults()
    for k, v in cfg.items():
        config.check_value(k, v)


def test_merged_refuses_bad_values_and_leaves_current_untouched():
    cur = config.defaults()
    with pytest.raises(config.ConfigError) as e:
        config.merged(cur, {"volume": 150})
    assert e.value.key == "volume" and "0 to 100" in str(e.value)
    with pytest.raises(config.ConfigError) as e:
        config.merged(cur, {"colour": 1})
    assert "known keys" in str(e.value)
    assert cur == config.defaults()


def test_load_drops_invalid_stored_keys_instead_of_refusing_to_boot():
    cfg, dropped = config.load({"volume": 55, "jitter_ms": "lots", "nope": 1})
    assert cfg["volume"] == 55 and cfg["jitter_ms"] == 180
    assert sorted(dropped) == ["jitter_ms", "nope"]


def test_secrets_are_masked():
    cfg = config.merged(config.defaults(), {"net.password": "hunter22"})
    assert config.public(cfg)["net.password"] == "***"
