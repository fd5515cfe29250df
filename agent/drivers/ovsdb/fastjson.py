"""The C JSON parser of the `ovs` package, from Debian's python3-openvswitch.

The `ovs` library parses every OVSDB message in pure Python unless its C
extension `ovs._json` is importable, and the PyPI wheels do not build it: the
initial sync of 800 OVS interfaces took 2.6 s here, half of it in
ovs.json.Parser.feed. Debian's python3-openvswitch ships the extension (with
libopenvswitch linked in); the parser API (Parser(check_trailer), feed,
is_done, finish) is the same across OVS releases. We load it when its file
matches this interpreter's extension suffix, else keep the Python parser.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
import os
import sys

log = logging.getLogger(__name__)
DEBIAN_DIR = "/usr/lib/python3/dist-packages/ovs"


def enable(search_dir: str = DEBIAN_DIR) -> str:
    """Make ovs.json use the C parser if one can be loaded. Idempotent; never raises.
    Returns "C" or "PYTHON" (what ovs.json now uses)."""
    import ovs
    import ovs.json
    if ovs.json.PARSER == ovs.json.PARSER_C:
        return "C"
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = os.path.join(search_dir, "_json" + suffix)
        if not os.path.exists(path):
            continue
        try:
            spec = importlib.util.spec_from_file_location("ovs._json", path)
            if spec is None or spec.loader is None:
                raise ImportError(f"no extension loader for {path}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            module.Parser(check_trailer=False)          # the API ovs.json calls
        except Exception as exc:                        # wrong ABI, missing library: keep Python
            log.info("OVSDB JSON: cannot use %s (%s); using the Python parser", path, exc)
            return ovs.json.PARSER
        sys.modules["ovs._json"] = module
        ovs._json = module
        ovs.json.ovs = ovs                              # its failed `import ovs._json` bound nothing
        ovs.json.PARSER = ovs.json.PARSER_C
        return "C"
    return ovs.json.PARSER
