"""Temporal's remote codec protocol: ``POST /codec/decode`` and ``POST /codec/encode``.

The Temporal Web UI and CLI send payloads (protobuf JSON: ``{"payloads": [{"metadata":
{name: base64}, "data": base64}]}``) and show what comes back, so operators read
encrypted history in clear without holding the key (docs/encryption.md). Without
``TEMPOFLOW_PAYLOAD_KEY`` both endpoints return the payloads unchanged.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer
from temporalio.api.common.v1 import Payload

from app.auth import Principal
from app.deps import SessionDep, SettingsDep, get_principal
from tempoflow.codec import EncryptionCodec, PayloadDecryptionError
from tempoflow.errors import Forbidden, Unprocessable

router = APIRouter(prefix="/codec", tags=["codec"])

MAX_PAYLOADS = 1000


def _b64(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise ValueError("expected a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        try:  # protobuf JSON parsers accept the URL-safe alphabet too
            return base64.b64decode(value, altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("not valid base64") from None


B64Bytes = Annotated[
    bytes,
    BeforeValidator(_b64),
    PlainSerializer(lambda b: base64.b64encode(b).decode(), return_type=str),
    Field(json_schema_extra={"type": "string", "format": "byte"}),
]


class CodecPayload(BaseModel):
    """One ``temporal.api.common.v1.Payload`` in protobuf JSON (bytes as base64)."""

    model_config = ConfigDict(extra="ignore")
    metadata: dict[str, B64Bytes] = Field(default_factory=dict, max_length=100)
    data: B64Bytes = b""

    def to_proto(self) -> Payload:
        return Payload(metadata=self.metadata, data=self.data)

    @classmethod
    def from_proto(cls, payload: Payload) -> CodecPayload:
        return cls(metadata=dict(payload.metadata), data=payload.data)


class CodecPayloads(BaseModel):
    """``temporal.api.common.v1.Payloads`` in protobuf JSON."""

    model_config = ConfigDict(extra="ignore")
    payloads: list[CodecPayload] = Field(default_factory=list, max_length=MAX_PAYLOADS)


async def codec_caller(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    origin: Annotated[str | None, Header()] = None,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Principal | None:
    """An operator's (or admin's) API key; in development, a browser on this machine at
    the configured UI origin without a key (the dev server's Web UI has no login to
    forward)."""
    if (
        settings.environment == "development"
        and _is_loopback(request.client.host if request.client else None)
        and origin is not None
        and origin.rstrip("/") in settings.codec_cors_origins
        and not authorization
        and not x_api_key
    ):
        return None
    principal = await get_principal(request, session, settings, authorization, x_api_key)
    if not principal.has_any(frozenset({"operator"})):
        raise Forbidden(
            "the codec needs one of the roles ['admin', 'operator']",
            hint=f"the key has roles {sorted(principal.roles)}",
        )
    return principal


def _is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


CodecCaller = Annotated[Principal | None, Depends(codec_caller)]


def _codec(request: Request) -> EncryptionCodec | None:
    codec: EncryptionCodec | None = request.app.state.codec
    return codec


@router.post("/decode", response_model=CodecPayloads)
async def decode_payloads(
    body: CodecPayloads, request: Request, caller: CodecCaller
) -> CodecPayloads:
    """Decrypt payloads (unencrypted ones come back unchanged)."""
    codec = _codec(request)
    if codec is None:
        return body
    out = []
    for i, payload in enumerate(body.payloads):
        try:
            out.append(CodecPayload.from_proto(codec.decrypt(payload.to_proto())))
        except PayloadDecryptionError as err:
            raise Unprocessable(
                str(err),
                code="payload_not_decryptable",
                hint="the key that encrypted it must be among TEMPOFLOW_PAYLOAD_KEY's keys",
                errors=[
                    {"path": f"/payloads/{i}", "code": "payload.undecryptable", "message": str(err)}
                ],
            ) from None
    return CodecPayloads(payloads=out)


@router.post("/encode", response_model=CodecPayloads)
async def encode_payloads(
    body: CodecPayloads, request: Request, caller: CodecCaller
) -> CodecPayloads:
    """Encrypt payloads with the current key (what the SDKs' codec would send)."""
    codec = _codec(request)
    if codec is None:
        return body
    return CodecPayloads(
        payloads=[CodecPayload.from_proto(codec.encrypt(p.to_proto())) for p in body.payloads]
    )
