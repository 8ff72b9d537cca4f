"""The pipelined SMTP path reads replies straight off the socket: the same
results as ``smtplib.getreply``, however the bytes arrive."""

from __future__ import annotations

import smtplib
import socket
import threading

import pytest

from tidings.transports.smtp import _Replies

REPLIES = (b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
           b"250-first line\r\n250-second\r\n250 last\r\nxyz not a number\r\n550 5.1.1 No such user\r\n")


def through(chunks: list[bytes]) -> tuple[_Replies, socket.socket]:
    ours, theirs = socket.socketpair()
    ours.settimeout(5)

    def write() -> None:
        for chunk in chunks:
            theirs.sendall(chunk)

    threading.Thread(target=write).start()
    return _Replies(ours), theirs


def by_smtplib(data: bytes, n: int) -> list[tuple[int, bytes]]:
    ours, theirs = socket.socketpair()
    theirs.sendall(data)
    client = smtplib.SMTP()
    client.sock = ours
    return [client.getreply() for _ in range(n)]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 50, len(REPLIES)])
def test_replies_read_in_any_pieces_equal_smtplib(size: int) -> None:
    replies, theirs = through([REPLIES[i : i + size] for i in range(0, len(REPLIES), size)])

    got = replies.take(3) + replies.take(1) + replies.take(2)

    assert got == by_smtplib(REPLIES, 6)
    assert got[3] == (250, b"first line\nsecond\nlast") and got[4][0] == -1
    assert replies.buf == b""
    theirs.close()


def test_a_closed_connection_raises_as_smtplib_does() -> None:
    replies, theirs = through([b"250 Ok\r\n250 Ok"])
    assert replies.take(1) == [(250, b"Ok")]
    theirs.shutdown(socket.SHUT_WR)

    with pytest.raises(smtplib.SMTPServerDisconnected):
        replies.take(1)


def test_an_endless_line_is_refused() -> None:
    replies, theirs = through([b"250 " + b"x" * 9000])

    with pytest.raises(smtplib.SMTPResponseException, match="too long"):
        replies.take(1)
    theirs.close()


def test_bytes_beyond_the_replies_asked_for_stay_buffered() -> None:
    replies, theirs = through([b"250 a\r\n251 b\r\n"])

    assert replies.take(1) == [(250, b"a")]
    assert replies.take(1) == [(251, b"b")]
    assert replies.buf == b""
    theirs.close()
