"""``POST /v1/enroll`` (token + CSR → certificate) and ``POST /v1/devices/{id}/renew``.

Neither takes a bearer token: enrollment is authenticated by the enrollment token,
renewal by a signature with the device's current key (see ``edge_cloud.auth.enrollment``).
Failed attempts count against the client address like failed logins, and are audited
(``enrollment.refused``, ``renewal.refused``).  A re-enrollment cuts the session of
whoever still holds the device's old identity before it answers.
"""

from __future__ import annotations

import base64
import binascii

from fastapi import APIRouter

from edge_cloud.auth import enrollment, revocation
from edge_cloud.auth.api.deps import AddressDep, ServiceDep
from edge_cloud.auth.api.routes.devices import DeviceIdPath
from edge_cloud.auth.api.schemas import Broker, Enrolled, EnrollRequest, Problem, RenewRequest
from edge_cloud.auth.enrollment import Issued
from edge_cloud.auth.errors import BadRequest, EnrollmentRefused, NotFound
from edge_cloud.auth.service import AuthService

router = APIRouter(
    tags=["enrollment"],
    responses={403: {"model": Problem}, 422: {"model": Problem}, 429: {"model": Problem}},
)


def _response(service: AuthService, issued: Issued) -> Enrolled:
    b = service.settings.broker
    return Enrolled(
        device_id=issued.device_id,
        certificate=issued.certificate,
        certificate_not_after=issued.not_after,
        ca_certificate=service.ca.cert_pem,
        password=issued.password,
        broker=Broker(host=b.host, port=b.port, password_port=b.password_port),
    )


@router.post("/v1/enroll", response_model=Enrolled)
def enroll(body: EnrollRequest, service: ServiceDep, address: AddressDep) -> Enrolled:
    """Enroll with a one-time device token or a batch claim token."""
    if body.mode == "cert" and body.csr is None:
        raise BadRequest("cert mode needs a csr (PEM); use mode=password for a broker password instead")
    if body.mode == "password" and body.csr is not None:
        raise BadRequest("password mode takes no csr")
    if body.mode == "password" and service.settings.broker.password_port is None:
        raise BadRequest("password mode is off on this service (broker.password_port is not set)")
    try:
        with service.limiter.guard(address, EnrollmentRefused), service.transaction() as conn:
            issued = enrollment.enroll(
                conn,
                service.ca,
                token=body.token,
                device_id=body.device_id,
                csr_pem=body.csr,
                now=service.now(),
                lifetime=service.settings.certificates.device_lifetime,
                address=address,
                reserved=service.reserved_ids,
            )
    except EnrollmentRefused as exc:  # rolled back: audited on its own (reused token, lost race, ...)
        with service.engine.connect() as conn:
            holder = enrollment.token_holder(conn, body.token)
        service.refusals.record(
            "enrollment.refused", actor=holder, address=address, reason=str(exc), target=body.device_id
        )
        raise
    service.broker.apply()
    if issued.replaced:  # whoever holds the old identity may still be connected
        revocation.cut_session(service, issued.device_id, why="re-enrolled")
    return _response(service, issued)


@router.post("/v1/devices/{device_id}/renew", response_model=Enrolled, responses={404: {"model": Problem}})
def renew(device_id: DeviceIdPath, body: RenewRequest, service: ServiceDep, address: AddressDep) -> Enrolled:
    """A new certificate for a new key, authorised by a signature with the current key."""
    try:
        signature = base64.b64decode(body.signature, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest("signature must be base64") from exc
    try:
        with service.limiter.guard(address, EnrollmentRefused, NotFound), service.transaction() as conn:
            issued = enrollment.renew(
                conn,
                service.ca,
                device_id,
                certificate_pem=body.certificate,
                csr_pem=body.csr,
                timestamp=body.timestamp,
                signature=signature,
                now=service.now(),
                lifetime=service.settings.certificates.device_lifetime,
                skew=service.settings.enrollment.renew_clock_skew,
                address=address,
            )
    except (EnrollmentRefused, NotFound) as exc:
        service.refusals.record(
            "renewal.refused", actor=f"device:{device_id}", address=address, reason=str(exc), target=device_id
        )
        raise
    return _response(service, issued)
