"""Errors a user can cause and fix. Each message is one sentence naming the
file, line or field at fault; the command-line programs print it without a
traceback and exit with status 2."""


class UserError(Exception):
    """Base of the errors below."""


class ConfigError(UserError, ValueError):
    """A configuration value is not valid."""


class DataError(UserError, ValueError):
    """A data file is missing, unreadable or malformed."""


class TokenizerError(UserError, ValueError):
    """A tokenizer file is missing, unreadable, or does not match the config."""


class CheckpointError(UserError, RuntimeError):
    """A checkpoint is missing, unreadable, or does not fit the model."""


class NonFiniteLossError(UserError, RuntimeError):
    """The training loss became NaN or infinite."""


class WorkdirBusyError(UserError, RuntimeError):
    """Another process holds the workdir's writer lock."""


class StorageError(UserError, OSError):
    """Writing a checkpoint, a metrics record or an output file failed (a full disk, a lost
    permission, a directory removed underneath)."""
