"""Answers with its pid; its manifest keeps one worker warm (min_instances 1) past a 1 s idle timeout."""

import os


def handle(request):
    return {"pid": os.getpid()}
