"""LXD/Incus image formats: what an extracted image looks like, its metadata.yaml
(read with a parser for the YAML subset distrobuilder and incus write: block
maps and lists, flow lists, quoted and plain scalars; the venv has no PyYAML),
and the metadata's JSON form kept in the image's P_METADATA mark.

Layouts (lxc/incus internal/server/storage/utils.go ImageUnpack):
  unified  one tarball: metadata.yaml, templates/*.tpl, rootfs/...; a member
           rootfs.img instead of rootfs/ makes it a VM image (refused here: a
           VM's disk is prepared empty).
  split    a metadata tarball (metadata.yaml + templates/) and a rootfs file
           (squashfs or tarball) unpacked into rootfs/.
Both are kept as Incus keeps them: the image's root holds metadata.yaml,
templates/ and rootfs/ (the instance's root filesystem).
"""
from __future__ import annotations

import json
import os
import re
import stat

from agent.errors import InvalidArgument

from .model import ImageFormat, ImageMetadata

ROOTFS_DIR = "rootfs"
METADATA_FILE = "metadata.yaml"
MAX_METADATA_BYTES = 1 << 20
MAX_MARK_BYTES = 4000                 # the JSON mark stays well inside ZFS's user property limit
# shared/osarch/architectures.go: names and the common aliases
ARCHITECTURES = {"i686", "x86_64", "armv6l", "armv7l", "armv8l", "aarch64", "ppc", "ppc64", "ppc64le", "s390x",
                 "mips", "mips64", "riscv32", "riscv64", "loongarch64",
                 "i386", "i586", "386", "x86", "amd64", "arm64", "armhf", "armel", "ppc64el", "loong64"}


def _bad(text: str) -> InvalidArgument:
    return InvalidArgument.for_field("tarball", text)


# -- layout of an extracted image --------------------------------------------------------


def detect(root: str) -> ImageFormat:
    """ROOTFS_TARBALL or LXD_UNIFIED for what was extracted into `root` (a unified image has a
    regular metadata.yaml and a rootfs/ directory, not a symlink). Raises InvalidArgument
    (field "tarball") for an LXD VM image (rootfs.img). Read-only."""
    meta = _lstat(os.path.join(root, METADATA_FILE))
    rootfs = _lstat(os.path.join(root, ROOTFS_DIR))
    if meta is not None and stat.S_ISREG(meta.st_mode):
        if rootfs is not None and stat.S_ISDIR(rootfs.st_mode):
            return ImageFormat.LXD_UNIFIED
        if _lstat(os.path.join(root, "rootfs.img")) is not None:
            raise _bad("this is an LXD/Incus VM image (rootfs.img): only container images can be imported; a VM's "
                       "disk is prepared empty")
    return ImageFormat.ROOTFS_TARBALL


def check_lxd_layout(root: str, fmt: ImageFormat) -> None:
    """An LXD-format image must have a regular metadata.yaml and rootfs/ as a real directory.
    Raises InvalidArgument (field "tarball") naming what is wrong. Read-only."""
    meta = _lstat(os.path.join(root, METADATA_FILE))
    if meta is None or not stat.S_ISREG(meta.st_mode):
        raise _bad(f"an {fmt.value} image needs metadata.yaml at the top of its (metadata) tarball")
    rootfs = _lstat(os.path.join(root, ROOTFS_DIR))
    if rootfs is None or not stat.S_ISDIR(rootfs.st_mode):
        raise _bad("image rootfs isn't a regular directory" if rootfs is not None
                   else f"an {fmt.value} image needs a rootfs (rootfs/ in the tarball, or the rootfs file)")


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:
        return None


def read_metadata(root: str) -> ImageMetadata:
    """Parse and check <root>/metadata.yaml (what Incus refuses at import: no creation_date,
    an unknown architecture, a template that is not a file under templates/). Raises
    InvalidArgument (field "tarball")."""
    path = os.path.join(root, METADATA_FILE)
    try:
        with open(path, "rb") as f:
            text = f.read(MAX_METADATA_BYTES + 1)
    except OSError as exc:
        raise _bad(f"cannot read metadata.yaml: {exc.strerror}") from None
    if len(text) > MAX_METADATA_BYTES:
        raise _bad(f"metadata.yaml is larger than {MAX_METADATA_BYTES} bytes")
    try:
        d = parse_yaml(text.decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad(f"metadata.yaml is not YAML this agent can read: {exc}") from None
    if not isinstance(d, dict):
        raise _bad("metadata.yaml is not a mapping")
    arch = str(d.get("architecture") or "")
    if arch not in ARCHITECTURES:
        raise _bad(f"metadata.yaml: unknown architecture {arch!r}")
    try:
        created, expiry = int(d.get("creation_date") or 0), int(d.get("expiry_date") or 0)
    except (TypeError, ValueError):
        raise _bad("metadata.yaml: creation_date and expiry_date must be Unix times") from None
    if not created:
        raise _bad("metadata.yaml: Missing creation date")
    props = d.get("properties") or {}
    templates = d.get("templates") or {}
    if not isinstance(props, dict) or not isinstance(templates, dict):
        raise _bad("metadata.yaml: properties and templates must be mappings")
    for target, t in templates.items():
        name = str((t or {}).get("template", "")) if isinstance(t, dict) else ""
        if not name or "/" in name:
            raise _bad(f"metadata.yaml: the template for {target} must be a file name under templates/")
    return ImageMetadata(architecture=arch, creation_unix=created, expiry_unix=expiry,
                         properties=tuple(sorted((str(k), "" if v is None else str(v)) for k, v in props.items())),
                         templates=tuple(sorted(str(k) for k in templates)))


# -- the metadata mark ---------------------------------------------------------------------


def metadata_mark(m: ImageMetadata) -> str:
    """The JSON kept in P_METADATA (ASCII). Beyond MAX_MARK_BYTES only the properties GetImage
    names (architecture, os, release, variant, description, serial), shortened, are kept."""
    d = {"architecture": m.architecture, "creation_date": m.creation_unix, "expiry_date": m.expiry_unix,
         "properties": dict(m.properties), "templates": list(m.templates)}
    text = json.dumps(d, sort_keys=True)
    if len(text) > MAX_MARK_BYTES:
        props = dict(m.properties)
        d["properties"] = {k: props[k][:400] for k in ("architecture", "os", "release", "variant", "description",
                                                       "serial") if k in props}
        d["templates"] = []
        text = json.dumps(d, sort_keys=True)
    return text


def metadata_from_mark(text: str) -> ImageMetadata | None:
    """The metadata of a P_METADATA value; None when absent or unreadable."""
    if not text:
        return None
    try:
        d = json.loads(text)
        return ImageMetadata(architecture=str(d.get("architecture", "")),
                             creation_unix=int(d.get("creation_date", 0)), expiry_unix=int(d.get("expiry_date", 0)),
                             properties=tuple(sorted((str(k), str(v)) for k, v in (d.get("properties") or {}).items())),
                             templates=tuple(str(t) for t in d.get("templates") or ()))
    except (ValueError, TypeError, AttributeError):
        return None


# -- the YAML subset -------------------------------------------------------------------------


def _scalar(s: str) -> object:
    s = s.strip()
    if s.startswith('"'):
        return json.loads(s)
    if s.startswith("'"):
        return s[1:-1].replace("''", "'")
    if s == "{}":
        return {}
    if s.startswith("[") and s.endswith("]"):
        inner = s[1:-1].strip()
        return [_scalar(x) for x in _split_flow(inner)] if inner else []
    if s in ("true", "True"):
        return True
    if s in ("false", "False"):
        return False
    if s in ("null", "~", ""):
        return None
    if re.fullmatch(r"-?\d+", s):
        return int(s)
    return s


def _split_flow(s: str) -> list[str]:
    out, cur, quote = [], "", None
    for ch in s:
        if quote:
            cur += ch
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
            cur += ch
        elif ch == ",":
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return [x.strip() for x in out]


def _split_key(line: str) -> tuple[str, str]:
    if line[0] in "\"'":
        q, i = line[0], 1
        while i < len(line):
            if line[i] == "\\" and q == '"':
                i += 2
                continue
            if line[i] == q:
                break
            i += 1
        key = _scalar(line[: i + 1])
        rest = line[i + 1:].lstrip()
        if not rest.startswith(":"):
            raise ValueError(f"expected ':' after key in {line!r}")
        return str(key), rest[1:].strip()
    k, sep, rest = line.partition(": ")
    if not sep:
        if line.endswith(":"):
            return line[:-1].strip(), ""
        raise ValueError(f"not a mapping entry: {line!r}")
    return k.strip(), rest.strip()


def parse_yaml(text: str) -> object:
    """Parse the block-YAML subset of metadata.yaml (see the module docstring). Raises
    ValueError on anything else."""
    rows = []
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#") or raw.strip() == "---":
            continue
        rows.append((len(raw) - len(raw.lstrip(" ")), raw.strip()))

    def block(i: int, indent: int) -> tuple[object, int]:
        if rows[i][1].startswith("- ") or rows[i][1] == "-":
            items = []
            while i < len(rows) and rows[i][0] == indent and (rows[i][1].startswith("- ") or rows[i][1] == "-"):
                items.append(_scalar(rows[i][1][2:].strip()))
                i += 1
            return items, i
        out: dict = {}
        while i < len(rows) and rows[i][0] == indent:
            key, rest = _split_key(rows[i][1])
            i += 1
            if rest == "" or rest.startswith("#"):
                if i < len(rows) and (rows[i][0] > indent or (rows[i][0] == indent and rows[i][1].startswith("- "))):
                    val, i = block(i, rows[i][0])
                else:
                    val = None
                out[key] = val
            else:
                out[key] = _scalar(rest.split(" #")[0] if not rest.startswith(("\"", "'")) else rest)
        return out, i

    if not rows:
        return {}
    val, i = block(0, rows[0][0])
    if i != len(rows):
        raise ValueError(f"unparsed YAML from line {rows[i][1]!r}")
    return val
