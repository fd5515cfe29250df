"""devcloud-agent: the node-local data plane of an LXD/Kubernetes developer cloud."""
from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("devcloud-agent")
except _metadata.PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+src"
