"""[network] configuration keys are validated at start with the key named."""
from __future__ import annotations

from pathlib import Path

import pytest

from agent import config


@pytest.mark.parametrize("override, key", [
    ("network.embedded_netns=a/b", "[network].embedded_netns"),
    ("network.host_netns=bad name", "[network].host_netns"),
    ("network.ready_timeout=0", "[network].ready_timeout"),
    ("network.ovsdb_timeout=-1", "[network].ovsdb_timeout"),
    ("network.ovsdb_probe_interval_ms=-5", "[network].ovsdb_probe_interval_ms"),
    ("network.netdev_prefix=toolong", "[network].netdev_prefix"),
])
def test_bad_network_keys_are_rejected(override, key):
    with pytest.raises(config.ConfigError) as e:
        config.load(Path("/nonexistent"), [override])
    assert key in str(e.value)


def test_defaults_embed_ovn():
    n = config.load(Path("/nonexistent"), []).network
    assert n.enabled and n.ovn_nb == "" and n.embedded_ovn and n.embedded_netns == "devcloud-ovs"
    assert config.load(Path("/nonexistent"), ["network.host_netns=/proc/1/ns/net"]).network.host_netns
