"""Scan keys of many models at once, shared out over forked processes.

An idle ``upload --once`` over 1,000 models x 100 checkpoints is almost only its scan: 100,000
``stat`` calls and the Python loop around them, 0.27 s of CPU that one process runs under one
GIL (threads made it slower). A forked child scans a share of the models and sends back one
8-byte key per model, so an idle pass divides that time by the cores it may use.

Safe by construction:
- fork only from a process with a single thread: a fork copies no other thread, and a lock one of
  them held would stay held in the child;
- a child touches only the file system and its pipe, and leaves with ``os._exit`` (no atexit, no
  flush of buffers it shares with this process);
- a child that fails or sends a short answer costs only time: its share is scanned here again.
Keys are ``hash()`` of tuples of ints (:func:`local.upload.clean_runs.scan_key`), which a forked
child computes exactly as its parent would.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from array import array
from typing import List, Optional, Sequence, Tuple

from local.upload.clean_runs import scan_key
from local.upload.metrics import scan_checkpoints

log = logging.getLogger(__name__)

# Below this many models per process a fork (about 1 ms) buys nothing.
MIN_MODELS_PER_PROCESS = 32
# The scan is stat calls into the page cache: past a few processes the kernel's locks, not the
# cores, set the pace.
MAX_PROCESSES = 4
_KEY_TYPE = "q"  # hash() is a signed 64-bit Py_hash_t


def key_of(model_path: str) -> int:
    """Given a model directory, return its scan key (every checkpoint and metrics file signature)."""
    return scan_key(scan_checkpoints(model_path))


def processes_for(model_count: int) -> int:
    """Given how many models to scan, return how many processes should share the scan (1: no fork)."""
    if threading.active_count() > 1:
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_PROCESSES, model_count // MIN_MODELS_PER_PROCESS))


def scan_keys(model_paths: Sequence[str], processes: Optional[int] = None) -> List[int]:
    """Given model directories, return their scan keys in order, scanned by up to ``processes``."""
    count = processes_for(len(model_paths)) if processes is None else max(1, processes)
    # Interleaved shares: a tree's big and small models are usually neighbours in name order.
    shares = [range(first, len(model_paths), count) for first in range(count)]
    children = [(share, _start_child(model_paths, share)) for share in shares[1:]]
    keys = [0] * len(model_paths)
    try:
        for index in shares[0]:
            keys[index] = key_of(model_paths[index])
    finally:  # reaped whatever happens here: no child is left behind in a long-lived service
        answers = [_collect(child, len(share)) if child is not None else None for share, child in children]
    for (share, _), answer in zip(children, answers):
        if answer is None:
            log.debug("a scan process failed; scanning its %d models here", len(share))
            answer = [key_of(model_paths[index]) for index in share]
        for index, key in zip(share, answer):
            keys[index] = key
    return keys


def _start_child(model_paths: Sequence[str], share: range) -> Optional[Tuple[int, int]]:
    """Given a share of the models, fork a process that scans it; return (pid, pipe) or None."""
    try:
        read_end, write_end = os.pipe()
    except OSError:
        return None
    try:
        pid = os.fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        return None
    if pid == 0:  # the child: never returns into the caller's code
        status = 1
        try:
            os.close(read_end)
            signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C or a stop ends it at once
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            _write_all(write_end, array(_KEY_TYPE, [key_of(model_paths[i]) for i in share]).tobytes())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    return pid, read_end


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _collect(child: Tuple[int, int], expected: int) -> Optional[List[int]]:
    """Given a child's (pid, pipe), read its keys and reap it; None unless it answered in full."""
    pid, read_end = child
    chunks = []
    try:
        while True:
            chunk = os.read(read_end, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError:
        chunks = []
    finally:
        os.close(read_end)
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:  # reaped by someone else: its exit is unknown, so not trusted
            status = -1
    data = b"".join(chunks)
    keys = array(_KEY_TYPE)
    if status != 0 or len(data) != expected * keys.itemsize:
        return None
    keys.frombytes(data)
    return keys.tolist()
