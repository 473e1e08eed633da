"""How a model's failure reaches a client: UNAVAILABLE or DEADLINE_EXCEEDED, never internals.

Messages are safe to show: they name the provider, never its URL, key or response body.
"""

from __future__ import annotations

from medstation_platform.errors import DeadlineExceeded, Unavailable


class ModelUnavailable(Unavailable):
    """The provider could not be reached, or kept failing (5xx, 429) after the retries."""

    reason = "MODEL_UNAVAILABLE"
    default_message = "the language model is unavailable; retry later"


class ModelTimeout(DeadlineExceeded):
    """The provider did not answer within the request's budget."""

    reason = "MODEL_TIMEOUT"
    default_message = "the language model did not answer in time"


class ModelRejected(Unavailable):
    """The provider refused the request (bad key, unknown model, malformed request).

    A configuration fault on our side that the client cannot fix, so it is not a 4xx.
    """

    reason = "MODEL_REJECTED"
    default_message = "the language model rejected the request"


class ModelNotConfigured(Unavailable):
    """A provider was asked for that this deployment has no endpoint or key for."""

    reason = "MODEL_NOT_CONFIGURED"
    default_message = "this language model provider is not configured"
