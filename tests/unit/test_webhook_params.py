"""What the webhook action works out of its params once: the URL's origin and whether it is
usable, the user's headers, the secrets and the timeout."""

from __future__ import annotations

import gc
from datetime import timedelta

from pydantic import SecretStr

from actions.webhook import Params, _fixed

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_the_same_params_object_is_worked_out_once() -> None:
    params = Params(url="https://user:pw@example.com:8443/hooks/T0123/B0456", secret=SECRET)
    first = _fixed(params)
    assert _fixed(params) is first
    assert first.refused is None
    assert first.target == "https://example.com:8443"
    assert first.secrets == [SECRET]
    assert first.timeout.total == 15


def test_equal_params_are_each_their_own_and_a_reused_id_is_no_hit() -> None:
    one = Params(url="https://a.example/x", secret=SECRET, headers={"x-a": "1"})
    two = Params(url="https://b.example/x", secret=SECRET, timeout=timedelta(seconds=3))
    assert _fixed(one).target == "https://a.example"
    assert _fixed(one).headers == {"x-a": "1"}
    assert _fixed(two).target == "https://b.example"
    assert _fixed(two).timeout.total == 3
    del one
    gc.collect()
    # Whatever object gets the old id next, its own URL is what it is worked out from.
    for n in range(50):
        other = Params(url=f"https://c{n}.example/x", secret=SECRET)
        assert _fixed(other).target == f"https://c{n}.example"


def test_a_rendered_url_that_is_no_http_url_is_refused_naming_only_its_scheme() -> None:
    params = Params.model_construct(
        url="ftp://secret@host/x",
        secret=SecretStr(SECRET),
        headers={},
        timeout=timedelta(seconds=15),
    )
    fixed = _fixed(params)
    assert fixed.refused is not None
    assert "'ftp'" in fixed.refused and "secret" not in fixed.refused
