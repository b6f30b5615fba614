"""The split deployment the chaos run breaks: three ``exchange serve`` processes.

``front`` serves ingest, admin and query and runs the outbox publisher; ``tokenizer`` is the
tokenizer alone; ``normalizer`` consumes the run's topics and calls the tokenizer over
``TOKENIZER_URL``, as a deployment that keeps the HMAC key in one place does. A killed process
is started again on its own port (the others keep their addresses), the normalizer with the
same ``group.instance.id`` so its partitions wait for it instead of moving.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from exchange_bench.server import Server

__all__ = ("Deployment",)

FRONT_ROLES = "ingest,publisher,admin,query"


@dataclass
class Deployment:
    front: Server
    tokenizer: Server
    normalizer: Server

    @classmethod
    def start(cls, env: dict[str, str], log_dir: Path) -> Deployment:
        tokenizer = Server(env, "tokenizer", log_dir).start()
        try:
            normalizer = Server({**env, "TOKENIZER_URL": tokenizer.url, "KAFKA_GROUP_INSTANCE_ID": "chaos-normalizer"},
                                "normalizer", log_dir).start()
            try:
                front = Server(env, FRONT_ROLES, log_dir).start()
            except BaseException:
                normalizer.__exit__()
                raise
        except BaseException:
            tokenizer.__exit__()
            raise
        return cls(front, tokenizer, normalizer)

    def servers(self) -> dict[str, Server]:
        return {"front": self.front, "tokenizer": self.tokenizer, "normalizer": self.normalizer}

    def logs(self) -> list[Path]:
        return [s.log for s in self.servers().values()]

    def __enter__(self) -> Deployment:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        for server in (self.front, self.normalizer, self.tokenizer):
            if server.proc is not None:
                server.__exit__()
