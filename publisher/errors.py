"""The exception tree. Library code raises these; only publisher.cli turns them into messages and exit codes.

PublisherError            base: a message, a hint (what to do) and an exit code
├── ConfigError           publisher.toml is wrong (exit 2)
├── ArticleError          one article cannot be published (exit 1, the others still are)
├── OutputError           a file could not be written inside the output folder (exit 1)
├── StateError            the state database cannot be used (exit 2)
│   (defined beside the code that raises them:)
├── render.templates.TemplateProblem      a template does not parse or uses an unknown variable
├── deliver.subscribers.SubscriberError   bad address or unknown subscriber (exit 2)
│   └── DuplicateSubscriber               already subscribed (exit 1)
├── deliver.send.DeliveryStopped          too many connection failures in a row (journal intact)
├── deliver.smtp.SmtpSetupError           the SMTP server cannot be used with these settings (exit 2)
│   └── SmtpLoginError                    login refused (the password never appears)
└── lock.Busy                             another publish, send or schedule holds the lock
"""

from __future__ import annotations

from publisher.models import Severity


class PublisherError(Exception):
    """An error the user can act on: `message` says what, `hint` says what to do."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message


class ConfigError(PublisherError):
    """The configuration file (or the command line) is invalid."""

    exit_code = 2


class ArticleError(PublisherError):
    """One article is invalid; `path` and `line` locate it. `severity` "warning" leaves the article out
    without counting as an error (a file that vanished during the run)."""

    def __init__(self, path: str, message: str, hint: str = "", line: int | None = None,
                 severity: Severity = "error") -> None:
        super().__init__(message, hint)
        self.path = path
        self.line = line
        self.severity: Severity = severity

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {super().__str__()}"


class OutputError(PublisherError):
    """Writing the output failed or would leave the output folder."""


class StateError(PublisherError):
    """The state database is unusable (wrong schema version, locked, corrupt)."""

    exit_code = 2
