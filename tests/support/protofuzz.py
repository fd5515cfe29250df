"""Hypothesis strategies for any protobuf message, built from its descriptor.

Used to fuzz every RPC of every service: random strings (unicode, huge,
path-like, quote-laden), integers at and beyond their ranges, enum numbers
that are not defined (proto3 enums are open), nested and repeated fields.
"""
from __future__ import annotations

from google.protobuf.descriptor import FieldDescriptor as F
from hypothesis import strategies as st

_NASTY = ["", " ", "..", "../../etc", "/", "a/b", "a@b", "x" * 300, "'\"", "a\x00b", "é", "-", "0",
          "-1", "max", "10.0.0.0/24", "00:00:00:00:00:00", "br-int", "ovn-installed", "\n", "%s"]

_INT_BOUNDS = {F.TYPE_INT32: (-2**31, 2**31 - 1), F.TYPE_SINT32: (-2**31, 2**31 - 1),
               F.TYPE_SFIXED32: (-2**31, 2**31 - 1), F.TYPE_INT64: (-2**63, 2**63 - 1),
               F.TYPE_SINT64: (-2**63, 2**63 - 1), F.TYPE_SFIXED64: (-2**63, 2**63 - 1),
               F.TYPE_UINT32: (0, 2**32 - 1), F.TYPE_FIXED32: (0, 2**32 - 1),
               F.TYPE_UINT64: (0, 2**64 - 1), F.TYPE_FIXED64: (0, 2**64 - 1)}


def _scalar(fd) -> st.SearchStrategy:
    t = fd.type
    if t in _INT_BOUNDS:
        lo, hi = _INT_BOUNDS[t]
        return st.one_of(st.integers(lo, hi), st.sampled_from([lo, hi, 0, 1, -1 if lo < 0 else 2, 1000, 4096]))
    if t == F.TYPE_BOOL:
        return st.booleans()
    if t in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        return st.floats(allow_nan=True, allow_infinity=True, width=32 if t == F.TYPE_FLOAT else 64)
    if t == F.TYPE_STRING:
        return st.one_of(st.sampled_from(_NASTY), st.text(max_size=40),
                         st.from_regex(r"[a-z0-9-]{1,20}", fullmatch=True))
    if t == F.TYPE_BYTES:
        return st.binary(max_size=256)
    if t == F.TYPE_ENUM:
        defined = [v.number for v in fd.enum_type.values]
        return st.one_of(st.sampled_from(defined), st.integers(-5, 1000))
    raise TypeError(f"unsupported field type {t}")  # pragma: no cover


def message(descriptor, cls_for, depth: int = 0) -> st.SearchStrategy:
    """A strategy producing instances of the message described by `descriptor`.

    `cls_for(descriptor)` returns the Python class for a message descriptor.
    """
    fields = {}
    for fd in descriptor.fields:
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            key_fd, val_fd = fd.message_type.fields_by_name["key"], fd.message_type.fields_by_name["value"]
            val = (_scalar(val_fd) if val_fd.message_type is None
                   else message(val_fd.message_type, cls_for, depth + 1) if depth < 3 else st.nothing())
            fields[fd.name] = st.dictionaries(_scalar(key_fd), val, max_size=4)
        elif fd.message_type is not None:
            if depth >= 3 or fd.message_type.full_name.startswith("google.protobuf."):
                continue
            sub = message(fd.message_type, cls_for, depth + 1)
            fields[fd.name] = st.lists(sub, max_size=3) if _repeated(fd) else st.one_of(st.none(), sub)
        else:
            fields[fd.name] = st.lists(_scalar(fd), max_size=4) if _repeated(fd) else _scalar(fd)

    def build(values: dict):
        msg = cls_for(descriptor)()
        for name, value in values.items():
            fd = descriptor.fields_by_name[name]
            if value is None:
                continue
            if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
                target = getattr(msg, name)
                for k, v in value.items():
                    if fd.message_type.fields_by_name["value"].message_type is not None:
                        target[k].CopyFrom(v)
                    else:
                        target[k] = v
            elif _repeated(fd):
                getattr(msg, name).extend(value)
            elif fd.message_type is not None:
                getattr(msg, name).CopyFrom(value)
            else:
                setattr(msg, name, value)
        return msg

    return st.fixed_dictionaries({}, optional=fields).map(build)


def _repeated(fd) -> bool:
    return fd.is_repeated if hasattr(fd, "is_repeated") else fd.label == F.LABEL_REPEATED
