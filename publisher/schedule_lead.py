"""`publisher schedule` on a state on a database server: wait to lead, lead, and wait again when the lease
is lost. Only the leader builds and starts APScheduler (a follower never touches the job store); the
lease and the runs table are publisher.state.leader's.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from sqlalchemy.exc import OperationalError, SQLAlchemyError

from publisher.errors import PublisherError, StateError
from publisher.schedule import RESUME_RUNS, STOP, Leading
from publisher.state import leader

if TYPE_CHECKING:
    from publisher.schedule_service import Service

log = logging.getLogger("publisher.schedule")


def lead_forever(service: Service) -> None:
    """Until a stop signal: wait for the lease, lead while it is held, then wait again."""
    me = leader.holder_id()
    log.info("scheduler %s started for %s: %s, catch_up %s; lease %g s (one scheduler leads, the others wait)",
             me, service.settings.paths.state, service.trigger, service.plan.catch_up, service.lease)
    while not STOP.is_set():
        epoch = _wait_to_lead(service, me)
        if epoch is None:
            return
        _lead(service, me, epoch)


def _wait_to_lead(service: Service, me: str) -> int | None:
    """Poll the lease until this process takes it (its epoch); None when stopped first. The holder is
    logged once (and again when it changes); a lease about to end is tried right when it ends."""
    from publisher.state.server import server_connection

    shown, failing, pause = "", False, max(0.2, service.lease / 3)
    while not STOP.is_set():
        try:
            with server_connection(service.settings.paths.state, write=True) as conn:
                epoch = leader.take(conn, me, service.lease)
                lease = None if epoch is not None else leader.current(conn)
        except (PublisherError, SQLAlchemyError) as e:
            if not failing:
                log.warning("cannot take or check the lead: %s; trying again every %g s", e, pause)
            failing = True
            STOP.wait(pause)
            continue
        failing = False
        if epoch is not None:
            log.info("leading (epoch %d): this scheduler runs the jobs", epoch)
            return epoch
        if lease is not None and lease.holder != shown:
            log.info("waiting: %s leads (epoch %d); this scheduler takes over when its lease ends",
                     lease.holder, lease.epoch)
            shown = lease.holder
        STOP.wait(pause if lease is None else min(pause, max(0.05, lease.expires - lease.now + 0.05)))
    return None


def _lead(service: Service, me: str, epoch: int) -> None:
    """One term: renew the lease in a thread, run APScheduler until stopped or the lease is lost."""
    def lost(reason: str) -> None:
        log.warning("lost the lead (epoch %d): %s; jobs stopped, waiting to lead again", epoch, reason)
        if service.scheduler is not None and service.scheduler.running:  # else _started sees it
            threading.Thread(target=service.shutdown, args=(False,), name="publisher-lost", daemon=True).start()

    term = leader.Term(service.settings.paths.state, me, epoch, service.lease, lost)
    Leading.term = term.start()
    try:
        service.run_scheduler(RESUME_RUNS, f"scheduler (pid %d, epoch {epoch}) leads on %s: %s, catch_up %s")
    except StateError as e:
        if not isinstance(e.__cause__, OperationalError):
            raise
        log.warning("%s: waiting to lead again", e)
        STOP.wait(service.lease / 3)
    finally:
        Leading.term = None
        term.end()
