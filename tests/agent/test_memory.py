"""The agent's memory: RSS, round peak and life peak as records report them, glibc malloc bounds, and one
request answered at a time."""

import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from edge_agent.agent.handler import AgentHandler
from edge_agent.agent.inbox import WeightsInbox
from edge_agent.agent.memory import bound_malloc, release_free_memory
from edge_agent.agent.traffic import RoundTraffic
from edge_agent.learning.messages import ALL_FP32, JacobianRequest, Message


def test_peak_rss_is_a_high_water_mark_that_sees_a_large_allocation() -> None:
    script = ("import json, numpy as np\nfrom edge_agent.agent.memory import peak_rss_mb\n"
              "before = peak_rss_mb()\nblock = np.ones(64 << 20, dtype=np.uint8)\nduring = peak_rss_mb()\n"
              "del block\nprint(json.dumps([before, during, peak_rss_mb()]))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    before, during, after = json.loads(done.stdout)  # a fresh process: its own peak, not this one's
    assert 10 < before < during - 60 and after >= during - 1  # freeing leaves the mark (RSS counters sync lazily)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/clear_refs")
def test_a_round_peak_starts_afresh_while_the_life_peak_keeps_the_highest() -> None:
    script = ("import json, numpy as np\nfrom edge_agent.agent import memory\n"
              "block = np.ones(128 << 20, dtype=np.uint8)\ndel block\nlife = memory.peak_rss_mb()\n"
              "reset = memory.start_round_peak()\n"
              "print(json.dumps([reset, life, memory.round_peak_rss_mb(), memory.peak_rss_mb(), memory.rss_mb()]))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    reset, life, round_peak, life_after, now = json.loads(done.stdout)
    assert reset is True
    assert round_peak < life - 100  # the 128 MiB block was freed before the round began
    assert life_after >= life - 1 and now <= round_peak + 1  # the life's mark survives the reset


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc")
def test_malloc_bounds_apply_on_glibc() -> None:
    assert bound_malloc(arenas=8)  # this process's setting; 8 is glibc's per-core default
    release_free_memory()


class _SlowResponder:
    """Counts how many requests it is answering at once."""

    method = None

    def __init__(self) -> None:
        self.busy = self.most = 0
        self._lock = threading.Lock()

    def handle(self, message: Message) -> Message | None:
        with self._lock:
            self.busy += 1
            self.most = max(self.most, self.busy)
        time.sleep(0.05)
        with self._lock:
            self.busy -= 1
        return None


def test_an_agent_answers_one_request_at_a_time() -> None:
    responder = _SlowResponder()
    handler = AgentHandler(responder, WeightsInbox(), RoundTraffic(ALL_FP32))  # type: ignore[arg-type]
    request = JacobianRequest("client-1", 0, np.zeros(4, dtype=np.float32))
    threads = [threading.Thread(target=handler.answer, args=(request,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert responder.most == 1
