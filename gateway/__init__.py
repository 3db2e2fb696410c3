"""The gateway process: settings, keys, sealed outbox, pipeline, sync supervision, CLI."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dho-gateway")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
