"""The ``file://DIR`` transport: one ``.eml`` file per message (``.sms.txt`` for
an SMS when no gateway is set), for the embedded default.

A file is never overwritten: every message gets a name of its own, and a
message is only ever seen under its final name whole (written to a hidden
temporary file first). A disk that is full (or over its quota) defers the
message, the temporary file removed, with the interruption's words for the
manager ("The outbox disk is full ...") should the retries not help.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from tidings.transports.base import SENT, Envelope, Outcome, Result


class OutboxTransport:
    """Writes each message to a file of its own in ``DIR``, atomically (a
    temporary file, then a hard link under the final name, which fails rather
    than replace a file).

    The name is ``<message id><suffix>`` for a stored message, and
    ``test-<UTC time>-<random><suffix>`` for a message id of 0 or less, which
    names no stored message (a test send). When the name is taken (the outbox
    of a database that was started afresh) a random part is added:
    ``<message id>-<random><suffix>``.

    The envelope goes into ``X-Envelope-From`` / ``X-Envelope-To`` lines ahead of the
    message so a person can see where it would have gone.
    """

    def __init__(self, directory: str | Path, *, suffix: str = ".eml") -> None:
        self.suffix = suffix
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.description = f"outbox folder {self.directory}"

    def send(self, batch: Sequence[Envelope]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for env in batch:
            tmp = self.directory / f".{secrets.token_hex(8)}.tmp"
            try:
                with open(tmp, "wb") as fh:
                    fh.write(b"X-Envelope-From: " + env.mail_from.encode() + b"\r\n")
                    fh.write(b"X-Envelope-To: " + env.rcpt.encode() + b"\r\n")
                    fh.write(env.data)
                self._publish(tmp, env.message_id)
            except OSError as exc:
                outcomes.append(self._unwritten(exc))
            else:
                outcomes.append(SENT)
            finally:
                tmp.unlink(missing_ok=True)
        return outcomes

    def _unwritten(self, exc: OSError) -> Outcome:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return Outcome(
                result=Result.DEFERRED, detail=f"the outbox disk is full: {exc}",
                interruption=(f"The outbox disk is full: the folder {self.directory} has no room for "
                              "more messages. Free some space on its disk, then resume: messages "
                              "already written will not be repeated."))
        return Outcome(result=Result.DEFERRED, detail=f"cannot write to {self.directory}: {exc}")

    def _publish(self, tmp: Path, message_id: int) -> Path:
        """Link ``tmp`` under the message's name, or a fresh variant of it when taken."""
        taken = False
        while True:
            if message_id <= 0:
                name = f"test-{datetime.now(UTC):%Y%m%dT%H%M%S.%fZ}-{secrets.token_hex(3)}"
            else:
                name = f"{message_id}-{secrets.token_hex(3)}" if taken else str(message_id)
            final = self.directory / f"{name}{self.suffix}"
            try:
                os.link(tmp, final)
                return final
            except FileExistsError:
                taken = True

    def close(self) -> None:
        pass
