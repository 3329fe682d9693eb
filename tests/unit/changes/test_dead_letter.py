"""Dead-letter headers name the error and the record's origin."""

from changes.dead_letter import HEADER_OFFSET, HEADER_SQLSTATE, MAX_MESSAGE_CHARS, DeadLetter


def test_headers_carry_error_and_origin_and_skip_unknowns() -> None:
    headers = dict(
        DeadLetter(
            "consume",
            "NotNullViolation",
            "null value",
            table="people",
            sqlstate="23502",
            topic="lakesync.people",
            partition=2,
            offset=41,
        ).headers()
    )
    assert headers[HEADER_SQLSTATE] == b"23502" and headers[HEADER_OFFSET] == b"41"
    assert "lakesync-dlq-source-version" not in headers


def test_long_messages_are_truncated() -> None:
    headers = dict(DeadLetter("stream", "x", "y" * 10_000).headers())
    assert len(headers["lakesync-dlq-message"]) == MAX_MESSAGE_CHARS
