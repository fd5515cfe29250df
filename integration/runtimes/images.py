"""Container images built locally (no network) from Debian's busybox-static.

Three formats, as users already have them:

(a) a plain rootfs tarball: the root directory's contents at the top level
    (`./bin/busybox`, `./etc/passwd`, ...), numeric owners, /root 0700 root.

(b) an LXD/Incus *unified* image: ONE tarball holding
        metadata.yaml
        templates/<name>.tpl
        rootfs/<the root filesystem>
    Incus reads it in cmd/incusd/images.go getImageMetadata(): the first
    `metadata.yaml` (or `./metadata.yaml`) member is parsed as api.ImageMetadata;
    a member under `rootfs/` makes the image a container image (`rootfs.img`
    would make it a VM image). The fingerprint is the sha256 of the tarball
    (getImgPostInfo, non-multipart branch).

(c) an LXD/Incus *split* image: a metadata tarball (metadata.yaml + templates/,
    no rootfs) plus a separate rootfs file, here a squashfs (`hsqs` magic;
    a rootfs tarball is accepted too). Incus stores them as <fp> and <fp>.rootfs;
    the fingerprint is sha256(metadata tarball bytes || rootfs bytes)
    (getImgPostInfo, multipart branch: one hash256 fed by both parts).
    Unpacking (internal/server/storage/utils.go ImageUnpack): metadata tarball
    into the volume, then the rootfs file into <volume>/rootfs, by
    shared/archive/archive.go Unpack (tar ... --numeric-owner --xattrs-include=*
    --exclude=rootfs/dev/*, or `unsquashfs -f -d <dir> -n <file>`), format by
    magic (shared/archive/detect.go DetectCompressionFile). A `rootfs` that is
    not a directory (symlink) is refused.

metadata.yaml (shared/api/image.go, type ImageMetadata / ImageMetadataTemplate;
lxc/incus at be7afc5):
    architecture: x86_64            # osarch name or alias (amd64, ...): shared/osarch/architectures.go
    creation_date: 1700000000       # UNIX epoch, required (0 = "Missing creation date")
    expiry_date: 0                  # UNIX epoch, optional
    properties:                     # map[string]string, free-form; what images.linuxcontainers.org
      architecture: amd64           #   and `incus-simplestreams add` expect: os, release, variant,
      description: ...              #   architecture, description (cmd/incus-simplestreams/main_add.go),
      os: busybox                   #   plus name, serial by distrobuilder
      release: "1.35"
      variant: default
    templates:                      # map: path in the instance -> template
      /etc/hostname:
        when: [create, copy]        # triggers: create, copy, rename, start (driver_lxc.go templateApplyNow)
        create_only: false          # only when the file does not exist yet
        template: hostname.tpl      # a file name under templates/ (no '/', no symlink)
        properties: {}              # passed to the pongo2 template
        # uid, gid, mode: optional strings (API extension image_template_permissions)

This module writes that YAML itself (block style, double-quoted strings) and
reads it back with a small parser for the same subset (maps, block and flow
lists, quoted/plain scalars): the venv has no PyYAML.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from integration.runtimes.common import UDHCPC_SCRIPT, Unavailable, need, run

BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox")

# The container's init: PID 1 that exits cleanly on SIGTERM/SIGPWR/SIGINT
# (lxc.signal.halt = SIGTERM in our configs; LXC's default halt signal is SIGPWR).
DEVCLOUD_INIT = """#!/bin/sh
# devcloud runtime fixture init: stay up until asked to stop
trap 'exit 0' TERM INT PWR
echo "DEVCLOUD-INIT pid=$$"
while :; do sleep 1 & wait $!; done
"""


# -- busybox -----------------------------------------------------------------------


def busybox_binary() -> str:
    """The static busybox (Debian busybox-static). Refuses a dynamic one: it would need
    the host's libc inside the rootfs/initramfs."""
    for p in BUSYBOX_PATHS:
        if os.path.exists(p):
            with open(p, "rb") as f:
                head = f.read(4096)
            if head[:4] != b"\x7fELF":
                continue
            if _elf_has_interp(p):
                raise Unavailable(f"{p} is dynamically linked: apt install busybox-static")
            return p
    raise Unavailable("busybox not found: apt install busybox-static")


def _elf_has_interp(path: str) -> bool:
    """True if the ELF file has a PT_INTERP program header (i.e. is dynamically linked)."""
    import struct
    with open(path, "rb") as f:
        ident = f.read(16)
        if ident[4] != 2:                       # ELFCLASS64 only (amd64 hosts)
            return False
        f.seek(0x20)
        (phoff,) = struct.unpack("<Q", f.read(8))
        f.seek(0x36)
        phentsize, phnum = struct.unpack("<HH", f.read(4))
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            (ptype,) = struct.unpack("<I", f.read(4))
            if ptype == 3:                      # PT_INTERP
                return True
    return False


def busybox_applets(busybox: str | None = None) -> list[str]:
    """`busybox --list-full`: relative install paths (bin/sh, sbin/udhcpc, usr/bin/...)."""
    out = run([busybox or busybox_binary(), "--list-full"]).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def build_busybox_rootfs(dest: str | os.PathLike, *, hostname: str = "devcloud",
                         files: dict[str, str | bytes] | None = None) -> Path:
    """A minimal bootable-by-LXC root filesystem at `dest` (created; must not exist or be empty).

    Layout: /bin/busybox (static) + one symlink per applet; /etc/{passwd,group,shadow,
    hostname,hosts,resolv.conf,os-release}; /root 0700 root:root; /tmp 1777; /home/user
    owned 1000:1000 (a non-root owner, for shift checks); empty /proc /sys /dev /run;
    /sbin/devcloud-init (the init our LXC configs run); the udhcpc hook at both
    /usr/share/udhcpc/default.script and Debian's default /etc/udhcpc/default.script,
    printing `DEVCLOUD-LEASE ...`. `files` adds/overrides {path: content}. Everything
    is owned by uid/gid 0 unless said otherwise (we run as root)."""
    busybox = busybox_binary()
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise FileExistsError(f"{root} is not empty")
    for d, mode in [("bin", 0o755), ("sbin", 0o755), ("usr", 0o755), ("usr/bin", 0o755), ("usr/sbin", 0o755),
                    ("usr/share", 0o755), ("usr/share/udhcpc", 0o755), ("etc", 0o755), ("etc/udhcpc", 0o755),
                    ("root", 0o700), ("tmp", 0o1777), ("proc", 0o555), ("sys", 0o555), ("dev", 0o755),
                    ("run", 0o755), ("var", 0o755), ("var/log", 0o755), ("var/tmp", 0o1777), ("home", 0o755),
                    ("home/user", 0o755), ("mnt", 0o755), ("lib", 0o755)]:
        p = root / d
        p.mkdir(exist_ok=True)
        os.chmod(p, mode)                        # mkdir's mode is masked by the umask; chmod is not
    shutil.copy2(busybox, root / "bin/busybox")
    os.chmod(root / "bin/busybox", 0o755)
    for rel in busybox_applets(busybox):
        link = root / rel
        if rel in ("bin/busybox",) or link.exists() or link.is_symlink():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink("/bin/busybox", link)
    os.symlink("../run", root / "var/run")
    content: dict[str, str | bytes] = {
        "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n"
                      "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        "etc/group": "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n",
        "etc/shadow": "root:*:19000:0:99999:7:::\nuser:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n",
        "etc/hostname": f"{hostname}\n",
        "etc/hosts": f"127.0.0.1 localhost\n127.0.1.1 {hostname}\n",
        "etc/resolv.conf": "",
        "etc/os-release": 'NAME="devcloud busybox"\nID=busybox\nVERSION_ID=1.35\n'
                          'PRETTY_NAME="devcloud busybox fixture"\n',
        "sbin/devcloud-init": DEVCLOUD_INIT,
        "usr/share/udhcpc/default.script": UDHCPC_SCRIPT,
        "etc/udhcpc/default.script": UDHCPC_SCRIPT,
    }
    content.update(files or {})
    for rel, data in content.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.is_symlink():
            p.unlink()
        p.write_bytes(data.encode() if isinstance(data, str) else data)
        os.chmod(p, 0o755 if rel.startswith(("sbin/", "bin/", "usr/")) or rel.endswith(".script") else 0o644)
    os.chmod(root / "etc/shadow", 0o640)
    os.chown(root / "home/user", 1000, 1000)
    os.chmod(root, 0o755)
    return root


# -- metadata.yaml --------------------------------------------------------------------


@dataclass
class Template:
    template: str                              # file name under templates/
    when: list[str] = field(default_factory=lambda: ["create", "copy"])
    create_only: bool = False
    properties: dict[str, str] = field(default_factory=dict)


@dataclass
class ImageMetadata:
    """api.ImageMetadata (shared/api/image.go)."""

    architecture: str = "x86_64"
    creation_date: int = field(default_factory=lambda: int(time.time()))
    expiry_date: int = 0
    properties: dict[str, str] = field(default_factory=dict)
    templates: dict[str, Template] = field(default_factory=dict)

    @classmethod
    def busybox(cls, *, release: str = "1.35", serial: str | None = None,
                description: str | None = None) -> "ImageMetadata":
        serial = serial or time.strftime("%Y%m%d_%H:%M", time.gmtime())
        return cls(properties={"architecture": "amd64", "os": "busybox", "release": release,
                               "variant": "default", "serial": serial,
                               "description": description or f"busybox {release} amd64 ({serial})",
                               "name": f"busybox-{release}-amd64-default-{serial}"},
                   templates={"/etc/hostname": Template("hostname.tpl"),
                              "/etc/hosts": Template("hosts.tpl")})

    def to_yaml(self) -> str:
        q = json.dumps                            # a JSON string is a valid YAML double-quoted scalar
        lines = [f"architecture: {q(self.architecture)}", f"creation_date: {int(self.creation_date)}",
                 f"expiry_date: {int(self.expiry_date)}"]
        if self.properties:
            lines.append("properties:")
            lines += [f"  {q(k)}: {q(v)}" for k, v in sorted(self.properties.items())]
        else:
            lines.append("properties: {}")
        if self.templates:
            lines.append("templates:")
            for path, t in sorted(self.templates.items()):
                lines.append(f"  {q(path)}:")
                lines.append("    when:")
                lines += [f"    - {q(w)}" for w in t.when]
                lines.append(f"    create_only: {'true' if t.create_only else 'false'}")
                lines.append(f"    template: {q(t.template)}")
                if t.properties:
                    lines.append("    properties:")
                    lines += [f"      {q(k)}: {q(v)}" for k, v in sorted(t.properties.items())]
                else:
                    lines.append("    properties: {}")
        else:
            lines.append("templates: {}")
        return "\n".join(lines) + "\n"

    @classmethod
    def from_yaml(cls, text: str) -> "ImageMetadata":
        d = parse_yaml(text)
        if not isinstance(d, dict):
            raise ValueError("metadata.yaml is not a mapping")
        templates = {}
        for path, t in (d.get("templates") or {}).items():
            templates[path] = Template(template=str(t.get("template", "")), when=[str(w) for w in t.get("when") or []],
                                       create_only=bool(t.get("create_only", False)),
                                       properties={str(k): str(v) for k, v in (t.get("properties") or {}).items()})
        return cls(architecture=str(d.get("architecture", "")), creation_date=int(d.get("creation_date") or 0),
                   expiry_date=int(d.get("expiry_date") or 0),
                   properties={str(k): str(v) for k, v in (d.get("properties") or {}).items()},
                   templates=templates)

    def validate(self) -> None:
        """What Incus refuses at import (getImageMetadata): unknown architecture, no creation_date."""
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.architecture!r}")
        if not self.creation_date:
            raise ValueError("Missing creation date")
        for path, t in self.templates.items():
            if "/" in t.template or not t.template:
                raise ValueError(f"template for {path}: {t.template!r} is not a file name under templates/")


# shared/osarch/architectures.go: names and aliases (a subset of the aliases: the common ones)
ARCHITECTURES = {"i686", "x86_64", "armv6l", "armv7l", "armv8l", "aarch64", "ppc", "ppc64", "ppc64le", "s390x",
                 "mips", "mips64", "riscv32", "riscv64", "loongarch64",
                 "i386", "i586", "386", "x86", "amd64", "arm64", "armhf", "armel", "ppc64el", "loong64"}


def _scalar(s: str):
    s = s.strip()
    if s.startswith('"'):
        return json.loads(s)
    if s.startswith("'"):
        return s[1:-1].replace("''", "'")
    if s in ("{}",):
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
    """'key: rest' -> (key, rest), the key possibly quoted."""
    if line[0] in "\"'":
        q = line[0]
        i = 1
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
        return key, rest[1:].strip()
    k, sep, rest = line.partition(": ")
    if not sep:
        if line.endswith(":"):
            return line[:-1].strip(), ""
        raise ValueError(f"not a mapping entry: {line!r}")
    return k.strip(), rest.strip()


def parse_yaml(text: str):
    """Parse the block-YAML subset metadata.yaml uses (see the module docstring)."""
    rows = []
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#") or raw.strip() == "---":
            continue
        rows.append((len(raw) - len(raw.lstrip(" ")), raw.strip()))

    def block(i: int, indent: int):
        if i >= len(rows):
            return None, i
        if rows[i][1].startswith("- ") or rows[i][1] == "-":
            out = []
            while i < len(rows) and rows[i][0] == indent and (rows[i][1].startswith("- ") or rows[i][1] == "-"):
                item = rows[i][1][2:].strip()
                out.append(_scalar(item))
                i += 1
            return out, i
        out = {}
        while i < len(rows) and rows[i][0] == indent:
            key, rest = _split_key(rows[i][1])
            i += 1
            if rest == "" or rest.startswith("#"):
                # nested block: deeper indent, or a list at the same indent (yaml.v2 style)
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


# -- writing images --------------------------------------------------------------------


def _tar() -> str:
    return need("tar", "tar")


def _tar_compress_flag(path: Path) -> str:
    name = path.name
    if name.endswith((".tar.gz", ".tgz")):
        return "-z"
    if name.endswith(".tar.xz"):
        return "-J"
    if name.endswith(".tar"):
        return ""
    raise ValueError(f"{path}: name it .tar, .tar.gz/.tgz or .tar.xz")


def rootfs_tarball(rootfs: str | os.PathLike, out: str | os.PathLike) -> Path:
    """(a) A plain rootfs tarball of `rootfs` (members ./bin, ./etc, ...): GNU tar with
    --numeric-owner --xattrs (file capabilities and ACLs travel with the files)."""
    out = Path(out)
    flag = _tar_compress_flag(out)
    run([_tar(), "--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls", *([flag] if flag else []),
         "-cf", str(out), "-C", str(Path(rootfs).resolve()), "."], timeout=600)
    return out


def _write_meta_dir(stage: Path, meta: ImageMetadata, templates: dict[str, str] | None) -> list[str]:
    meta.validate()
    (stage / "metadata.yaml").write_text(meta.to_yaml())
    (stage / "templates").mkdir()
    tpl = dict(templates or {})
    tpl.setdefault("hostname.tpl", "{{ container.name }}\n")
    tpl.setdefault("hosts.tpl", "127.0.0.1 localhost\n127.0.1.1 {{ container.name }}\n")
    for name, body in tpl.items():
        (stage / "templates" / name).write_text(body)
    return ["metadata.yaml", "templates"]


def unified_image(rootfs: str | os.PathLike, out: str | os.PathLike, meta: ImageMetadata,
                  templates: dict[str, str] | None = None) -> Path:
    """(b) A unified image tarball: metadata.yaml, templates/, rootfs/ (GNU tar, numeric
    owners, xattrs; the rootfs directory's '.' is renamed to 'rootfs' by --transform)."""
    out = Path(out)
    flag = _tar_compress_flag(out)
    stage = out.parent / f".{out.name}.meta"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        names = _write_meta_dir(stage, meta, templates)
        run([_tar(), "--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls", *([flag] if flag else []),
             "-cf", str(out), "-C", str(stage), *names,
             "-C", str(Path(rootfs).resolve()), "--transform", r"s,^\.,rootfs,S", "."], timeout=600)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out


def split_image(rootfs: str | os.PathLike, meta_out: str | os.PathLike, rootfs_out: str | os.PathLike,
                meta: ImageMetadata, templates: dict[str, str] | None = None) -> tuple[Path, Path]:
    """(c) A split image: metadata tarball (metadata.yaml + templates/) and a squashfs of
    the rootfs (`mksquashfs <rootfs> <out> -noappend -comp gzip`, owners and xattrs kept)."""
    meta_out, rootfs_out = Path(meta_out), Path(rootfs_out)
    flag = _tar_compress_flag(meta_out)
    stage = meta_out.parent / f".{meta_out.name}.meta"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        names = _write_meta_dir(stage, meta, templates)
        run([_tar(), "--numeric-owner", *([flag] if flag else []), "-cf", str(meta_out), "-C", str(stage), *names])
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    mksquashfs = need("mksquashfs", "squashfs-tools")
    rootfs_out.unlink(missing_ok=True)
    run([mksquashfs, str(rootfs), str(rootfs_out), "-noappend", "-comp", "gzip", "-no-progress", "-quiet"],
        timeout=600)
    return meta_out, rootfs_out


def fingerprint(*files: str | os.PathLike) -> str:
    """Incus's image fingerprint: sha256 over the files' bytes in order (unified: the
    tarball; split: metadata tarball then rootfs)."""
    h = hashlib.sha256()
    for f in files:
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


# -- reading images -----------------------------------------------------------------------


@dataclass
class ImageInfo:
    kind: str                      # "unified" | "split" | "rootfs" (plain rootfs tarball)
    type: str                      # "container" | "virtual-machine"
    metadata: ImageMetadata | None
    fingerprint: str
    rootfs_format: str             # "tar" | "squashfs" | "qcow2" | "unknown"


def detect_format(path: str | os.PathLike) -> str:
    """By magic, like shared/archive/detect.go: tar (plain or gz/xz/bz2/zstd) | squashfs | qcow2."""
    with open(path, "rb") as f:
        h = f.read(263)
    if h[:4] == b"hsqs":
        return "squashfs"
    if h[:3] == b"QFI":
        return "qcow2"
    if h[:2] in (b"\x1f\x8b", b"BZ") or h[:6] == b"\xfd7zXZ\x00" or h[:4] == b"\x28\xb5\x2f\xfd" \
            or h[257:262] == b"ustar":
        return "tar"
    return "unknown"


def _scan_tar(path: Path) -> tuple[ImageMetadata | None, bool, bool]:
    """(metadata, has rootfs/ members, has rootfs.img) of a tarball, reading members in order."""
    meta = None
    has_rootfs = has_img = False
    with tarfile.open(path, "r:*") as tf:
        for m in tf:
            name = m.name[2:] if m.name.startswith("./") else m.name
            if name == "metadata.yaml" and m.isfile() and meta is None:
                meta = ImageMetadata.from_yaml(tf.extractfile(m).read(1 << 20).decode())
            elif name.startswith("rootfs/") or name == "rootfs":
                has_rootfs = True
            elif name == "rootfs.img":
                has_img = True
            if meta is not None and (has_rootfs or has_img):
                break
    return meta, has_rootfs, has_img


def inspect_image(path: str | os.PathLike, rootfs_file: str | os.PathLike | None = None) -> ImageInfo:
    """What an importer learns from an image: its kind, metadata, fingerprint."""
    path = Path(path)
    if detect_format(path) != "tar":
        raise ValueError(f"{path}: not a tarball")
    meta, has_rootfs, has_img = _scan_tar(path)
    if rootfs_file is not None:
        if meta is None:
            raise ValueError(f"{path}: metadata tarball is missing metadata.yaml")
        fmt = detect_format(rootfs_file)
        return ImageInfo("split", "virtual-machine" if fmt == "qcow2" else "container", meta,
                         fingerprint(path, rootfs_file), fmt)
    if meta is not None:
        if not (has_rootfs or has_img):
            raise ValueError(f"{path}: metadata only (a split image's first half): give its rootfs file too")
        return ImageInfo("unified", "virtual-machine" if has_img else "container", meta, fingerprint(path), "tar")
    return ImageInfo("rootfs", "container", None, fingerprint(path), "tar")


def unpack_image(path: str | os.PathLike, dest: str | os.PathLike,
                 rootfs_file: str | os.PathLike | None = None) -> Path:
    """Unpack any of the three formats below `dest` (created); returns the rootfs dir
    (`dest/rootfs`). Unified/split: metadata.yaml and templates/ land in `dest`, as in an
    Incus volume. Same tar options as Incus (numeric owners, xattrs, no dev/*)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    info = inspect_image(path, rootfs_file)
    tar_x = [_tar(), "--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls", "-p", "--anchored",
             "--wildcards", "--exclude=dev/*", "--exclude=./dev/*", "--exclude=rootfs/dev/*",
             "--exclude=./rootfs/dev/*"]
    rootfs = dest / "rootfs"
    if info.kind == "rootfs":
        rootfs.mkdir()
        run([*tar_x, "-xf", str(path), "-C", str(rootfs)], timeout=600)
        return rootfs
    run([*tar_x, "-xf", str(path), "-C", str(dest)], timeout=600)
    if rootfs.is_symlink() or (rootfs.exists() and not rootfs.is_dir()):
        raise ValueError(f"{path}: image rootfs isn't a regular directory")
    if info.kind == "split":
        rootfs.mkdir(exist_ok=True)
        if info.rootfs_format == "squashfs":
            run([need("unsquashfs", "squashfs-tools"), "-f", "-d", str(rootfs), "-n", str(rootfs_file)], timeout=600)
        elif info.rootfs_format == "tar":
            run([*tar_x, "-xf", str(rootfs_file), "-C", str(rootfs)], timeout=600)
        else:
            raise ValueError(f"{rootfs_file}: unsupported rootfs format {info.rootfs_format}")
    if not rootfs.is_dir():
        raise ValueError(f"{path}: image is missing a rootfs")
    return rootfs


def apply_templates(volume: str | os.PathLike, trigger: str, context: dict[str, str]) -> list[str]:
    """Apply metadata.yaml's templates for `trigger` to volume/rootfs, rendering only
    `{{ container.<key> }}` / `{{ instance.<key> }}` from `context` (Incus uses pongo2;
    this is just enough for hostname/hosts). Returns the paths written."""
    volume = Path(volume)
    meta = ImageMetadata.from_yaml((volume / "metadata.yaml").read_text())
    written = []
    for path, t in sorted(meta.templates.items()):
        if trigger not in t.when or "/" in t.template:
            continue
        src = volume / "templates" / t.template
        if src.is_symlink():
            raise ValueError(f"template {t.template} is a symlink")
        target = volume / "rootfs" / path.lstrip("/")
        if t.create_only and target.exists():
            continue
        body = re.sub(r"\{\{\s*(?:container|instance)\.(\w+)\s*\}\}", lambda m: context.get(m.group(1), ""),
                      src.read_text())
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink():
            raise ValueError(f"refusing to write through symlink {target}")
        target.write_text(body)
        written.append(path)
    return written


def tree_summary(root: str | os.PathLike) -> dict[str, tuple[int, int, int]]:
    """{relative path: (uid, gid, mode)} of every entry below root (lstat): compare trees."""
    root = Path(root)
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))
    return out
