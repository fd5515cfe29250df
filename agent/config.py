"""Agent configuration: TOML file + command-line overrides, validated at start.

Every setting has an embedded default, so the agent runs with no file at all.
Each table of the file is one dataclass below; unknown tables or keys and
wrongly typed values are rejected with a message naming `[table].key`.
`systemd/agent.toml.example` documents every key.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import os
import socket
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PATH = Path("/etc/devcloud-agent/agent.toml")


class ConfigError(ValueError):
    """A configuration problem; the message names the key and what to do."""


@dataclass
class ServerConfig:
    socket: str = "/run/devcloud-agent/agent.sock"    # unix socket ("" disables)
    socket_mode: str = "0660"                          # octal permission bits of the socket
    socket_group: str = ""                             # group owning the socket ("" keeps root's)
    tcp_listen: str = ""                               # host:port for gRPC over TCP ("" disables)
    tls_cert: str = ""                                 # server certificate (PEM) for TCP
    tls_key: str = ""                                  # server private key (PEM)
    tls_client_ca: str = ""                            # CA bundle that signs allowed client certs
    allowed_clients: list[str] = field(default_factory=list)  # client cert CN/SAN allowlist ([] = any cert of the CA)
    insecure: bool = False                             # plaintext TCP, loopback only
    workers: int = 64                                  # RPC worker threads
    grace_seconds: float = 10.0                        # in-flight RPCs get this long on SIGTERM


@dataclass
class MetricsConfig:
    listen: str = "127.0.0.1:9464"                     # Prometheus endpoint ("" disables); loopback only


@dataclass
class LogConfig:
    level: str = "info"                                # debug | info | warning | error
    format: str = "text"                               # text | json (journald is used automatically)


@dataclass
class NodeConfig:
    name: str = ""                                     # node name reported to controllers ("" = hostname)
    state_dir: str = "/var/lib/devcloud-agent"         # intent records, embedded pools and OVN databases


@dataclass
class StorageConfig:
    enabled: bool = True
    pool: str = ""                                     # ZFS pool ("" = embedded file-backed pool)
    parent: str = ""                                   # parent dataset ("" = <pool>/devcloud)
    backend: str = "auto"                              # auto | lzc | cli
    embedded_pool_name: str = "devcloud"
    embedded_pool_size: str = "20G"                    # sparse file size of the embedded pool
    busy_timeout: float = 5.0                          # seconds a destroy retries "dataset is busy" before failing
    idmap: str = "auto"                                # unprivileged roots: auto | shift | mount (see the example)


@dataclass
class NetworkConfig:
    enabled: bool = True
    ovn_nb: str = ""                                   # OVN NB connection(s), comma-separated ("" = embedded local OVN stack)
    ovn_sb: str = ""                                   # OVN SB connection(s): chassis health, gateways ("" = embedded/none)
    ovs_db: str = ""                                   # local Open_vSwitch db ("" = embedded / default socket)
    integration_bridge: str = "br-int"
    datapath_type: str = ""                            # "" (kernel) or "netdev" (userspace)
    netdev_prefix: str = "dc"                          # every host-side netdev the agent creates starts with it
    ovsdb_timeout: float = 5.0                         # deadline of one OVSDB transaction, seconds
    ovsdb_probe_interval_ms: int = 5000                # inactivity probe on OVSDB connections
    host_netns: str = ""                               # netns where host-side netdevs live / OVS sees them ("" = agent's)
    embedded_ovn: bool = True                          # ovn_nb empty: start the local OVN stack (false = bridge only)
    embedded_netns: str = "devcloud-ovs"               # netns of the embedded ovs-vswitchd (userspace datapath)
    ready_timeout: float = 30.0                        # EnsurePort readiness wait bound when the call has no deadline


@dataclass
class ComputeConfig:
    enabled: bool = True
    cgroup_root: str = ""                              # agent subtree ("" = <cgroup2 mount>/devcloud.slice, outside the agent unit)


@dataclass
class InstancesConfig:
    enabled: bool = True                               # needs the storage, network and compute planes
    workers: int = 32                                  # threads running plane work of instance operations
    ready_timeout: float = 30.0                        # PrepareInstance readiness wait bound when the call has no deadline


@dataclass
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    log: LogConfig = field(default_factory=LogConfig)
    node: NodeConfig = field(default_factory=NodeConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    compute: ComputeConfig = field(default_factory=ComputeConfig)
    instances: InstancesConfig = field(default_factory=InstancesConfig)

    @property
    def node_name(self) -> str:
        return self.node.name or socket.gethostname()


def _coerce(where: str, hint, value):
    """Check `value` against the annotation `hint`; return the converted value."""
    origin = typing.get_origin(hint)
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        return [_coerce(f"{where}[{i}]", item, v) for i, v in enumerate(value)]
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if hint is int or hint is float:
        try:
            if isinstance(value, bool):
                raise ValueError
            return hint(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected {'an integer' if hint is int else 'a number'}, got {value!r}") \
                from None
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported type {hint}")  # pragma: no cover - schema bug


def _apply(cfg: Config, table: str, key: str, value, source: str) -> None:
    section_fields = {f.name: f for f in dataclasses.fields(Config)}
    if table not in section_fields:
        raise ConfigError(f"{source}: unknown table [{table}]; known: {', '.join(section_fields)}")
    section = getattr(cfg, table)
    hints = typing.get_type_hints(type(section))
    if key not in hints:
        raise ConfigError(f"{source}: unknown key [{table}].{key}; known: {', '.join(hints)}")
    setattr(section, key, _coerce(f"{source}: [{table}].{key}", hints[key], value))


def _parse_hostport(where: str, value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"{where}: expected host:port, got {value!r}")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate(cfg: Config) -> Config:
    """Cross-field checks; raise ConfigError naming the key and the fix."""
    s = cfg.server
    if not s.socket and not s.tcp_listen:
        raise ConfigError("[server]: both socket and tcp_listen are empty; the agent would not listen anywhere")
    try:
        mode = int(s.socket_mode, 8)
        if not 0 <= mode <= 0o777:
            raise ValueError
    except ValueError:
        raise ConfigError(f"[server].socket_mode: expected octal permission bits like \"0660\", got {s.socket_mode!r}") from None
    if s.tcp_listen:
        host, _ = _parse_hostport("[server].tcp_listen", s.tcp_listen)
        if s.insecure:
            if not is_loopback(host):
                raise ConfigError(f"[server].insecure: plaintext TCP is only allowed on loopback, not {host!r}; "
                                  "configure tls_cert, tls_key and tls_client_ca for other addresses")
        else:
            missing = [k for k in ("tls_cert", "tls_key", "tls_client_ca") if not getattr(s, k)]
            if missing:
                raise ConfigError(f"[server].tcp_listen requires mutual TLS: set [server].{', [server].'.join(missing)} "
                                  "(or insecure = true on a loopback address for development)")
            for k in ("tls_cert", "tls_key", "tls_client_ca"):
                if not os.path.isfile(getattr(s, k)):
                    raise ConfigError(f"[server].{k}: file {getattr(s, k)!r} does not exist")
    if s.workers < 4:
        raise ConfigError(f"[server].workers: at least 4 worker threads are needed, got {s.workers}")
    if cfg.metrics.listen:
        host, _ = _parse_hostport("[metrics].listen", cfg.metrics.listen)
        if not is_loopback(host):
            raise ConfigError(f"[metrics].listen: the metrics endpoint must be on loopback, not {host!r}")
    if cfg.log.level.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"[log].level: expected debug, info, warning or error, got {cfg.log.level!r}")
    if cfg.log.format not in ("text", "json"):
        raise ConfigError(f"[log].format: expected text or json, got {cfg.log.format!r}")
    if cfg.storage.backend not in ("auto", "lzc", "cli"):
        raise ConfigError(f"[storage].backend: expected auto, lzc or cli, got {cfg.storage.backend!r}")
    if cfg.storage.idmap not in ("auto", "shift", "mount"):
        raise ConfigError(f"[storage].idmap: expected auto, shift or mount, got {cfg.storage.idmap!r}")
    if not 1 <= len(cfg.network.netdev_prefix) <= 4 or not cfg.network.netdev_prefix.isalnum():
        raise ConfigError("[network].netdev_prefix: 1-4 letters or digits (netdev names are limited to 15 bytes)")
    if cfg.network.datapath_type not in ("", "system", "netdev"):
        raise ConfigError(f"[network].datapath_type: expected \"\", system or netdev, got {cfg.network.datapath_type!r}")
    _validate_network(cfg.network)
    if not 2 <= cfg.instances.workers <= 512:
        raise ConfigError(f"[instances].workers: expected 2..512 threads, got {cfg.instances.workers}")
    if not 0 < cfg.instances.ready_timeout <= 600:
        raise ConfigError(f"[instances].ready_timeout: expected seconds in (0, 600], got {cfg.instances.ready_timeout}")
    return cfg


def ovsdb_remote_ok(remote: str) -> bool:
    """One OVSDB active remote: tcp:IP:PORT | ssl:IP:PORT ([IPv6] allowed) | unix:/path."""
    kind, _, rest = remote.partition(":")
    if kind == "unix":
        return rest.startswith("/") and not any(c in rest for c in " \"'\n\0,")
    if kind not in ("tcp", "ssl"):
        return False
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        return False
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _validate_network(n: NetworkConfig) -> None:
    import re
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", n.embedded_netns) or n.embedded_netns in (".", ".."):
        raise ConfigError(f"[network].embedded_netns: {n.embedded_netns!r} is not a netns name (letters, digits, '_.-')")
    if n.host_netns and not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}|/[A-Za-z0-9_./-]{1,200}", n.host_netns):
        raise ConfigError(f"[network].host_netns: {n.host_netns!r} is not a netns name or absolute path")
    for key in ("ovn_nb", "ovn_sb", "ovs_db"):
        value = getattr(n, key)
        if value:
            for remote in value.split(","):
                if not ovsdb_remote_ok(remote):
                    raise ConfigError(f"[network].{key}: {remote!r} is not tcp:IP:PORT, ssl:IP:PORT or unix:PATH "
                                      "(several cluster members: comma-separated)")
    for key in ("ovsdb_timeout", "ready_timeout"):
        if not 0 < getattr(n, key) <= 600:
            raise ConfigError(f"[network].{key}: expected seconds in (0, 600], got {getattr(n, key)}")
    if not 0 <= n.ovsdb_probe_interval_ms <= 600_000:
        raise ConfigError("[network].ovsdb_probe_interval_ms: expected 0 (off) to 600000")


def load(path: Path | None = None, overrides: list[str] | None = None,
         *, explicit: bool = False) -> Config:
    """Load `path` (default /etc/devcloud-agent/agent.toml when it exists),
    apply `overrides` ("table.key=value" strings, from --set) and validate.

    A missing file is fine unless `explicit` (the user named it with --config).
    """
    cfg = Config()
    path = path or DEFAULT_PATH
    if path.exists():
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        for table, values in data.items():
            if not isinstance(values, dict):
                raise ConfigError(f"{path}: top-level key {table!r} must be a table like [{table}]")
            for key, value in values.items():
                _apply(cfg, table, key, value, str(path))
    elif explicit:
        raise ConfigError(f"--config: file {str(path)!r} does not exist")
    for item in overrides or []:
        dotted, sep, value = item.partition("=")
        table, dot, key = dotted.strip().partition(".")
        if not sep or not dot:
            raise ConfigError(f"--set {item!r}: expected table.key=value, e.g. server.workers=32")
        hint = typing.get_type_hints(type(getattr(cfg, table, None) or ServerConfig)).get(key)
        parsed: object = value
        if typing.get_origin(hint) is list:
            parsed = [v for v in value.split(",") if v]
        _apply(cfg, table, key, parsed, "--set")
    return validate(cfg)
