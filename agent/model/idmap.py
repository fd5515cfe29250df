"""uid/gid maps of unprivileged instances: plain values shared by the api, the
storage plane (shifted image variants, ZFS marks) and the idmap driver.

One contiguous range each for uids and gids, starting at the instance's id 0
(what LXC writes as `lxc.idmap = u 0 <host_uid> <count>` / `g 0 <host_gid>
<count>`, and LXD/Incus allocate by default). No I/O.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

MODE_NONE = ""                 # privileged root: no map
MODE_SHIFTED = "shifted"       # stored shifted: a clone of the image's shifted variant
MODE_MOUNT = "mount"           # stored as imported: the runtime mounts it idmapped
MODES = (MODE_NONE, MODE_SHIFTED, MODE_MOUNT)

MAX_COUNT = 1_000_000_000      # far beyond any real range, well inside uint32
ID_LIMIT = (1 << 32) - 1       # (uid_t)-1 is "no id" for chown: a map must end below it
_MARK_RE = re.compile(r"u(\d+):g(\d+):n(\d+)")


@dataclass(frozen=True, order=True)
class IdMap:
    """Instance ids 0..count-1 -> host uids host_uid.. and gids host_gid..."""

    host_uid: int
    host_gid: int
    count: int

    def problems(self) -> list[tuple[str, str]]:
        """(field, description) of every reason this map cannot be used (empty: fine)."""
        out = []
        for f in ("host_uid", "host_gid"):
            v = getattr(self, f)
            if v < 1:
                out.append((f, "must be >= 1 (0 would map the instance's root to the host's)"))
            elif v + self.count > ID_LIMIT:
                out.append((f, f"{v} + count {self.count} runs past the last host id {ID_LIMIT - 1}"))
        if not 1 <= self.count <= MAX_COUNT:
            out.append(("count", f"must be 1..{MAX_COUNT}"))
        return out

    def mark(self) -> str:
        """The ZFS property value: "u100000:g100000:n65536"."""
        return f"u{self.host_uid}:g{self.host_gid}:n{self.count}"

    @classmethod
    def from_mark(cls, text: str) -> "IdMap | None":
        """The map of a mark() value; None for "" or anything else."""
        m = _MARK_RE.fullmatch(text or "")
        return cls(int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None

    def suffix(self) -> str:
        """A dataset-name suffix naming the map: "u100000_g100000_n65536"."""
        return f"u{self.host_uid}_g{self.host_gid}_n{self.count}"

    def lxc_lines(self) -> list[str]:
        """LXC's config lines for this map."""
        return [f"lxc.idmap = u 0 {self.host_uid} {self.count}", f"lxc.idmap = g 0 {self.host_gid} {self.count}"]
