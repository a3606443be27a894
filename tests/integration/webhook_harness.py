"""Reference webhook receivers on one local uvicorn server, shared by the webhook tests and
the fault harness."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from streams.webhooks import event_id
from tonewatch.webhook_receiver import (
    InMemoryEventStore,
    ReceivedEvent,
    TestResponse,
    create_receiver,
)


@dataclass
class Receiver:
    url: str
    secrets: list[str]
    store: InMemoryEventStore
    answers: list[TestResponse] = field(default_factory=list)  # next answers, then 200
    calls: int = 0

    def respond(self) -> TestResponse:
        self.calls += 1
        return self.answers.pop(0) if self.answers else 200

    def ids(self) -> list[str]:
        return self.store.ids()

    def event(self, dedup_key: str) -> ReceivedEvent:
        (found,) = [e for e in self.store.events if e.id == event_id(dedup_key)]
        return found


class ReceiverHub:
    """Reference receivers mounted under /<name> of one uvicorn server (in a thread)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.app = Starlette()
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="warning",
                           lifespan="off")
        )  # fmt: skip
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the receivers did not start on port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def add(self, secrets: list[str] | None = None) -> Receiver:
        name = f"r{uuid.uuid4().hex[:8]}"
        receiver = Receiver(f"http://127.0.0.1:{self.port}/{name}/webhook", secrets or [],
                            InMemoryEventStore())  # fmt: skip
        app = create_receiver(receiver.secrets, store=receiver.store,
                              respond_with=receiver.respond)  # fmt: skip
        self.app.router.routes.append(Mount(f"/{name}", app=app))
        return receiver
