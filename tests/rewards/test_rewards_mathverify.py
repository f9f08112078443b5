"""math-verify off the main thread and under a hard time bound."""

from __future__ import annotations

import os
import signal
import threading
import time

from rft.rewards import get_reward
from rft.rewards.mathverify import MathVerifier, verify_equal


def run_in_thread(fn) -> object:
    out: list[object] = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    thread.join(timeout=120)
    assert out, "the thread did not finish"
    return out[0]


def test_verify_works_in_a_thread() -> None:
    # math-verify's own signal timeouts raise off the main thread; the wrapper must not.
    assert run_in_thread(lambda: verify_equal("$\\frac{1}{2}$", "0.5")) is True
    assert run_in_thread(lambda: verify_equal("0.75", "0.5")) is False


def test_accuracy_reward_in_a_thread_gets_a_nonzero_score() -> None:
    reward = get_reward("accuracy")
    scores = run_in_thread(lambda: reward(["So there are $\\frac{6}{2}$ objects."], ["3"]))
    assert scores == [1.0]


def test_pathological_input_returns_within_the_bound() -> None:
    # sympy tries to evaluate 9^(9^(9^9)) and never finishes on its own.
    verifier = MathVerifier(timeout=1.0)
    try:
        verifier.verify("1", "1")  # start the worker outside the timed section
        start = time.perf_counter()
        assert verifier.verify("$9^{9^{9^{9}}}$", "1") is False
        assert time.perf_counter() - start < 4.0
        assert verifier.verify("$\\sqrt{4}$", "2") is True  # a fresh worker took over
    finally:
        verifier.close()


def test_huge_input_is_cut_to_its_tail() -> None:
    start = time.perf_counter()
    assert verify_equal("x " * 2_000_000 + "the answer is 3", "3") is True
    assert time.perf_counter() - start < 5.0


def test_no_signal_handler_is_left_behind() -> None:
    before = signal.getsignal(signal.SIGALRM)
    verify_equal("2", "2")
    assert signal.getsignal(signal.SIGALRM) is before


def test_forked_child_starts_its_own_worker() -> None:
    verifier = MathVerifier(timeout=30.0)
    try:
        assert verifier.verify("2", "2")  # the parent's worker is running
        parent_worker = verifier._proc.pid
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: must use a worker of its own, not the parent's pipes
            report = b"error"
            try:
                ok = verifier.verify("$\\frac{1}{2}$", "0.5") and not verifier.verify("1", "2")
                report = f"{int(ok)} {verifier._proc.pid}".encode()
            finally:
                os.write(write_end, report)
                os._exit(0)
        os.close(write_end)
        os.waitpid(pid, 0)
        ok, child_worker = os.read(read_end, 64).decode().split()
        assert ok == "1" and int(child_worker) != parent_worker
        assert verifier.verify("3", "3") and not verifier.verify("3", "4")  # parent still fine
        assert verifier._proc.pid == parent_worker
    finally:
        verifier.close()
