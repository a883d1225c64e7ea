"""Answers with its pid and an id drawn at start-up (inside a sandbox every worker's pid is the same); its manifest keeps one worker warm (min_instances 1) past a 1 s idle timeout."""

import os

WORKER_ID = os.urandom(8).hex()


def handle(request):
    return {"pid": os.getpid(), "worker_id": WORKER_ID}
