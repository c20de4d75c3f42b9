"""Stopping the server (SIGTERM, as `docker stop` sends it) while a long answer streams: it must not wait for the
answer to finish, but after `--shutdown-grace` end the stream with an error event, answer a request still waiting
for its whole answer with a 503, and exit cleanly."""

from __future__ import annotations

import signal
import threading
import time

import json

import httpx

from server_process import running_server


def test_sigterm_ends_running_streams_with_an_error_after_the_grace() -> None:
    with running_server("--parallel", "2", "--shutdown-grace", "1") as server:
        received: list[str] = []
        first_line = threading.Event()

        def stream_long_answer() -> None:
            body = {"prompt": "Once upon a time", "max_tokens": 3000, "stream": True, "logit_bias": {"0": -100, "2": -100}}
            try:
                with httpx.stream("POST", f"{server.api_url}/completions", json=body, timeout=120) as response:
                    for line in response.iter_lines():
                        received.append(line)
                        first_line.set()
            finally:
                first_line.set()

        answers: list[httpx.Response] = []

        def wait_for_long_answer() -> None:
            body = {"prompt": "Once upon a time", "max_tokens": 3000, "logit_bias": {"0": -100, "2": -100}}
            answers.append(httpx.post(f"{server.api_url}/completions", json=body, timeout=120))

        client = threading.Thread(target=stream_long_answer)
        client.start()
        waiting_client = threading.Thread(target=wait_for_long_answer)
        waiting_client.start()
        assert first_line.wait(60)
        stopped_at = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        exit_code = server.process.wait(timeout=30)
        took = time.monotonic() - stopped_at
        client.join(timeout=10)
        waiting_client.join(timeout=10)
        log = server.log()

    assert exit_code in (0, -signal.SIGTERM), log  # uvicorn re-raises the signal it caught, as process managers expect
    assert took < 15, f"shutdown took {took:.1f} s"  # a 3000-token answer takes well over a minute here
    assert not client.is_alive()
    events = [line for line in received if line]
    assert events[-1] == "data: [DONE]"
    error = json.loads(events[-2].removeprefix("data: "))["error"]
    assert error["code"] == "server_shutting_down" and "retry" in error["message"]
    assert answers[0].status_code == 503
    assert answers[0].json()["error"]["code"] == "server_shutting_down"
    assert "Traceback" not in log, log
