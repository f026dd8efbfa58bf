"""Request and response bodies: one model per use, so secrets only appear where meant."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from edge_cloud.auth.operators import USERNAME_PATTERN
from edge_cloud.auth.registry import DEVICE_ID_PATTERN

DeviceId = Annotated[str, Field(pattern=DEVICE_ID_PATTERN, examples=["site-042-gw"])]
Scope = Literal["events:read", "devices:read", "devices:write", "admin"]
Text = Annotated[str, StringConstraints(max_length=255, pattern=r"^[^\x00-\x1f\x7f]*$")]
Username = Annotated[str, Field(pattern=USERNAME_PATTERN, examples=["alice"])]
Password = Annotated[str, StringConstraints(min_length=1, max_length=256)]
PEM = Annotated[str, StringConstraints(min_length=1, max_length=16384, pattern=r"^[\x09\x0a\x0d\x20-\x7e]*$")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    scope: str
    refresh_token: str | None = None


class DeviceCreate(_Body):
    id: DeviceId
    description: Text | None = None


class Device(BaseModel):
    id: str
    status: Literal["pending", "active", "disabled", "revoked"]
    auth_mode: Literal["cert", "password"] | None
    description: str | None
    created_at: int
    enrolled_at: int | None
    changed_at: int
    certificate_serial: str | None = None
    certificate_not_after: int | None = None


class EnrollmentToken(BaseModel):
    device_id: str
    enrollment_token: str = Field(description="Shown once; single use; give it to the device")
    expires_at: int


class DeviceCreated(Device):
    enrollment_token: str = Field(description="Shown once; single use; give it to the device")
    enrollment_token_expires_at: int


class ClaimTokenCreate(_Body):
    uses: int = Field(ge=1, le=1_000_000, description="How many devices may enroll with it")
    ttl_seconds: int | None = Field(
        None, ge=60, le=10 * 365 * 86400, description="Default: enrollment.claim_token_ttl"
    )


class ClaimToken(BaseModel):
    id: str
    claim_token: str = Field(description="Shown once")
    uses: int
    expires_at: int


class Broker(BaseModel):
    host: str
    port: int
    password_port: int | None


class EnrollRequest(_Body):
    token: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    device_id: DeviceId | None = Field(
        None, description="Required with a claim token; checked with a device token"
    )
    csr: PEM | None = Field(
        None, description="PEM CSR from a key the device made itself; omit for password mode"
    )
    mode: Literal["cert", "password"] = "cert"


class Enrolled(BaseModel):
    device_id: str
    certificate: str | None = Field(None, description="PEM client certificate, CN = device id (cert mode)")
    certificate_not_after: int | None = None
    ca_certificate: str = Field(description="PEM CA: verifies the broker and signed the device certificate")
    password: str | None = Field(None, description="Broker password, shown once (password mode)")
    broker: Broker


class RenewRequest(_Body):
    certificate: PEM = Field(description="The device's current certificate (PEM)")
    csr: PEM = Field(description="PEM CSR for the new key")
    timestamp: int = Field(ge=0, le=2**40, description="Unix seconds when the request was signed")
    signature: Annotated[str, StringConstraints(min_length=1, max_length=2048)] = Field(
        description="base64 signature by the current key over the renewal message"
    )


class ApiKeyCreate(_Body):
    name: Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]*$")]
    scopes: list[Scope] = Field(min_length=1, max_length=4)
    ttl_seconds: int | None = Field(None, ge=60, le=10 * 365 * 86400)


class ApiKey(BaseModel):
    id: str
    name: str
    scopes: list[str]
    created_by: str
    created_at: int
    expires_at: int | None
    revoked_at: int | None
    last_used_at: int | None


class ApiKeyCreated(ApiKey):
    key: str = Field(description="Shown once: eak_<id>.<secret>")


class OperatorCreate(_Body):
    username: Username
    password: Password = Field(description="12 characters or more")
    scopes: list[Scope] = Field(min_length=1, max_length=4)


class Operator(BaseModel):
    id: str
    username: str
    scopes: list[str]
    disabled: bool
    created_at: int


class PasswordSet(_Body):
    password: Password = Field(description="The new password, 12 characters or more")


class PasswordChange(_Body):
    old_password: Password
    new_password: Password = Field(description="12 characters or more")


class AuditEntry(BaseModel):
    id: int
    at: int
    actor: str
    action: str
    target: str | None
    address: str | None
    detail: str | None


class Problem(BaseModel):
    """Every error: a sentence saying what was wrong, or (422 from request validation) the list of problems."""

    detail: str | list[dict[str, Any]]
