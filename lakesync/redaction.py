"""What counts as a secret, and how it is masked wherever lakesync prints something.

A setting is secret when its name says so: it contains password, secret, key, token or
credential (any case, any separator: `sasl.password`, `fs.s3a.secret.key`, `sasl.oauthbearer.
client.secret`, `spark.ssl.keyPassword`). Matching on words is deliberately broad: masking a
harmless value such as `ssl.key.location` costs a little readability, printing a password
costs a rotation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "**********"

_SECRET_WORDS = re.compile(r"password|secret|key|token|credential", re.IGNORECASE)
# Shorter values are too likely to occur in ordinary text ("ok", "1") to be scrubbed from it.
_MIN_SCRUBBED_LENGTH = 4


def is_secret_name(name: str) -> bool:
    """True when a setting's name says it holds a secret."""
    return bool(_SECRET_WORDS.search(name))


def mask_mapping(values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy with the value of every secret-named key masked, at any depth."""
    return {key: MASK if is_secret_name(str(key)) else _mask_nested(value) for key, value in values.items()}


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of a known secret value replaced by the mask."""
    for secret in sorted(secrets, key=len, reverse=True):  # longest first: one may contain another
        if len(secret) >= _MIN_SCRUBBED_LENGTH and secret in text:
            text = text.replace(secret, MASK)
    return text


def _mask_nested(value: Any) -> Any:
    if isinstance(value, Mapping):
        return mask_mapping(value)
    if isinstance(value, list):
        return [_mask_nested(item) for item in value]
    return value
