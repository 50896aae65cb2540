"""The one spelling of where a party is in its life, shared by server, CLI and GUI."""

from enum import StrEnum


class Phase(StrEnum):
    IDLE = "idle"  # no party
    STARTING = "starting"  # processes coming up; phones cannot join yet
    LIVE = "live"  # phones can join
    STOPPING = "stopping"
    ERROR = "error"  # the last party failed or ended on its own; `message` says why
