"""The parent process: builds the user object, binds the ports and runs the workers."""

from __future__ import annotations

import logging
import os

from . import component
from .server import Worker, call_load
from .settings import Settings
from .sockets import bind

log = logging.getLogger("unitserve")


def run(settings: Settings) -> int:
    """Start serving `settings.interface_name`; returns the exit status."""
    if settings.persistence:
        log.warning("Persistence: ignored, persistence is deprecated")
    if settings.tracing:
        log.warning("--tracing / TRACING: tracing is not supported by unitserve and is ignored")
    user = component.load_component(settings.interface_name, settings.parameters)
    log.info("serving %s (%s) with unitserve", settings.interface_name, settings.service_type)
    http_socket = bind(settings.host, settings.http_port, "REST", "--http-port")
    if settings.pidfile:
        with open(settings.pidfile, "w") as f:
            f.write(f"{os.getpid()}\n")
    loaded = False
    if settings.preload:
        call_load(user)
        loaded = True
    try:
        return Worker(settings, user, http_socket, loaded=loaded).run()
    finally:
        http_socket.close()
