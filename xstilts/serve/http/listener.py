"""Stopping a listening socket without resetting a connection that already sent a request.

Closing a listening socket resets every connection the kernel has accepted for it but the server has not taken
yet, requests and all. So the drain first has the kernel drop new connection attempts at the socket (a socket
filter: the client's SYN goes unanswered and is retried, to find the port closed), lets the server take what is
queued, and only then closes it. Off Linux the filter is not available and the socket is simply closed.
"""

from __future__ import annotations

import ctypes
import select
import socket
import struct
import sys
from typing import Any

SO_ATTACH_FILTER = 26  # <asm-generic/socket.h>
DROP_EVERYTHING = struct.pack("HBBI", 0x06, 0, 0, 0)  # one classic BPF instruction: BPF_RET | BPF_K, keep 0 bytes


def refuse_new_connections(sock: Any) -> bool:
    """Have the kernel drop every new connection attempt at ``sock`` (True), or say it cannot here (False)."""
    if not sys.platform.startswith("linux"):
        return False
    code = ctypes.create_string_buffer(DROP_EVERYTHING, len(DROP_EVERYTHING))
    program = struct.pack("HP", 1, ctypes.addressof(code))  # struct sock_fprog {len; filter pointer}
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, program)
    except OSError:
        return False
    return True


def has_waiting_connections(sock: Any) -> bool:
    """Whether the kernel holds accepted connections that the server has not taken yet."""
    try:
        readable, _, _ = select.select([sock.fileno()], [], [], 0)
    except (OSError, ValueError):
        return False
    return bool(readable)
