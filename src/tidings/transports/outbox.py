"""The ``file://DIR`` transport: one ``.eml`` file per message (``.sms.txt`` for
an SMS when no gateway is set), for the embedded default."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from tidings.transports.base import SENT, Envelope, Outcome, Result


class OutboxTransport:
    """Writes ``DIR/<message id>.eml`` atomically (temporary file, then rename).

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
            final = self.directory / f"{env.message_id}{self.suffix}"
            tmp = final.with_suffix(".tmp")
            try:
                with open(tmp, "wb") as fh:
                    fh.write(b"X-Envelope-From: " + env.mail_from.encode() + b"\r\n")
                    fh.write(b"X-Envelope-To: " + env.rcpt.encode() + b"\r\n")
                    fh.write(env.data)
                os.replace(tmp, final)
            except OSError as exc:
                outcomes.append(Outcome(result=Result.DEFERRED, detail=f"cannot write {final}: {exc}"))
            else:
                outcomes.append(SENT)
        return outcomes

    def close(self) -> None:
        pass
