"""Progress: bytes per part, the rate over a window (resumed bytes excluded), and the two renderings."""

from __future__ import annotations

import io

from tusedge.client.progress import Progress, ProgressPrinter, format_bytes, format_eta, render


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_done_is_the_sum_of_the_parts_and_a_failed_patch_sets_a_part_back() -> None:
    p = Progress()
    p.start(300, 3)
    p.advance(0, 50)
    p.advance(1, 70)
    p.set(0, 20)  # the server had only 20 after a failure
    assert p.done == 90


def test_rate_excludes_resumed_bytes_and_follows_the_window() -> None:
    clock = Clock()
    p = Progress(clock)
    p.start(10_000, 1)
    p.resume(0, 5000)
    assert p.sample() == (5000, None)
    clock.now = 2.0
    p.advance(0, 2000)
    done, rate = p.sample()
    assert done == 7000 and rate == 1000.0


def test_render_shows_bytes_percentage_rate_eta_and_parts() -> None:
    p = Progress()
    p.start(4 * 1024**3, 4)
    line = render(p, 1024**3, 100e6)
    assert line.startswith("1.0 GiB / 4.0 GiB  25.0%  100.0 MB/s  ETA 0:00:32")
    assert line.endswith("(4 parts)")
    assert render(p, 1024**3, 100e6, bar_width=8).startswith("[##......] ")


def test_render_names_the_phase_before_and_after_the_bytes() -> None:
    p = Progress()
    p.phase = "computing the sha256 digest of f"
    assert render(p, 0, None) == "computing the sha256 digest of f"


def test_printer_redraws_one_line_on_a_terminal() -> None:
    p = Progress(Clock())
    p.start(100, 1)
    out = io.StringIO()
    printer = ProgressPrinter(p, out, tty=True)
    printer.print_once()
    p.advance(0, 100)
    printer.finish()
    assert out.getvalue().count("\r") == 2 and out.getvalue().endswith("100.0%\x1b[K\n")


def test_printer_writes_plain_lines_elsewhere_without_repeating_itself() -> None:
    p = Progress(Clock())
    p.start(100, 1)
    out = io.StringIO()
    printer = ProgressPrinter(p, out, tty=False)
    printer.print_once()
    printer.print_once()
    p.advance(0, 100)
    printer.finish()
    assert out.getvalue().splitlines() == ["0 B / 100 B   0.0%", "100 B / 100 B 100.0%"]


def test_formats() -> None:
    assert [format_bytes(n) for n in (0, 1023, 1024, 5 * 1024**2)] == ["0 B", "1023 B", "1.0 KiB", "5.0 MiB"]
    assert format_eta(3725.4) == "1:02:05"
