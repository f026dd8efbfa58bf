"""Errors of the auth service.

::

    CloudError (edge_cloud.common.errors)
     └── AuthServiceError        has ``status`` (the HTTP status the API answers with)
          ├── NotAuthenticated    401: no credentials, or wrong ones
          ├── Forbidden           403: authenticated but not allowed (scope, disabled)
          ├── RateLimited         429: too many failed logins; ``retry_after`` seconds
          ├── NotFound            404
          ├── Conflict            409: the thing exists, or its state forbids the change
          ├── BadRequest          422: a request the service cannot use (bad CSR, bad id)
          ├── EnrollmentRefused   403: enrollment token unknown, used, expired or bound
          │                       to another device; renewal signature or certificate bad
          ├── BrokerSyncError     the broker files could not be written or the broker
          │                       not signalled (500; the database change stands and the
          │                       next change or restart reconciles)
          ├── StateInvalid        the durable state (database, CA, signing keys, broker
          │                       files) is missing, unreadable or inconsistent: the
          │                       service refuses to start (the CLI exits 78)
          └── StateUnavailable    the database cannot be reached yet (the CLI exits 75:
                                  try again later)

Token verification errors (``TokenInvalid``, ``ScopeMissing``) come from
``edge_cloud.common.errors`` and map to 401 / 403.
"""

from __future__ import annotations

from edge_cloud.common.errors import CloudError


class AuthServiceError(CloudError):
    status = 500


class NotAuthenticated(AuthServiceError):
    status = 401


class Forbidden(AuthServiceError):
    status = 403


class RateLimited(AuthServiceError):
    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotFound(AuthServiceError):
    status = 404


class Conflict(AuthServiceError):
    status = 409


class BadRequest(AuthServiceError):
    status = 422


class EnrollmentRefused(AuthServiceError):
    status = 403


class BrokerSyncError(AuthServiceError):
    status = 500


class StateInvalid(AuthServiceError):
    """One line naming the file (or database) and what is wrong; starting anyway could
    un-revoke devices or replace the CA, so the service refuses."""


class StateUnavailable(AuthServiceError):
    """Temporary: the database did not answer in time."""
