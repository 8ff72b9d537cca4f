"""The SMPP transport against the loopback SMSC (tests/smsc.py): real sockets on 127.0.0.1."""

from __future__ import annotations

import collections
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tests.smsc import RINVDSTADR, RINVPASWD, RMSGQFUL, RTHROTTLED, LoopbackSmsc
from tests.smtpserver import free_port
from tidings.domain import sms
from tidings.errors import InvalidInput
from tidings.transports.base import Envelope, Outcome, Result
from tidings.transports.factory import make_sms_transport
from tidings.transports.smpp import SmppSettings, SmppTransport

PHONE = "+37120000001"
CYRILLIC = ("Скидка 20% на всё до воскресенья! Приходите в наш магазин на Ленина 5, ждём вас. "
            "Ваш промокод ВЕСНА")


def envelope(text: str, message_id: int = 1, rcpt: str = PHONE) -> Envelope:
    return Envelope(message_id=message_id, mail_from="7", rcpt=rcpt, data=text.encode())


def batch(n: int, text: Callable[[int], str] = lambda i: f"Hello {i}") -> list[Envelope]:
    return [envelope(text(i), message_id=i, rcpt=f"+3712000{i:04d}") for i in range(n)]


def wait_for(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not come true in time")
        time.sleep(0.01)


@pytest.fixture
def smsc() -> Iterator[LoopbackSmsc]:
    with LoopbackSmsc() as s:
        yield s


@pytest.fixture
def connect() -> Iterator[Callable[..., SmppTransport]]:
    made: list[SmppTransport] = []

    def make(url: str, **kwargs: object) -> SmppTransport:
        transport = SmppTransport.from_url(url, **kwargs)  # type: ignore[arg-type]
        made.append(transport)
        return transport

    yield make
    for transport in made:
        transport.close()


# -- text on the wire ----------------------------------------------------------------------


def test_a_long_cyrillic_text_arrives_whole_as_two_ucs2_parts(smsc, connect) -> None:
    transport = connect(smsc.url())
    [outcome] = transport.send([envelope(CYRILLIC)])
    parts = smsc.accepted()
    assert [p.data_coding for p in parts] == [8, 8]
    assert [p.esm_class & 0x40 for p in parts] == [0x40, 0x40]
    assert [p.udh[1:] for p in parts] == [(2, 1), (2, 2)]
    assert parts[0].udh[0] == parts[1].udh[0]
    assert [len(p.body) // 2 for p in parts] == [67, len(CYRILLIC) - 67]
    assert smsc.accepted_texts() == [CYRILLIC]
    assert outcome == Outcome(result=Result.SENT, remote_ids=tuple(p.message_id for p in parts))


def test_ten_euro_sale_is_one_gsm7_part(smsc, connect) -> None:
    transport = connect(smsc.url(source="Shop"))
    assert transport.send([envelope("10€ [sale]")])[0].result is Result.SENT
    [part] = smsc.submits
    assert (part.data_coding, part.esm_class, part.udh, part.registered_delivery) == (0, 0, None, 1)
    assert part.short_message == bytes([0x31, 0x30, 0x1B, 0x65, 0x20, 0x1B, 0x3C, 0x73, 0x61, 0x6C, 0x65,
                                        0x1B, 0x3E])
    assert part.text == "10€ [sale]"
    assert (part.source_addr, part.source_addr_ton, part.source_addr_npi) == ("Shop", 5, 0)
    assert (part.destination_addr, part.dest_addr_ton, part.dest_addr_npi) == ("37120000001", 1, 1)


def test_a_number_sender_is_international(smsc, connect) -> None:
    connect(smsc.url(source="%2B4915112345678")).send([envelope("Hi")])
    assert [(s.source_addr, s.source_addr_ton, s.source_addr_npi) for s in smsc.submits] == [
        ("4915112345678", 1, 1)]


def test_sar_concatenation_puts_no_udh_in_the_text(smsc, connect) -> None:
    transport = connect(smsc.url(sar=1))
    assert transport.send([envelope("x" * 200)])[0].result is Result.SENT
    parts = smsc.accepted()
    assert [(p.esm_class, p.udh) for p in parts] == [(0, None), (0, None)]
    assert [p.sar[1:] for p in parts] == [(2, 1), (2, 2)] and parts[0].sar[0] == parts[1].sar[0]
    assert smsc.accepted_texts() == ["x" * 200]


def test_an_invalid_destination_is_rejected_without_a_submit(smsc, connect) -> None:
    outcomes = connect(smsc.url()).send([envelope("Hi", rcpt="020000"), envelope("Hi", 2)])
    assert outcomes[0].result is Result.REJECTED and "international form" in (outcomes[0].detail or "")
    assert outcomes[1].result is Result.SENT
    assert [s.destination_addr for s in smsc.submits] == ["37120000001"]


# -- answers of the SMSC -----------------------------------------------------------------------


def test_throttling_loses_and_repeats_nothing(smsc, connect) -> None:
    transport = connect(smsc.url(throttle_pause=0.05))
    smsc.answer_next(RTHROTTLED, 3)
    smsc.answer_next(0, 2)
    smsc.answer_next(RMSGQFUL, 2)
    messages = batch(6, lambda i: CYRILLIC if i % 2 else f"Sale {i}")
    outcomes = transport.send(messages)
    assert [o.result for o in outcomes] == [Result.SENT] * 6

    by_content: dict[bytes, list] = collections.defaultdict(list)
    for submit in smsc.submits:
        by_content[submit.raw].append(submit)
    assert len(by_content) == 9  # 3 short texts and 3 texts of 2 parts
    for content, tries in by_content.items():
        refused = [t for t in tries if t.status in (RTHROTTLED, RMSGQFUL)]
        assert len(tries) == len(refused) + 1, content  # each refusal repeated once, nothing more
        assert [t.status for t in tries][-1] == 0
        assert len({t.sequence for t in tries}) == 1  # the same submit, not a new message
    assert sum(len(t) - 1 for t in by_content.values()) == 5
    assert sorted(smsc.accepted_texts()) == sorted(m.data.decode() for m in messages)
    ids = [i for o in outcomes for i in o.remote_ids]
    assert sorted(ids) == sorted(s.message_id for s in smsc.accepted())


def test_a_throttled_bind_pauses_before_it_sends_again(smsc, connect) -> None:
    transport = connect(smsc.url(throttle_pause=0.3, window=1))
    smsc.answer_next(RTHROTTLED)
    assert [o.result for o in transport.send(batch(2))] == [Result.SENT, Result.SENT]
    first, retry, second = smsc.submits
    assert first.raw == retry.raw and first.status == RTHROTTLED
    assert retry.received_at - first.received_at >= 0.3
    assert second.received_at >= retry.received_at


def test_throttled_without_end_is_given_up_unsent(smsc, connect) -> None:
    transport = connect(smsc.url(throttle_pause=0.01, retries=2))
    smsc.answer_next(RTHROTTLED, 3)
    [outcome] = transport.send([envelope("Hi")])
    assert outcome.result is Result.DEFERRED
    assert "ESME_RTHROTTLED (0x58) 3 times" in (outcome.detail or "")
    assert len(smsc.submits) == 3 and smsc.accepted() == []


def test_a_message_whose_first_part_went_out_is_never_deferred(smsc, connect) -> None:
    transport = connect(smsc.url(throttle_pause=0.01, retries=1, window=1))
    smsc.answer_next(0)
    smsc.answer_next(RTHROTTLED, 2)
    [outcome] = transport.send([envelope(CYRILLIC)])
    assert outcome.result is Result.UNCERTAIN
    assert outcome.remote_ids == (smsc.accepted()[0].message_id,)
    assert "1 of 2 parts went out" in (outcome.detail or "")


def test_a_permanent_refusal_fails_that_message_only(smsc, connect) -> None:
    transport = connect(smsc.url(window=1))
    smsc.answer_next(RINVDSTADR)
    outcomes = transport.send(batch(3))
    refused = f"{transport.description} refused part 1 of 1: ESME_RINVDSTADR (0x0B)"
    assert outcomes[0] == Outcome(result=Result.REJECTED, code=0x0B, detail=refused)
    assert [o.result for o in outcomes[1:]] == [Result.SENT, Result.SENT]


# -- window and binds -----------------------------------------------------------------------


@pytest.mark.parametrize("window", [1, 10])
def test_the_window_bounds_the_submits_outstanding(window: int, connect) -> None:
    with LoopbackSmsc(response_delay=0.03) as smsc:
        transport = connect(smsc.url(window=window))
        assert {o.result for o in transport.send(batch(25))} == {Result.SENT}
        assert smsc.max_outstanding == window


def test_several_binds_share_a_batch(connect) -> None:
    with LoopbackSmsc(response_delay=0.02) as smsc:
        transport = connect(smsc.url(binds=2, window=3))
        assert {o.result for o in transport.send(batch(20))} == {Result.SENT}
        assert smsc.binds == [("trx", "tidings"), ("trx", "tidings")]
        assert {s.connection for s in smsc.submits} == {1, 2}
        assert smsc.max_outstanding == 3


def test_tx_rx_binds_a_transmitter_and_a_receiver(smsc, connect) -> None:
    receipts: list[sms.DeliveryReceipt] = []
    transport = connect(smsc.url(bind="tx_rx"), on_receipt=receipts.append)
    [outcome] = transport.send([envelope("Hi")])
    assert sorted(smsc.binds) == [("rx", "tidings"), ("tx", "tidings")]
    assert smsc.send_receipt(outcome.remote_ids[0]) == 0
    wait_for(lambda: len(receipts) == 1)
    assert receipts[0].remote_id == outcome.remote_ids[0]


# -- drops and outages -------------------------------------------------------------------------


def test_a_drop_mid_batch_leaves_the_outstanding_uncertain_and_rebinds(connect) -> None:
    with LoopbackSmsc(response_delay=0.2) as smsc:
        smsc.drop_at_submit = 5
        transport = connect(smsc.url(window=10))
        messages = batch(20)
        outcomes = transport.send(messages)
        # 1-4 were waiting for their answers and 5 was taken when the link broke
        assert [o.result for o in outcomes[:5]] == [Result.UNCERTAIN] * 5
        # the SMSC's close is seen on reading or, first, on the next write: either way it says so
        detail = outcomes[0].detail or ""
        assert ("closed the connection" in detail or "Broken pipe" in detail) and \
            "while part 1 of 1 waited for its answer" in detail, detail
        accepted = collections.Counter(s.destination_addr for s in smsc.accepted())
        for env, outcome in zip(messages, outcomes, strict=True):
            number = env.rcpt.removeprefix("+")
            assert accepted[number] == (1 if outcome.result is Result.SENT else 0), (env.rcpt, outcome)
        assert len(smsc.binds) == 2  # bound again within the batch for the rest
        later = transport.send(batch(3))
        assert [o.result for o in later] == [Result.SENT] * 3


def test_an_smsc_that_is_down_defers_without_waiting(connect) -> None:
    port = free_port()
    transport = connect(f"smpp://tidings:secret@127.0.0.1:{port}?source=Shop")
    started = time.monotonic()
    outcomes = transport.send(batch(3))
    assert time.monotonic() - started < 3
    assert [o.result for o in outcomes] == [Result.DEFERRED] * 3
    assert f"cannot connect to SMSC 127.0.0.1:{port}" in (outcomes[0].detail or "")


def test_a_refused_bind_defers_and_says_why(smsc, connect) -> None:
    transport = connect(smsc.url().replace(":secret@", ":wrong@"))
    [outcome] = transport.send([envelope("Hi")])
    assert outcome.result is Result.DEFERRED
    assert "refused the bind of 'tidings': ESME_RINVPASWD (0x0E)" in (outcome.detail or "")
    smsc.refuse_binds = RINVPASWD
    assert smsc.submits == []


def test_an_smsc_that_never_answers_the_bind_defers_after_the_timeout(connect) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True).start()
    try:
        transport = connect(f"smpp://tidings:secret@127.0.0.1:{listener.getsockname()[1]}"
                            "?source=Shop&timeout=0.2")
        started = time.monotonic()
        [outcome] = transport.send([envelope("Hi")])
        assert outcome.result is Result.DEFERRED
        assert "no answer to the bind within 0.2 s" in (outcome.detail or "")
        assert time.monotonic() - started < 3
    finally:
        listener.close()
        for s in accepted:
            s.close()


def test_a_submit_without_an_answer_is_uncertain_after_the_timeout(connect) -> None:
    with LoopbackSmsc(response_delay=3) as smsc:
        transport = connect(smsc.url(timeout=0.3))
        started = time.monotonic()
        [outcome] = transport.send([envelope("Hi")])
        assert outcome.result is Result.UNCERTAIN
        assert "did not answer a submit within 0.3 s" in (outcome.detail or "")
        assert time.monotonic() - started < 2


def test_a_dropped_bind_is_bound_again_between_batches(smsc, connect) -> None:
    transport = connect(smsc.url(enquire=0.2))
    transport.send([envelope("Hi")])
    smsc.drop()
    wait_for(lambda: len(smsc.binds) == 2 and len(smsc.bound()) == 1)
    assert transport.send([envelope("Again")])[0].result is Result.SENT


# -- from the SMSC ---------------------------------------------------------------------------


@pytest.mark.parametrize("id_form", ["hex", "HEX8", "decimal", "decimal10"])
def test_receipts_in_several_id_forms_reach_the_callback_matched(id_form: str, connect) -> None:
    receipts: list[sms.DeliveryReceipt] = []
    with LoopbackSmsc(id_form=id_form) as smsc:
        transport = connect(smsc.url(), on_receipt=receipts.append)
        outcomes = transport.send(batch(3))
        submitted = [o.remote_ids[0] for o in outcomes]
        n = [int(i, 16) if id_form.startswith(("hex", "HEX")) else int(i) for i in submitted]
        # the same ids written differently: as given, other padding and case, the other base
        smsc.send_receipt(submitted[0])
        smsc.send_receipt(f"{n[1]:012X}" if id_form.startswith(("hex", "HEX")) else f"{n[1]:016d}",
                          stat="UNDELIV", err="034", form="tlv")
        smsc.send_receipt(str(n[2]) if id_form.startswith(("hex", "HEX")) else format(n[2], "x"),
                          stat="EXPIRED", form="text-only")
        wait_for(lambda: len(receipts) == 3)
    states = [sms.ReceiptState.DELIVERED, sms.ReceiptState.UNDELIVERABLE, sms.ReceiptState.EXPIRED]
    for receipt, submit_id, other_ids, state in zip(
            receipts, submitted, [submitted[1:], [submitted[0], submitted[2]], submitted[:2]], states,
            strict=True):
        assert sms.message_ids_match(receipt.remote_id, submit_id)
        assert not any(sms.message_ids_match(receipt.remote_id, other) for other in other_ids)
        assert receipt.state is state


def test_a_receipt_keeps_its_error_and_time(smsc, connect) -> None:
    receipts: list[sms.DeliveryReceipt] = []
    transport = connect(smsc.url(), on_receipt=receipts.append)
    [outcome] = transport.send([envelope("Hi")])
    smsc.send_receipt(outcome.remote_ids[0], stat="UNDELIV", err="034", done="2611291231")
    wait_for(lambda: bool(receipts))
    assert receipts[0].error == "034"
    assert receipts[0].done_at is not None and receipts[0].done_at.isoformat() == "2026-11-29T12:31:00+00:00"


def test_an_inbound_stop_reaches_the_callback(smsc, connect) -> None:
    inbound: list[sms.InboundMessage] = []
    receipts: list[sms.DeliveryReceipt] = []
    transport = connect(smsc.url(), on_inbound=inbound.append, on_receipt=receipts.append)
    transport.start()
    smsc.wait_bound()
    assert smsc.send_inbound("STOP", source="37120000001") == 0
    assert smsc.send_inbound("Стоп 🙏", source="37120000002") == 0
    wait_for(lambda: len(inbound) == 2)
    assert inbound == [sms.InboundMessage(source="37120000001", destination="Shop", text="STOP"),
                       sms.InboundMessage(source="37120000002", destination="Shop", text="Стоп 🙏")]
    assert receipts == []


def test_inbound_concatenated_parts_are_joined(smsc, connect) -> None:
    inbound: list[sms.InboundMessage] = []
    transport = connect(smsc.url(), on_inbound=inbound.append)
    transport.start()
    smsc.wait_bound()
    text = "Пожалуйста, больше не присылайте мне сообщения. Спасибо! " * 2
    data = text.encode("utf-16-be")
    halves = [data[:134], data[134:]]
    for seq in (2, 1):  # out of order
        smsc.deliver(source="37120000003", destination="Shop", esm_class=0x40, data_coding=8,
                     short_message=bytes([5, 0, 3, 42, 2, seq]) + halves[seq - 1])
    smsc.send_data_sm(source="37120000004", destination="Shop", payload=b"STOP")
    wait_for(lambda: len(inbound) == 2)
    assert inbound == [sms.InboundMessage(source="37120000003", destination="Shop", text=text),
                       sms.InboundMessage(source="37120000004", destination="Shop", text="STOP")]


def test_a_failing_callback_does_not_stop_the_reader(smsc, connect) -> None:
    seen: list[str] = []

    def fails(message: sms.InboundMessage) -> None:
        seen.append(message.text)
        raise RuntimeError("the database is away")

    transport = connect(smsc.url(), on_inbound=fails)
    transport.start()
    smsc.wait_bound()
    assert smsc.send_inbound("one") == 0
    assert smsc.send_inbound("two") == 0
    wait_for(lambda: seen == ["one", "two"])
    assert transport.send([envelope("Hi")])[0].result is Result.SENT


def test_a_slow_callback_does_not_hold_up_the_answers_to_submits(smsc, connect) -> None:
    release = threading.Event()
    receipts: list[sms.DeliveryReceipt] = []

    def slow(receipt: sms.DeliveryReceipt) -> None:
        release.wait(5)
        receipts.append(receipt)

    transport = connect(smsc.url(timeout=0.5), on_receipt=slow)
    [first] = transport.send([envelope("Hi")])
    assert smsc.send_receipt(first.remote_ids[0]) == 0
    assert smsc.send_receipt(first.remote_ids[0], stat="EXPIRED") == 0
    time.sleep(0.6)  # the first callback is still waiting, longer than the answer timeout
    outcomes = transport.send(batch(3))
    assert [o.result for o in outcomes] == [Result.SENT] * 3
    release.set()
    wait_for(lambda: len(receipts) == 2)
    assert [r.state for r in receipts] == [sms.ReceiptState.DELIVERED, sms.ReceiptState.EXPIRED]


def test_enquire_link_is_answered_and_sent(smsc, connect) -> None:
    transport = connect(smsc.url(enquire=0.1))
    transport.start()
    smsc.wait_bound()
    assert smsc.send_enquire_link() == 0
    wait_for(lambda: smsc.enquire_links_received >= 2)


def test_close_unbinds(smsc, connect) -> None:
    transport = connect(smsc.url())
    transport.send([envelope("Hi")])
    transport.close()
    assert smsc.unbinds == 1
    wait_for(lambda: smsc.bound() == [])


# -- settings ---------------------------------------------------------------------------------


def test_the_factory_makes_the_smpp_transport(smsc) -> None:
    transport = make_sms_transport(smsc.url(window=4, binds=2, bind="tx_rx"), smtp_url="file://x",
                                   connections=8, timeout=12)
    assert isinstance(transport, SmppTransport)
    assert (transport.settings.window, transport.settings.binds, transport.settings.timeout) == (4, 2, 12)
    assert [s.name for s in transport.sessions] == ["tx1", "tx2", "rx1", "rx2"]
    transport.close()


def test_url_settings_and_their_defaults() -> None:
    s = SmppSettings.from_url("smpp://me:p%40ss@smsc.example:2776?source=Shop")
    assert (s.host, s.port, s.system_id, s.password, s.source.value, s.bind, s.window, s.binds, s.sar,
            s.enquire, s.timeout, s.connect_timeout, s.throttle_pause, s.retries) == (
        "smsc.example", 2776, "me", "p@ss", "Shop", "trx", 10, 1, False, 30.0, 30.0, 10.0, 1.0, 10)


@pytest.mark.parametrize(("url", "says"), [
    ("smpp://me:pw@host:2775", "add the sender"),
    ("smpp://me:pw@host:2775?source=VeryLongShopName", "at most 11"),
    ("smpp://me:pw@host:2775?source=Shop&window=0", "window must be between 1 and 1000"),
    ("smpp://me:pw@host:2775?source=Shop&bind=rx", "bind must be trx"),
    ("smpp://me:pw@host:2775?source=Shop&windows=3", "unknown setting 'windows'"),
    ("smpp://me:pw@host:2775?source=Shop&enquire=soon", "enquire must be a number"),
    ("smpp://:pw@host:2775?source=Shop", "system id"),
    ("smpp://me:ninechars@host:2775?source=Shop", "at most 8"),
])
def test_bad_urls_are_refused_naming_the_setting(url: str, says: str) -> None:
    with pytest.raises(InvalidInput, match=says) as raised:
        make_sms_transport(url, smtp_url="file://x", connections=1)
    assert raised.value.field == "TIDINGS_SMS_URL"
