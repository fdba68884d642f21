"""Every test sees the default plug-ins registered, as every command-line tool does."""

from nas.plugins import load_plugins

load_plugins()
