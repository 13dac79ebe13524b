"""The bpf(2) system call through ctypes, and nothing else: open a pinned map, ask what it is, walk it.

The exporter only reads maps that another program (Cilium) pinned in a bpffs. The writing calls at the end
(map create, pin, update) exist for the tests and bench/, which build maps with Cilium's layout on the real
kernel; the collector never calls them.

Reading never disturbs the map's owner: a lookup from the syscall side of an LRU hash map goes through the
kernel's ``*_lookup_elem_sys`` path, which does not mark the entry as recently used, so walking Cilium's SNAT map
does not keep dead mappings alive.

Kernel facts this module relies on (include/uapi/linux/bpf.h):
- the command numbers below are ABI and never change;
- ``union bpf_attr`` is zero-extended: passing a shorter struct than the kernel's is fine, so one definition
  works from Linux 5.6 (BPF_MAP_LOOKUP_BATCH) to today;
- BPF_MAP_LOOKUP_BATCH (Linux 5.6) answers EINVAL/ENOTSUPP on kernels or map types without it; the caller then
  walks key by key with GET_NEXT_KEY + LOOKUP_ELEM.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
from collections.abc import Iterator
from dataclasses import dataclass

# __NR_bpf per architecture (arch/*/include/uapi/asm/unistd*.h).
_SYSCALL_NUMBERS = {"x86_64": 321, "aarch64": 280, "arm64": 280}

BPF_MAP_CREATE = 0
BPF_MAP_LOOKUP_ELEM = 1
BPF_MAP_UPDATE_ELEM = 2
BPF_MAP_GET_NEXT_KEY = 4
BPF_OBJ_PIN = 6
BPF_OBJ_GET = 7
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_MAP_LOOKUP_BATCH = 24

BPF_F_RDONLY = 1 << 3  # file_flags of BPF_OBJ_GET: a read-only fd is all a reader needs

BPF_MAP_TYPE_HASH = 1
BPF_MAP_TYPE_LRU_HASH = 9
MAP_TYPE_NAMES = {
    1: "hash",
    2: "array",
    5: "percpu_hash",
    6: "percpu_array",
    9: "lru_hash",
    10: "lru_percpu_hash",
    11: "lpm_trie",
}

ENOTSUPP = 524  # kernel-internal "operation not supported", leaks to user space from some bpf() paths


class BpfUnavailable(OSError):
    """This machine cannot make the bpf() system call at all (architecture unknown, seccomp, no libc)."""


class _ElemAttr(ctypes.Structure):
    _fields_ = [
        ("map_fd", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
        ("key", ctypes.c_uint64),
        ("value", ctypes.c_uint64),  # also next_key
        ("flags", ctypes.c_uint64),
    ]


class _ObjAttr(ctypes.Structure):
    _fields_ = [
        ("pathname", ctypes.c_uint64),
        ("bpf_fd", ctypes.c_uint32),
        ("file_flags", ctypes.c_uint32),
    ]


class _InfoAttr(ctypes.Structure):
    _fields_ = [
        ("bpf_fd", ctypes.c_uint32),
        ("info_len", ctypes.c_uint32),
        ("info", ctypes.c_uint64),
    ]


class _BatchAttr(ctypes.Structure):
    _fields_ = [
        ("in_batch", ctypes.c_uint64),
        ("out_batch", ctypes.c_uint64),
        ("keys", ctypes.c_uint64),
        ("values", ctypes.c_uint64),
        ("count", ctypes.c_uint32),
        ("map_fd", ctypes.c_uint32),
        ("elem_flags", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
    ]


class _CreateAttr(ctypes.Structure):
    _fields_ = [
        ("map_type", ctypes.c_uint32),
        ("key_size", ctypes.c_uint32),
        ("value_size", ctypes.c_uint32),
        ("max_entries", ctypes.c_uint32),
        ("map_flags", ctypes.c_uint32),
        ("inner_map_fd", ctypes.c_uint32),
        ("numa_node", ctypes.c_uint32),
        ("map_name", ctypes.c_char * 16),
    ]


class _MapInfo(ctypes.Structure):
    """struct bpf_map_info, up to the fields we read (the kernel copies min(its size, ours))."""

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("key_size", ctypes.c_uint32),
        ("value_size", ctypes.c_uint32),
        ("max_entries", ctypes.c_uint32),
        ("map_flags", ctypes.c_uint32),
        ("name", ctypes.c_char * 16),
    ]


@dataclass(frozen=True)
class MapInfo:
    type: int
    id: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    name: str

    @property
    def type_name(self) -> str:
        return MAP_TYPE_NAMES.get(self.type, f"type {self.type}")


_syscall: ctypes._CFuncPtr | None = None  # type: ignore[name-defined]
_nr: int | None = None


def _bpf(cmd: int, attr: ctypes.Structure) -> int:
    """One bpf() call; OSError with the kernel's errno on failure."""
    global _syscall, _nr
    if _syscall is None:
        nr = _SYSCALL_NUMBERS.get(platform.machine())
        if nr is None:
            raise BpfUnavailable(errno.ENOSYS, f"bpf(): unknown system call number on {platform.machine()}")
        try:
            libc = ctypes.CDLL(None, use_errno=True)
        except OSError as e:
            raise BpfUnavailable(errno.ENOSYS, f"bpf(): no libc to call through: {e}") from None
        func = libc.syscall
        func.restype = ctypes.c_long
        func.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_uint]
        _syscall, _nr = func, nr
    ret = int(_syscall(_nr, cmd, ctypes.addressof(attr), ctypes.sizeof(attr)))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err) if err != ENOTSUPP else "operation not supported (ENOTSUPP)")
    return ret


def _addr(buf: ctypes.Array[ctypes.c_char]) -> int:
    return ctypes.addressof(buf)


# ------------------------------------------------------------------------------------------------ reading
def obj_get(path: str, *, read_only: bool = True) -> int:
    """A file descriptor for the object pinned at ``path`` (BPF_OBJ_GET). The caller closes it."""
    raw = ctypes.create_string_buffer(os.fsencode(path))
    attr = _ObjAttr(pathname=_addr(raw), file_flags=BPF_F_RDONLY if read_only else 0)
    return _bpf(BPF_OBJ_GET, attr)


def map_info(fd: int) -> MapInfo:
    """What the map behind ``fd`` is (BPF_OBJ_GET_INFO_BY_FD): EINVAL if it is not a map."""
    info = _MapInfo()
    attr = _InfoAttr(bpf_fd=fd, info_len=ctypes.sizeof(info), info=ctypes.addressof(info))
    _bpf(BPF_OBJ_GET_INFO_BY_FD, attr)
    return MapInfo(
        type=info.type,
        id=info.id,
        key_size=info.key_size,
        value_size=info.value_size,
        max_entries=info.max_entries,
        flags=info.map_flags,
        name=info.name.decode(errors="replace"),
    )


def lookup_batches(fd: int, key_size: int, value_size: int, batch: int = 4096) -> Iterator[tuple[bytes, bytes, int]]:
    """Walk a hash map with BPF_MAP_LOOKUP_BATCH: yields (keys, values, n) with n entries packed back to back.

    Raises OSError (EINVAL, ENOTSUPP...) from the first call when the kernel or map type has no batch lookup,
    before anything was yielded, so that the caller can fall back to :func:`lookup_each`."""
    keys = ctypes.create_string_buffer(key_size * batch)
    values = ctypes.create_string_buffer(value_size * batch)
    # The batch token of a hash map is a u32 bucket index; the buffers are sized for any map type.
    token_in = ctypes.create_string_buffer(max(key_size, 8))
    token_out = ctypes.create_string_buffer(max(key_size, 8))
    first = True
    while True:
        attr = _BatchAttr(
            in_batch=0 if first else _addr(token_in),
            out_batch=_addr(token_out),
            keys=_addr(keys),
            values=_addr(values),
            count=batch,
            map_fd=fd,
        )
        try:
            _bpf(BPF_MAP_LOOKUP_BATCH, attr)
            done = False
        except OSError as e:
            if e.errno == errno.ENOENT:
                done = True  # the last (possibly empty) batch: attr.count says how many it holds
            elif e.errno == errno.ENOSPC and attr.count == 0:
                # One hash bucket holds more entries than fit: the kernel asks for a bigger batch.
                batch *= 2
                keys = ctypes.create_string_buffer(key_size * batch)
                values = ctypes.create_string_buffer(value_size * batch)
                continue
            else:
                raise
        n = attr.count
        if n:
            yield ctypes.string_at(keys, n * key_size), ctypes.string_at(values, n * value_size), n
        if done:
            return
        first = False
        ctypes.memmove(token_in, token_out, ctypes.sizeof(token_in))


def lookup_each(fd: int, key_size: int, value_size: int, limit: int) -> Iterator[tuple[bytes, bytes]]:
    """Walk a map key by key (GET_NEXT_KEY, then LOOKUP_ELEM): the fallback for kernels before 5.6.

    Two calls per entry. An entry deleted between the two calls is skipped. When the current key is deleted,
    GET_NEXT_KEY starts over from the first key, so the walk stops after ``limit`` keys (the map's
    max_entries plus slack) rather than loop on a busy map."""
    key = ctypes.create_string_buffer(key_size)
    nxt = ctypes.create_string_buffer(key_size)
    value = ctypes.create_string_buffer(value_size)
    step = _ElemAttr(map_fd=fd, key=0, value=_addr(nxt))
    get = _ElemAttr(map_fd=fd, key=_addr(nxt), value=_addr(value))
    for _ in range(limit):
        try:
            _bpf(BPF_MAP_GET_NEXT_KEY, step)
        except OSError as e:
            if e.errno == errno.ENOENT:
                return  # past the last key
            raise
        try:
            _bpf(BPF_MAP_LOOKUP_ELEM, get)
            yield nxt.raw, value.raw
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise
        ctypes.memmove(key, nxt, key_size)
        step.key = _addr(key)


# --------------------------------------------------------------------------- writing (tests and bench/ only)
def map_create(map_type: int, key_size: int, value_size: int, max_entries: int, name: str = "") -> int:
    attr = _CreateAttr(
        map_type=map_type,
        key_size=key_size,
        value_size=value_size,
        max_entries=max_entries,
        map_name=name.encode()[:15],
    )
    return _bpf(BPF_MAP_CREATE, attr)


def obj_pin(fd: int, path: str) -> None:
    raw = ctypes.create_string_buffer(os.fsencode(path))
    _bpf(BPF_OBJ_PIN, _ObjAttr(pathname=_addr(raw), bpf_fd=fd))


def update_elem(fd: int, key: bytes, value: bytes) -> None:
    k = ctypes.create_string_buffer(key, len(key))
    v = ctypes.create_string_buffer(value, len(value))
    _bpf(BPF_MAP_UPDATE_ELEM, _ElemAttr(map_fd=fd, key=_addr(k), value=_addr(v)))
