"""The local Segment endpoint, exercised over real HTTP on loopback.

The wire is segment-analytics-python's own `request.post`, so these tests also pin what the
library sends and how it reads our answers (APIError, parse_retry_after).
"""

from __future__ import annotations

import base64
import gzip
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
from segment.analytics.request import APIError, parse_retry_after, post

from segment_importer_local.segment_endpoint import (
    MAX_BATCH_MESSAGES,
    MAX_MESSAGE_BYTES,
    MAX_REQUEST_BYTES,
    Fault,
    FaultPlan,
    SegmentEndpoint,
    _raw_element_sizes,
)

WRITE_KEY = "test-write-key"


def track(n: int = 0, **extra: Any) -> dict[str, Any]:
    """A valid track message with a stable messageId."""
    message = {
        "type": "track",
        "userId": f"user-{n}",
        "event": "Order Completed",
        "messageId": f"msg-{n}",
        "timestamp": "2021-03-04T05:06:07.000Z",
        "properties": {"n": n},
    }
    message.update(extra)
    return message


@pytest.fixture
def endpoint() -> Iterator[SegmentEndpoint]:
    with SegmentEndpoint(WRITE_KEY) as ep:
        yield ep


def raw_post(
    url: str, body: bytes, *, headers: dict[str, str] | None = None, **kwargs: Any
) -> requests.Response:
    auth = base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    sent = {"Content-Type": "application/json", "Authorization": f"Basic {auth}", **(headers or {})}
    return requests.post(url, data=body, headers=sent, timeout=5, **kwargs)


def wait_for(predicate: Any, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


# ---- accepting -----------------------------------------------------------------------------


def test_accepts_a_valid_batch_and_merges_batch_level_fields(endpoint: SegmentEndpoint) -> None:
    batch = [
        track(1, context={"ip": "10.0.0.1"}),
        track(2, integrations={"All": False}),
    ]
    response = post(
        WRITE_KEY,
        host=endpoint.url,
        batch=batch,
        context={"library": {"name": "importer"}, "ip": "0.0.0.0"},
        integrations={"All": True, "Vero": True},
    )

    assert response.status_code == 200
    assert response.json() == {"success": True}
    first, second = endpoint.accepted
    assert first["messageId"] == "msg-1"
    assert first["context"] == {"library": {"name": "importer"}, "ip": "10.0.0.1"}  # message wins
    assert second["integrations"] == {"All": False, "Vero": True}
    assert first["receivedAt"].endswith("Z")
    assert first["receivedAt"][:4] >= "2024"
    assert set(endpoint.by_message_id) == {"msg-1", "msg-2"}
    stats = endpoint.stats()
    assert stats["requests"] == 1
    assert stats["batches_accepted"] == 1
    assert stats["messages_accepted"] == 2
    assert stats["max_batch_messages"] == 2
    assert stats["max_request_bytes"] > 0
    assert stats["warnings"] == {}


def test_single_call_endpoint_takes_the_type_from_the_path(endpoint: SegmentEndpoint) -> None:
    body = {
        "userId": "u1",
        "traits": {"plan": "pro"},
        "messageId": "id-1",
        "timestamp": "2020-01-01T00:00:00Z",
    }
    response = raw_post(f"{endpoint.url}/v1/identify", orjson.dumps(body))

    assert response.status_code == 200
    (stored,) = endpoint.accepted
    assert stored["type"] == "identify"
    assert stored["traits"] == {"plan": "pro"}


def test_gzip_body_is_decompressed(endpoint: SegmentEndpoint) -> None:
    post(WRITE_KEY, host=endpoint.url, gzip=True, batch=[track(1), track(2), track(3)])

    assert [m["messageId"] for m in endpoint.accepted] == ["msg-1", "msg-2", "msg-3"]


def test_write_key_in_the_body_alone_is_enough(endpoint: SegmentEndpoint) -> None:
    body = orjson.dumps({"batch": [track(1)], "writeKey": WRITE_KEY})
    response = requests.post(
        f"{endpoint.url}/v1/batch", data=body, headers={"Content-Type": "application/json"}, timeout=5
    )

    assert response.status_code == 200
    assert len(endpoint.accepted) == 1


def test_keep_alive_reuses_one_connection(endpoint: SegmentEndpoint) -> None:
    with requests.Session() as session:
        for n in range(3):
            body = orjson.dumps({"batch": [track(n)], "writeKey": WRITE_KEY})
            response = session.post(
                f"{endpoint.url}/v1/batch", data=body, headers={"Content-Type": "application/json"}, timeout=5
            )
            assert response.status_code == 200

    assert endpoint.stats()["connections"] == 1
    assert endpoint.stats()["requests"] == 3


# ---- request-level rejections ---------------------------------------------------------------


def test_wrong_write_key_is_401_and_counted(endpoint: SegmentEndpoint) -> None:
    with pytest.raises(APIError) as caught:
        post("some-other-key", host=endpoint.url, batch=[track(1)])

    assert caught.value.status == 401
    assert caught.value.code == "invalid_write_key"
    assert endpoint.accepted == []
    assert endpoint.stats()["rejected_requests"] == {401: 1}


def test_missing_write_key_is_401(endpoint: SegmentEndpoint) -> None:
    response = requests.post(
        f"{endpoint.url}/v1/batch",
        data=orjson.dumps({"batch": [track(1)]}),
        headers={"Content-Type": "application/json"},
        timeout=5,
    )

    assert response.status_code == 401
    assert response.json()["code"] == "missing_write_key"
    assert endpoint.accepted == []


def test_accept_any_write_key_still_needs_one() -> None:
    with SegmentEndpoint(WRITE_KEY, accept_any_write_key=True) as ep:
        post("anything", host=ep.url, batch=[track(1)])
        assert len(ep.accepted) == 1


def test_request_over_500_kb_is_400_and_nothing_is_stored(endpoint: SegmentEndpoint) -> None:
    batch = [track(n, properties={"pad": "x" * 30_000}) for n in range(18)]  # ~540 KB, each < 32 KB
    assert len(json.dumps({"batch": batch})) > MAX_REQUEST_BYTES

    with pytest.raises(APIError) as caught:
        post(WRITE_KEY, host=endpoint.url, batch=batch)

    assert caught.value.status == 400
    assert caught.value.code == "request_too_large"
    assert endpoint.accepted == []
    assert endpoint.stats()["max_request_bytes"] > MAX_REQUEST_BYTES


def test_message_over_32_kb_is_400_and_its_batch_mates_are_not_stored(endpoint: SegmentEndpoint) -> None:
    batch = [track(1), track(2, properties={"pad": "x" * MAX_MESSAGE_BYTES})]

    with pytest.raises(APIError) as caught:
        post(WRITE_KEY, host=endpoint.url, batch=batch)

    assert caught.value.status == 400
    assert caught.value.code == "message_too_large"
    assert "message 1" in caught.value.message
    assert endpoint.accepted == []
    assert endpoint.stats()["rejected_requests"] == {400: 1}


def test_message_size_is_measured_on_the_bytes_received() -> None:
    messages = [track(1, properties={"name": "Zoë ✓", "pad": "y" * 100}), track(2), []]
    for dumps in (json.dumps, lambda doc: json.dumps(doc, ensure_ascii=False, indent=2)):
        text = dumps({"sentAt": "x", "batch": messages, "context": {"a": [1, {"b": 2}]}})
        expected = [len(dumps(m).encode()) for m in messages] if dumps is json.dumps else None
        sizes = _raw_element_sizes(text)
        assert sizes is not None
        assert len(sizes) == 3
        if expected is not None:
            assert sizes == expected


@pytest.mark.parametrize(
    ("body", "headers", "code"),
    [
        (b"{not json", {}, "invalid_json"),
        (b'{"batch": [], "writeKey": NaN}', {}, "invalid_json"),
        (b'{"batch": {}}', {}, "invalid_request"),
        (b"[1, 2]", {}, "invalid_request"),
        (b'{"batch": []}', {"Content-Type": "text/plain"}, "invalid_content_type"),
        (b'{"batch": []}', {"Content-Type": "application/json; charset=latin-1"}, "invalid_content_type"),
        (b'{"batch": []}', {"Content-Encoding": "br"}, "unsupported_content_encoding"),
        (b'{"batch": []}', {"Content-Encoding": "gzip"}, "invalid_gzip"),
    ],
)
def test_malformed_requests_are_400(
    endpoint: SegmentEndpoint, body: bytes, headers: dict[str, str], code: str
) -> None:
    response = raw_post(f"{endpoint.url}/v1/batch", body, headers=headers)

    assert response.status_code == 400
    assert response.json()["code"] == code


def test_charset_utf8_is_allowed(endpoint: SegmentEndpoint) -> None:
    body = orjson.dumps({"batch": [track(1)]})
    response = raw_post(
        f"{endpoint.url}/v1/batch", body, headers={"Content-Type": "application/json; charset=UTF-8"}
    )

    assert response.status_code == 200


def test_gzip_bomb_is_refused(endpoint: SegmentEndpoint) -> None:
    bomb = gzip.compress(b"[" + b" " * (6 * 1024 * 1024) + b"]")
    response = raw_post(f"{endpoint.url}/v1/batch", bomb, headers={"Content-Encoding": "gzip"})

    assert response.status_code == 400
    assert response.json()["code"] == "request_too_large"


def test_unknown_paths_and_methods_are_404(endpoint: SegmentEndpoint) -> None:
    assert raw_post(f"{endpoint.url}/v1/import", b"{}").status_code == 404
    assert raw_post(f"{endpoint.url}/v1/batch/", b"{}").status_code == 404
    assert requests.get(f"{endpoint.url}/v1/batch", timeout=5).status_code == 404
    assert endpoint.stats()["rejected_requests"] == {404: 3}


# ---- per-message rules ----------------------------------------------------------------------


def test_over_2500_messages_is_200_and_all_are_dropped(endpoint: SegmentEndpoint) -> None:
    batch = [{"type": "track", "userId": "u", "event": "e", "messageId": str(n)} for n in range(2501)]

    response = post(WRITE_KEY, host=endpoint.url, batch=batch)

    assert response.status_code == 200
    assert endpoint.accepted == []
    stats = endpoint.stats()
    assert stats["dropped"] == {"batch_too_many_messages": MAX_BATCH_MESSAGES + 1}
    assert stats["max_batch_messages"] == MAX_BATCH_MESSAGES + 1
    assert stats["batches_accepted"] == 0


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ({"type": "track", "event": "E"}, "missing_user"),
        ({"type": "track", "userId": "", "anonymousId": "  ", "event": "E"}, "missing_user"),
        ({"type": "track", "userId": True, "event": "E"}, "invalid_field"),
        ({"type": "track", "userId": "u"}, "missing_event"),
        ({"type": "group", "userId": "u"}, "missing_group_id"),
        ({"type": "alias", "userId": "u"}, "missing_previous_id"),
        ({"type": "alias", "anonymousId": "a", "previousId": "p"}, "missing_user_id"),
        ({"type": "purchase", "userId": "u"}, "unknown_type"),
        ({"userId": "u", "event": "E"}, "unknown_type"),
        ({"type": "track", "userId": "u", "event": "E", "timestamp": "yesterday"}, "invalid_timestamp"),
        ({"type": "track", "userId": "u", "event": "E", "timestamp": 1614834367}, "invalid_timestamp"),
        ({"type": "track", "userId": "u", "event": "E", "messageId": "m" * 100}, "invalid_message_id"),
        ({"type": "track", "userId": "u", "event": "E", "messageId": 7}, "invalid_message_id"),
        ({"type": "track", "userId": "u", "event": "E", "properties": []}, "invalid_field"),
        ("not an object", "not_an_object"),
    ],
)
def test_invalid_messages_are_dropped_and_valid_batch_mates_kept(
    endpoint: SegmentEndpoint, message: Any, reason: str
) -> None:
    response = post(WRITE_KEY, host=endpoint.url, batch=[track(1), message, track(2)])

    assert response.status_code == 200  # like Segment: a 200 proves little
    assert [m["messageId"] for m in endpoint.accepted] == ["msg-1", "msg-2"]
    assert endpoint.stats()["dropped"] == {reason: 1}
    (dropped,) = endpoint.dropped
    assert dropped["reason"] == reason
    assert dropped["message"] == message


def test_numeric_ids_and_anonymous_only_messages_are_valid(endpoint: SegmentEndpoint) -> None:
    batch = [
        {"type": "identify", "userId": 42, "messageId": "a", "timestamp": "2020-01-01T00:00:00+02:00"},
        {"type": "page", "anonymousId": "anon", "messageId": "b", "timestamp": "2020-01-01T00:00:00Z"},
        {
            "type": "alias",
            "userId": "new",
            "previousId": 7,
            "messageId": "c",
            "timestamp": "2020-01-01T00:00Z",
        },
    ]
    post(WRITE_KEY, host=endpoint.url, batch=batch)

    assert len(endpoint.accepted) == 3
    assert endpoint.stats()["dropped"] == {}


def test_archive_fields_and_missing_timestamps_are_warned_about_but_accepted(
    endpoint: SegmentEndpoint,
) -> None:
    archived = track(
        1, projectId="p", receivedAt="2019-01-01T00:00:00Z", version=2, sentAt="2019-01-01", writeKey="old"
    )
    undated = track(2)
    del undated["timestamp"]
    naive = track(3, timestamp="2021-03-04T05:06:07")
    anonymous = track(4)
    del anonymous["messageId"]

    post(WRITE_KEY, host=endpoint.url, batch=[archived, undated, naive, anonymous])

    assert len(endpoint.accepted) == 4
    assert endpoint.stats()["warnings"] == {
        "archive_field:projectId": 1,
        "archive_field:receivedAt": 1,
        "archive_field:version": 1,
        "archive_field:sentAt": 1,
        "archive_field:writeKey": 1,
        "missing_timestamp": 1,
        "timestamp_without_offset": 1,
        "missing_message_id": 1,
    }
    assert endpoint.accepted[0]["receivedAt"] != "2019-01-01T00:00:00Z"  # the server's own


def test_duplicate_message_ids_are_stored_once(endpoint: SegmentEndpoint) -> None:
    post(WRITE_KEY, host=endpoint.url, batch=[track(1), track(1), track(2)])
    post(WRITE_KEY, host=endpoint.url, batch=[track(2), track(3)])

    assert [m["messageId"] for m in endpoint.accepted] == ["msg-1", "msg-2", "msg-3"]
    assert endpoint.stats()["duplicates"] == 2
    assert endpoint.stats()["messages_accepted"] == 3


def test_reset_forgets_everything(endpoint: SegmentEndpoint) -> None:
    post(WRITE_KEY, host=endpoint.url, batch=[track(1)])
    endpoint.reset()

    assert endpoint.accepted == []
    assert endpoint.stats()["requests"] == 0
    post(WRITE_KEY, host=endpoint.url, batch=[track(1)])  # not a duplicate any more
    assert len(endpoint.accepted) == 1


# ---- faults ---------------------------------------------------------------------------------


def test_scripted_500_then_ok() -> None:
    with SegmentEndpoint(WRITE_KEY, faults=FaultPlan.script([500])) as ep:
        with pytest.raises(APIError) as caught:
            post(WRITE_KEY, host=ep.url, batch=[track(1)])
        assert caught.value.status == 500
        assert ep.accepted == []

        post(WRITE_KEY, host=ep.url, batch=[track(1)])
        assert len(ep.accepted) == 1
        assert ep.stats()["faults"] == {"status": 1}
        assert ep.stats()["rejected_requests"] == {}  # injected faults are counted apart


def test_rate_limit_carries_retry_after() -> None:
    with SegmentEndpoint(WRITE_KEY, faults=FaultPlan.script([Fault.rate_limit(retry_after=7)])) as ep:
        with pytest.raises(APIError) as caught:
            post(WRITE_KEY, host=ep.url, batch=[track(1)])

        assert caught.value.status == 429
        assert parse_retry_after(caught.value.response) == 7
        assert caught.value.response.headers["X-RateLimit-Reset"] == "7"
        assert ep.accepted == []
        assert ep.stats()["faults"] == {"rate_limit": 1}


def test_reset_raises_a_connection_error_in_the_client() -> None:
    with SegmentEndpoint(WRITE_KEY, faults=FaultPlan.script(["reset"])) as ep:
        with pytest.raises(requests.exceptions.ConnectionError):
            post(WRITE_KEY, host=ep.url, batch=[track(1)])
        assert ep.accepted == []

        post(WRITE_KEY, host=ep.url, batch=[track(1)])  # the next request gets a fresh connection
        assert len(ep.accepted) == 1


def test_stall_trips_the_client_timeout_but_the_messages_still_arrive() -> None:
    # Counts, not seconds: the client has given up while the server still holds the request
    # (nothing stored yet), and the server stores it when its stall ends.
    with SegmentEndpoint(WRITE_KEY, faults=FaultPlan.script([Fault.stall(3.0)])) as ep:
        with pytest.raises(requests.exceptions.Timeout):
            post(WRITE_KEY, host=ep.url, timeout=0.1, batch=[track(1)])

        assert ep.accepted == []
        assert wait_for(lambda: len(ep.accepted) == 1, timeout=30)  # stored after the client gave up
        assert ep.stats()["faults"] == {"stall": 1}


def test_stop_does_not_wait_out_a_stall() -> None:
    ep = SegmentEndpoint(WRITE_KEY, faults=FaultPlan.script([Fault.stall(3600)])).start()
    with pytest.raises(requests.exceptions.Timeout):
        post(WRITE_KEY, host=ep.url, timeout=0.1, batch=[track(1)])
    ep.stop()
    # The request was held in its (hour-long) stall when stop() ran: had stop() waited it out,
    # the suite's per-test timeout would fail this test. No seconds are asserted here.
    assert ep.stats()["faults"] == {"stall": 1}


def test_accept_then_fail_stores_then_answers_500_and_redelivery_is_deduped() -> None:
    with SegmentEndpoint(WRITE_KEY, faults=FaultPlan.script(["accept_then_fail"])) as ep:
        with pytest.raises(APIError) as caught:
            post(WRITE_KEY, host=ep.url, batch=[track(1)])
        assert caught.value.status == 500
        assert [m["messageId"] for m in ep.accepted] == ["msg-1"]

        post(WRITE_KEY, host=ep.url, batch=[track(1)])  # the sender retries
        assert len(ep.accepted) == 1
        assert ep.stats()["duplicates"] == 1
        assert ep.stats()["faults"] == {"accept_then_fail": 1}


def outcomes(plan: FaultPlan, n: int) -> list[str]:
    """Send n one-message batches; what the client saw for each."""
    seen = []
    with SegmentEndpoint(WRITE_KEY, faults=plan) as ep:
        for i in range(n):
            try:
                post(WRITE_KEY, host=ep.url, timeout=2, batch=[track(i)])
                seen.append("200")
            except APIError as exc:
                seen.append(str(exc.status))
            except requests.exceptions.ConnectionError:
                seen.append("reset")
    return seen


def test_random_plan_is_reproducible_for_a_seed() -> None:
    rates = {"status": 0.2, "rate_limit": 0.1, "reset": 0.1, "accept_then_fail": 0.1}

    first = outcomes(FaultPlan.random(7, rates), 40)
    second = outcomes(FaultPlan.random(7, rates), 40)

    assert first == second
    assert {"200", "429", "reset"} <= set(first)
    assert {"500", "502", "503"} & set(first)
    kinds = [f.kind for f in _decisions(FaultPlan.random(8, rates), 200)]
    assert kinds == [f.kind for f in _decisions(FaultPlan.random(8, rates), 200)]
    assert kinds != [f.kind for f in _decisions(FaultPlan.random(9, rates), 200)]


def _decisions(plan: FaultPlan, n: int) -> list[Fault]:
    for _ in range(n):
        plan.next_fault()
    return plan.decided


def test_fault_plans_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="unknown fault kinds"):
        FaultPlan.random(1, {"teapot": 0.5})
    with pytest.raises(ValueError, match="sum to at most 1"):
        FaultPlan.random(1, {"status": 0.7, "reset": 0.7})
    with pytest.raises(ValueError, match="unknown fault kind"):
        FaultPlan.script(["explode"])


# ---- output, lifecycle ----------------------------------------------------------------------


def test_output_path_gets_one_ndjson_line_per_accepted_message(tmp_path: Path) -> None:
    out = tmp_path / "arrived.ndjson"
    with SegmentEndpoint(WRITE_KEY, output_path=out) as ep:
        post(WRITE_KEY, host=ep.url, batch=[track(1), track(2), {"type": "track"}])
        post(WRITE_KEY, host=ep.url, batch=[track(2), track(3)])
        lines = out.read_bytes().splitlines()  # readable while running: flushed per request

    assert [orjson.loads(line)["messageId"] for line in lines] == ["msg-1", "msg-2", "msg-3"]
    assert all("receivedAt" in orjson.loads(line) for line in lines)


def test_only_loopback_hosts_are_allowed() -> None:
    for host in ("0.0.0.0", "192.168.1.5", "api.segment.io", "::1"):
        with pytest.raises(ValueError, match="loopback"):
            SegmentEndpoint(WRITE_KEY, host=host)


def test_url_and_quiet_handler(capfd: pytest.CaptureFixture[str]) -> None:
    ep = SegmentEndpoint(WRITE_KEY)
    with pytest.raises(RuntimeError):
        _ = ep.url
    with ep:
        assert ep.url.startswith("http://127.0.0.1:")
        assert not ep.url.endswith("/")
        with pytest.raises(APIError):
            post("wrong", host=ep.url, batch=[track(1, properties={"secret": "s3cr3t"})])
        raw_post(f"{ep.url}/v1/batch", b"{oops")
    captured = capfd.readouterr()
    assert captured.out == ""
    assert captured.err == ""
    ep.stop()  # idempotent


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (a device that is always full)")
def test_a_batch_the_received_file_cannot_hold_is_a_500_with_nothing_remembered() -> None:
    """Fault QA 3: with --out on a full disk the endpoint counted the messageIds, then failed
    to write them and dropped the connection; the sender's retry was absorbed as a duplicate,
    and the run said OK with the messages in no file."""
    body = json.dumps({"batch": [track(1), track(2)]}).encode()
    with SegmentEndpoint(WRITE_KEY, output_path="/dev/full") as full:
        answers = [raw_post(full.url + "/v1/batch", body) for _ in range(2)]
        stats = full.stats()
    assert [a.status_code for a in answers] == [500, 500]  # retried, and refused again: not absorbed
    assert answers[0].json()["code"] == "storage_failed"
    assert (stats["messages_accepted"], stats["duplicates"], stats["batches_accepted"]) == (0, 0, 0)
