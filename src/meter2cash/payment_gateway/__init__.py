"""Payment gateways: the adapter interface, webhook signatures, the sandbox gateway server."""

from meter2cash.payment_gateway.adapter import (
    GatewayError,
    GatewayOrderInfo,
    GatewaySettings,
    PaymentGateway,
    SandboxClient,
    gateway_from_settings,
)
from meter2cash.payment_gateway.signing import HEADER, SignatureError, sign_header, verify

__all__ = [
    "HEADER",
    "GatewayError",
    "GatewayOrderInfo",
    "GatewaySettings",
    "PaymentGateway",
    "SandboxClient",
    "SignatureError",
    "gateway_from_settings",
    "sign_header",
    "verify",
]
