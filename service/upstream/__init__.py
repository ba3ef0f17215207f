"""Google's side: minting tokens through google-genai, the Live API's URLs, the SDK's private-API seam."""

from service.upstream.constraints import public_config
from service.upstream.endpoints import API_VERSION, GOOGLE_BASE_URL, LiveEndpoint, live_endpoint
from service.upstream.keys import ApiKeyRing, KeyFileWatcher
from service.upstream.minter import MintedToken, TokenMinter
from service.upstream.sdk import SdkIncompatibleError, check_sdk, sdk_http_options

__all__ = [
    "API_VERSION",
    "GOOGLE_BASE_URL",
    "ApiKeyRing",
    "KeyFileWatcher",
    "LiveEndpoint",
    "MintedToken",
    "SdkIncompatibleError",
    "TokenMinter",
    "check_sdk",
    "live_endpoint",
    "public_config",
    "sdk_http_options",
]
