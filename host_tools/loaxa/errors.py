"""Expected failures: one family, one calm sentence, a hint of what to do next."""

from .i18n import t


class LoaxaError(Exception):
    """An expected failure the CLI reports without a traceback."""

    def __init__(self, msg: str, hint: str | None = None):
        super().__init__(msg)
        self.msg = msg
        self.hint = hint

    def __str__(self) -> str:
        return self.msg + ("\n" + t("hint", hint=self.hint) if self.hint else "")


class NodeError(LoaxaError):
    """The node answered a console request with `err`."""

    def __init__(self, code: str, msg: str):
        super().__init__(f"node refused: {msg} ({code})")
        self.code = code
        self.node_msg = msg


class NodeTimeout(LoaxaError):
    pass
