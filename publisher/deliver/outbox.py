"""The outbox transport: one .eml file per message in <outbox>/<digest id>/<subscriber id>.eml,
written atomically (a message counts as delivered once its file is on disk)."""

from __future__ import annotations

from pathlib import Path

from publisher.deliver.transport import ConnectionFailure, Outgoing
from publisher.write import safe_join, write_atomic


class OutboxTransport:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path_of(self, message: Outgoing) -> Path:
        return safe_join(self.folder, f"{message.digest_id}/{message.subscriber_id}.eml")

    def send(self, message: Outgoing) -> None:
        try:
            write_atomic(self.path_of(message), message.data)
        except OSError as e:
            raise ConnectionFailure(f"{self.folder}: cannot write the outbox: {e.strerror}") from e

    def close(self) -> None:
        pass
