"""The minter's HTTP/1.1 reader decides as h11 (a reference HTTP/1.1 implementation) does, on generated answers:
Content-Length, chunked (with chunk extensions and trailers), close-delimited, after 1xx answers, with bad framing,
and delivered split at arbitrary bytes."""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.upstream.http1 import UpstreamConnectionError, _Connection

REQUEST = b"POST /v1alpha/auth_tokens HTTP/1.1\r\nHost: upstream.test\r\nContent-Length: 2\r\n\r\n{}"
Outcome = tuple[str, int, bytes] | tuple[str]


class _Transport:
    def __init__(self) -> None:
        self.closed = False

    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def _h11(chunks: list[bytes], eof: bool) -> Outcome:
    """What h11, as a client that sent REQUEST, makes of the answer: ("answer", status, body) or ("error",)."""
    conn = h11.Connection(our_role=h11.CLIENT)
    conn.send(
        h11.Request(
            method="POST", target="/v1alpha/auth_tokens", headers=[("Host", "upstream.test"), ("Content-Length", "2")]
        )
    )
    conn.send(h11.Data(data=b"{}"))
    conn.send(h11.EndOfMessage())
    status, body = 0, b""
    try:
        for chunk in [*chunks, *([b""] if eof else [])]:
            conn.receive_data(chunk)
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    break
                if isinstance(event, h11.InformationalResponse):
                    continue
                if isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.Data):
                    body += bytes(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    return ("answer", status, body)
                elif isinstance(event, h11.ConnectionClosed):
                    return ("error",)
    except h11.RemoteProtocolError:
        return ("error",)
    return ("error",)  # the stream ended (or stopped) before a whole answer


def _ours(chunks: list[bytes], eof: bool) -> Outcome:
    """What the minter's connection makes of the same bytes, delivered as `chunks` (then a clean close if `eof`)."""

    async def run() -> Outcome:
        loop = asyncio.get_running_loop()
        connection = _Connection(loop)
        connection.connection_made(_Transport())  # type: ignore[arg-type]  # a stand-in transport
        future = connection.send(REQUEST)
        for chunk in chunks:
            if future.done() or connection.closed:
                break
            connection.data_received(chunk)
        if eof and not future.done():
            connection.eof_received()
            connection.connection_lost(None)
        if not future.done():
            return ("error",)
        try:
            answer = future.result()
        except UpstreamConnectionError:
            return ("error",)
        return ("answer", answer.status, answer.body)

    return asyncio.run(run())


_TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=8)
_BODY = st.binary(max_size=40)


@st.composite
def answers(draw: Any) -> tuple[bytes, bool]:
    """An answer's bytes and whether the server closes the connection after them."""
    prefix = b""
    for _ in range(draw(st.integers(0, 2))):
        prefix += draw(
            st.sampled_from([b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"])
        )
    status = draw(st.sampled_from([200, 201, 400, 403, 429, 500, 503]))
    extra = b"".join(
        f"{name}: {draw(_TOKEN)}\r\n".encode() for name in draw(st.lists(_TOKEN.map(lambda t: "x-" + t), max_size=3))
    )
    body = draw(_BODY)
    framing = draw(
        st.sampled_from(
            ["length", "chunked", "close", "length-short", "both", "bad-length", "bad-chunk", "truncated-chunked"]
        )
    )
    head = f"HTTP/1.1 {status} Whatever\r\n".encode() + extra
    eof = False
    if framing == "length":
        message = head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
    elif framing == "length-short":  # fewer bytes than announced, then the server hangs up
        message = head + f"Content-Length: {len(body) + 5}\r\n\r\n".encode() + body
        eof = True
    elif framing == "close":
        message = head + b"Connection: close\r\n\r\n" + body
        eof = True
    elif framing == "both":
        message = head + f"Content-Length: {len(body)}\r\nTransfer-Encoding: chunked\r\n\r\n".encode() + body
    elif framing == "bad-length":
        message = head + b"Content-Length: 1x\r\n\r\n" + body
    else:
        pieces = draw(st.lists(st.binary(min_size=1, max_size=12), max_size=4))
        chunked = b""
        for piece in pieces:
            ext = b";ext=" + draw(_TOKEN).encode() if draw(st.booleans()) else b""
            chunked += f"{len(piece):x}".encode() + ext + b"\r\n" + piece + b"\r\n"
        trailers = b"".join(f"x-t-{draw(_TOKEN)}: v\r\n".encode() for _ in range(draw(st.integers(0, 2))))
        chunked += b"0\r\n" + trailers + b"\r\n"
        if framing == "bad-chunk":
            chunked = b"zz\r\n" + chunked
        if framing == "truncated-chunked":
            chunked = chunked[: max(0, len(chunked) - 3)]
            eof = True
        message = head + b"Transfer-Encoding: chunked\r\n\r\n" + chunked
    return prefix + message, eof


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answer=answers(), cuts=st.lists(st.integers(min_value=1), max_size=6))
def test_the_reader_decides_as_h11(answer: tuple[bytes, bool], cuts: list[int]) -> None:
    """Same status and body, or an error, as h11, however the bytes are split."""
    data, eof = answer
    points = sorted({c % len(data) for c in cuts if c % len(data)})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert _ours(chunks, eof) == _h11(chunks, eof)
