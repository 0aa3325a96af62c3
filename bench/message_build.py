"""How many personalised messages a second the compiled template builds, against the
stdlib ``email`` path (parse, substitute, generate) that it replaces.

For each shared sample (``newsletter-with-attachment.eml``, ``welcome.eml``) it renders
messages for recipients with varied fields (ASCII and non-ASCII names, the shared
``simple.csv`` rows cycled) through ``MessageTemplate.render``; then through
``OutgoingMessages.render_body``, what the engine calls per message (the render and the
Body the session sends, dot-stuffed and checked); then a smaller number through
``core.message.reference.render_reference``. The engine's bar: at least 50,000
newsletters a second on one core.

    .venv/bin/python bench/message_build.py [--seconds S]

Not a test: nothing here fails.
"""

from __future__ import annotations

import argparse
import csv
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.message.reference import render_reference
from core.outgoing import OutgoingMessages
from core.template import MessageTemplate, date_header, new_message_id

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SAMPLES = ("newsletter-with-attachment.eml", "welcome.eml")
EXTRA = [
    {"email": "ann@plain.test", "first_name": "Ann", "last_name": "Lee", "city": "Oslo"},
    {"email": "zoe@grey.test", "first_name": "Zoë", "last_name": "Nguyễn", "city": "Hà Nội"},
    {"email": "kenji@equal.test", "first_name": "健二", "last_name": "日本語", "city": "東京"},
    {"email": "mail@plain.test", "first_name": "📬 Post", "last_name": "O'Brien", "city": "A&B"},
]


def recipients() -> list[dict[str, str]]:
    rows = list(EXTRA)
    path = SHARED / "recipients" / "simple.csv"
    if path.exists():
        with path.open(encoding="utf-8", newline="") as handle:
            rows += list(csv.DictReader(handle))
    return rows


def rate(build: Callable[[int], object], seconds: float) -> tuple[float, int]:
    """Messages per second, calling ``build(i)`` for i = 0, 1, 2… for about ``seconds``."""
    count = 0
    batch = 100
    started = time.perf_counter()
    while True:
        for index in range(count, count + batch):
            build(index)
        count += batch
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return count / elapsed, count
        batch = min(batch * 2, 20_000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    args = parser.parse_args()
    rows = recipients()
    ids = [new_message_id("news@sender.test") for _ in rows]
    date = date_header(time.time())
    print(f"Python {platform.python_version()} on {platform.machine()}, {len(rows)} recipients")
    for name in SAMPLES:
        raw = (SHARED / "messages" / name).read_bytes()
        template = MessageTemplate(raw)
        size = len(template.render(rows[0], to=rows[0]["email"], message_id=ids[0], date=date).data)

        def fast(index: int, template: MessageTemplate = template) -> object:
            row = rows[index % len(rows)]
            return template.render(
                row, to=row["email"], message_id=ids[index % len(ids)], date=date
            )

        outgoing = OutgoingMessages(raw, {})

        def send(index: int, messages: OutgoingMessages = outgoing) -> object:
            row = rows[index % len(rows)]
            return messages.render_body(
                row, to=row["email"], message_id=ids[index % len(ids)], date=date
            )

        def slow(index: int, raw: bytes = raw) -> object:
            row = rows[index % len(rows)]
            return render_reference(
                raw, row, to=row["email"], message_id=ids[index % len(ids)], date=date
            )

        fast_rate, fast_count = rate(fast, args.seconds)
        send_rate, send_count = rate(send, args.seconds)
        slow_rate, slow_count = rate(slow, args.seconds / 2)
        print(f"{name} ({size:,} bytes rendered)")
        print(
            f"  compiled template: {fast_rate:>10,.0f} messages/s "
            f"({1e6 / fast_rate:.1f} µs each, {fast_count:,} built)"
        )
        print(
            f"  render + Body:     {send_rate:>10,.0f} messages/s "
            f"({1e6 / send_rate:.1f} µs each, {send_count:,} built)"
        )
        print(
            f"  stdlib email path: {slow_rate:>10,.0f} messages/s "
            f"({1e6 / slow_rate:.1f} µs each, {slow_count:,} built)"
        )
        print(f"  speed-up: {fast_rate / slow_rate:.0f}x")


if __name__ == "__main__":
    main()
