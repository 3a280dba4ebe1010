"""Optional DKIM signing (dkimpy), on when [email.dkim] names a selector, a domain and a key file."""

from __future__ import annotations

from collections.abc import Callable

from publisher.config import DkimSettings
from publisher.errors import ConfigError

SIGNED = (b"from", b"to", b"subject", b"date", b"message-id", b"reply-to", b"list-id", b"list-unsubscribe",
          b"list-unsubscribe-post", b"mime-version", b"content-type")
Signer = Callable[[bytes], bytes]


def signer(settings: DkimSettings) -> Signer | None:
    """A function that prepends a DKIM-Signature header, or None when DKIM is not configured."""
    if not settings.enabled or settings.private_key is None:
        return None
    try:
        key = settings.private_key.read_bytes()
    except OSError as e:
        raise ConfigError(f"{settings.private_key}: DKIM private key unreadable: {e.strerror}",
                          "fix [email.dkim] private_key, or empty [email.dkim] to send unsigned") from e
    import dkim  # dkimpy: only when signing

    selector, domain = settings.selector.encode(), settings.domain.encode()

    def sign(message: bytes) -> bytes:
        signature: bytes = dkim.sign(message, selector, domain, key, include_headers=list(SIGNED))
        return signature + message

    return sign
