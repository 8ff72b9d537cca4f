"""SMS through an HTTP gateway: one JSON POST per message.

``POST TIDINGS_SMS_URL`` with ``{"to": PHONE, "text": TEXT, "message_id", "mailing_id"}``;
any 2xx means accepted. 4xx refuses that message for good (``REJECTED``); 5xx,
429 and connection failures are ``DEFERRED`` (retried, then the mailing is
interrupted); a timeout after the request went out is ``UNCERTAIN``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx

from tidings.transports.base import SENT, Envelope, Outcome, Result


class HttpSmsTransport:
    def __init__(self, url: str, *, connections: int = 8, timeout: float = 30.0) -> None:
        self.url = url
        self.description = f"SMS gateway {httpx.URL(url).host}"
        self._client = httpx.Client(timeout=timeout, limits=httpx.Limits(max_connections=connections))
        self._pool = ThreadPoolExecutor(max_workers=connections, thread_name_prefix="sms")

    def _send_one(self, env: Envelope) -> Outcome:
        body = {"to": env.rcpt, "text": env.data.decode("utf-8"), "message_id": env.message_id,
                "mailing_id": int(env.mail_from)}
        try:
            response = self._client.post(self.url, content=json.dumps(body),
                                         headers={"Content-Type": "application/json"})
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            return Outcome(result=Result.DEFERRED, detail=f"cannot reach {self.description}: {exc}")
        except httpx.HTTPError as exc:
            return Outcome(result=Result.UNCERTAIN, detail=f"{self.description} did not answer: {exc}")
        if response.is_success:
            return SENT
        detail = f"{self.description} answered {response.status_code}: {response.text[:200]}"
        if response.status_code == 429 or response.status_code >= 500:
            return Outcome(result=Result.DEFERRED, code=response.status_code, detail=detail)
        return Outcome(result=Result.REJECTED, code=response.status_code, detail=detail)

    def send(self, batch: Sequence[Envelope]) -> list[Outcome]:
        return list(self._pool.map(self._send_one, batch))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._client.close()
