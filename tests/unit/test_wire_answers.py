"""The real BatchPoster against a real loopback host answering as QA's stand-ins did: a 2xx
counts as delivered only when it is Segment's acceptance; 3xx is not followed; 413 is reported
as 413; a host that never answers costs a bounded number of tries, each bounded in time."""

from __future__ import annotations

import logging
import time

import pytest

from segment_importer.deliver import segment_client
from segment_importer.deliver.segment_client import BatchPoster, DeliveryFailed, SegmentTarget
from segment_importer.deliver.wire import ANY_2XX
from tests.standin_host import SEGMENT_OK, StandinHost, always

from ..conftest import WRITE_KEY

HTML = b"<!DOCTYPE html><html><body><form>Sign in to the Wi-Fi</form></body></html>"


def _messages(count: int) -> list[dict]:
    return [
        {"type": "track", "userId": f"u-{i}", "event": "Viewed", "messageId": f"m-{i}"} for i in range(count)
    ]


def _poster(host: StandinHost, **target: object) -> BatchPoster:
    options = {"write_key": WRITE_KEY, "host": host.url, "timeout_seconds": 5.0, **target}
    return BatchPoster(SegmentTarget(**options), sleep=lambda _: None)


def _deliver(poster: BatchPoster, count: int = 3) -> segment_client.Delivery:
    return poster.deliver(_messages(count), deadline=time.monotonic() + 60)


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (always(200, b'{"success": false}'), "success is false"),
        (always(200, HTML, "text/html; charset=utf-8"), "the body is HTML"),
        (always(200, b"<html><body>It works!</body></html>", "text/plain"), "the body is HTML"),
        (always(200, b"accepted, thanks", "text/plain"), "the body is not JSON"),
        (always(200, b'{"ok": true}'), "JSON without success: true"),
        (always(200, b"[]"), "JSON without success: true"),
        (always(200, b'{"success": "yes"}'), "success is not true"),
        (always(200), "the body is empty"),
        (always(204), "the body is empty"),
    ],
)
def test_a_2xx_that_is_not_segments_acceptance_fails_the_batch_at_once(answer, says: str) -> None:
    with StandinHost(answer) as host:
        with pytest.raises(DeliveryFailed, match="but not as Segment does") as failed:
            _deliver(_poster(host))
        posts = host.posts

    assert says in str(failed.value)
    assert posts == 1  # not retried: a misconfigured host answers the same again
    assert "Wi-Fi" not in str(failed.value)  # the answer's text is not ours to repeat


@pytest.mark.parametrize(
    "answer",
    [
        lambda _host: SEGMENT_OK,
        always(200, b'{"success":true}'),
        always(200, b"OK", "text/plain; charset=utf-8"),  # RudderStack's gateway on /v1/batch
    ],
)
def test_segments_and_rudderstacks_acceptances_count_as_delivered(answer) -> None:
    with StandinHost(answer) as host:
        delivery = _deliver(_poster(host), 3)

    assert delivery.delivered == 3
    assert delivery.attempts == 1


@pytest.mark.parametrize("status", [200, 204])
def test_any_2xx_is_the_escape_hatch_for_endpoints_that_answer_otherwise(status: int) -> None:
    with StandinHost(always(status)) as host:
        delivery = _deliver(_poster(host, accepted_answers=ANY_2XX), 4)

    assert delivery.delivered == 4


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_not_followed_and_names_where_it_points(status: int) -> None:
    """requests turned a redirected POST into a GET of the Location, which answered 200: the
    batch counted delivered with nothing received. Here the target would answer 200 too."""

    def redirect(host: StandinHost) -> tuple[int, dict[str, str], bytes]:
        return status, {"Location": f"{host.url}/moved/v1/batch?token=secret"}, b""

    with StandinHost(redirect) as host:
        with pytest.raises(DeliveryFailed) as failed:
            _deliver(_poster(host))
        posts, gets, url = host.posts, host.gets, host.url

    text = str(failed.value)
    assert f"HTTP {status}: the host redirects: use the final URL (Location: {url})" in text
    assert "secret" not in text  # scheme and host only
    assert "/moved" not in text
    assert (posts, gets) == (1, 0)  # not retried, and the Location never fetched


def test_a_relative_location_is_named_by_the_host_it_resolves_to() -> None:
    with (
        StandinHost(always(302, Location="/login")) as host,
        pytest.raises(DeliveryFailed, match=r"Location: http://127\.0\.0\.1:\d+\)"),
    ):
        _deliver(_poster(host))


def test_413_is_a_refusal_with_its_own_status_not_400() -> None:
    with StandinHost(always(413, b"<html>Request Entity Too Large</html>", "text/html")) as host:
        delivery = _deliver(_poster(host), 1)

    assert delivery.delivered == 0
    assert len(delivery.rejected) == 1
    assert delivery.rejected_status == [413]
    assert delivery.refused_by_status() == {413: 1}


def test_a_host_that_never_answers_gets_a_bounded_number_of_tries(caplog) -> None:
    caplog.set_level(logging.INFO, logger=segment_client.__name__)
    with StandinHost(lambda _host: None) as host:
        poster = _poster(host, timeout_seconds=0.2, max_attempts=3)
        with pytest.raises(DeliveryFailed) as failed:
            poster.deliver(_messages(2), deadline=time.monotonic() + 600)
        posts = host.posts

    assert posts == 3
    assert "gave up after 3 attempts" in str(failed.value)
    assert "no answer within 0.2 s" in str(failed.value)
    retries = [record for record in caplog.records if record.msg == segment_client.RETRY_MESSAGE]
    assert [record.attempt for record in retries] == [2, 3]
    assert all(record.host == host.url for record in retries)
    assert all(isinstance(record.next_try_seconds, float) for record in retries)


def test_a_host_that_refuses_every_message_one_by_one_fails_the_batch_instead_of_rejecting_it() -> None:
    """A host that cannot read the body (gzip, say) answers 400 to every request: isolating
    put all the (validated) messages in the rejects, and the import lost them for good."""
    refusal = always(400, b'{"code": "invalid_json", "message": "body is not valid JSON"}')
    with StandinHost(refusal) as host:
        with pytest.raises(
            DeliveryFailed, match=r"refused every message of the batch, one by one too \(HTTP 400\)"
        ):
            _deliver(_poster(host, gzip=True), 8)
        posts = host.posts

    assert posts <= 1 + segment_client.MAX_ISOLATION_POSTS


def test_a_connection_broken_mid_answer_is_said_in_words() -> None:
    def cut(_host: StandinHost) -> tuple[int, dict[str, str], bytes]:
        headers = {"Content-Type": "application/json", "Content-Length": "100", "Connection": "close"}
        return 200, headers, b'{"succ'

    with StandinHost(cut) as host, pytest.raises(DeliveryFailed, match="gave up after 2 attempts") as failed:
        _deliver(_poster(host, timeout_seconds=5, max_attempts=2))

    assert "the connection broke in the middle of the answer" in str(failed.value)
    assert "Error" not in str(failed.value)  # not an exception's class name
