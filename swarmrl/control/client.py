"""The client side of the control API: calls with the token and a deadline, errors as one line.

``swarmrl inspect`` uses it; so can scripts. Every failure becomes :class:`InspectError` whose
message is one sentence a user can act on (unreachable, wrong token, unknown node, bad task).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import grpc

from swarmrl.control.proto import control_pb2 as pb
from swarmrl.control.proto import control_pb2_grpc as pb_grpc

CONTROL_ADDR_FILE = "control.addr"
"""Written into a run directory by whatever serves the API, so `inspect --dir` finds it."""
TOKEN_FILE = "control.token"
"""The run directory's own control token (mode 0600), which `inspect --dir` presents."""


class InspectError(Exception):
    """A control call failed; the message is one line."""


class ControlClient:
    def __init__(self, addr: str, token: str | None = None, timeout: float = 5.0) -> None:
        self.addr = addr
        self.timeout = timeout
        self._metadata = [("authorization", f"Bearer {token}")] if token else []
        self._channel = grpc.insecure_channel(addr)
        self._stub = pb_grpc.NodeControlStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, request: Any) -> Any:
        """A unary call, e.g. ``call("Status", pb.NodeRequest(node="small-0"))``."""
        try:
            return getattr(self._stub, method)(
                request, timeout=self.timeout, metadata=self._metadata
            )
        except grpc.RpcError as e:
            raise InspectError(self._explain(e)) from None

    def stream(self, method: str, request: Any, follow: bool = False) -> Iterator[Any]:
        """A server-streaming call; without ``follow`` it must finish within the timeout."""
        try:
            yield from getattr(self._stub, method)(
                request, timeout=None if follow else self.timeout, metadata=self._metadata
            )
        except grpc.RpcError as e:
            raise InspectError(self._explain(e)) from None

    def _explain(self, e: grpc.RpcError) -> str:
        code, details = e.code(), (e.details() or "").strip()  # type: ignore[attr-defined]
        if code == grpc.StatusCode.UNAVAILABLE:
            why = "connection refused" if "refused" in details.lower() else _short(details)
            return f"cannot reach a node at {self.addr} ({why}); is it running?"
        if code == grpc.StatusCode.UNAUTHENTICATED:
            return (f"{self.addr} refused the call: {details} "
                    "(run it with --dir RUN_DIR, which holds control.token, or pass --token / "
                    "set SWARMRL_TOKEN)")
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return f"no answer from {self.addr} within {self.timeout:g} s"
        if code == grpc.StatusCode.UNIMPLEMENTED:
            return f"{self.addr} does not serve this swarmrl control API ({_short(details)})"
        return _short(details) or f"{code.name.lower()} from {self.addr}"


def _short(text: str, n: int = 160) -> str:
    line = " ".join(text.split())
    return line if len(line) <= n else line[: n - 3] + "..."


def to_dict(msg: Any) -> dict[str, Any]:
    """A reply as plain JSON-able data: int64 stay numbers, unset optionals and NaN are None,
    and ``*_json`` fields are parsed (proto3's JSON mapping would quote 64-bit integers)."""
    import json

    out: dict[str, Any] = {}
    for fd in msg.DESCRIPTOR.fields:
        value = getattr(msg, fd.name)
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            vfd = fd.message_type.fields_by_name["value"]
            out[fd.name] = {k: _value(vfd, v) for k, v in value.items()}
        elif fd.is_repeated:
            out[fd.name] = [_value(fd, v) for v in value]
        elif fd.has_presence and not msg.HasField(fd.name):
            out[fd.name] = None
        elif fd.name.endswith("_json"):
            out[fd.name[: -len("_json")]] = json.loads(value) if value else None
        else:
            out[fd.name] = _value(fd, value)
    return out


def _value(fd: Any, v: Any) -> Any:
    if fd.message_type is not None:
        return to_dict(v)
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


__all__ = ["ControlClient", "InspectError", "pb", "to_dict"]
