"""Pilot tests of the console: what the screen shows as the (scripted) session reports events.

The session here is ``tests.app_fakes.ScriptedSession``, a UI-only stand-in; the real session is
tested against a real sshd elsewhere.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from app_fakes import ScriptedSession
from console_helpers import header_state, run_from_palette, screen_text, wait_until
from textual.color import Color
from textual.command import CommandList
from textual.geometry import Region
from textual.widgets import Input

from tui.app import DETACHED, TetherApp, ThemeFileError, load_themes
from tui.app.messages import LinkUpdated, ProgressReported, UnhandledEvent, message_for
from tui.app.screens import HelpScreen, PasswordScreen
from tui.app.themes import COLOUR_KEYS
from tui.app.widgets import EventLog, JobClock, LinkStatus
from tui.app.widgets.link_header import describe_allocation, describe_link
from tui.durations import describe_duration
from tui.errors import TetherError
from tui.events import AllocationChanged, JobState, LinkChanged, LinkState, Notice, PasswordPrompt, Progress, RankStatus
from tui.state import UiPrefs

SIZE = (100, 30)
WIDE = (160, 30)  # room in the footer for every key


def console() -> tuple[ScriptedSession, TetherApp]:
    """A fresh scripted session and the console that shows it."""
    session = ScriptedSession()
    return session, TetherApp(session)


# -- header -------------------------------------------------------------------------------------


async def test_header_shows_workspace_and_chain() -> None:
    session = ScriptedSession(title="mnist", chain=("login", "compute01"))
    app = TetherApp(session)
    async with app.run_test(size=SIZE) as pilot:
        await session.wait_running()
        await pilot.pause()
        text = screen_text(app)
        assert "mnist" in text
        assert "laptop → login → compute01" in text


async def test_header_follows_the_link_state() -> None:
    session, app = console()
    async with app.run_test(size=SIZE) as pilot:
        await session.wait_running()
        steps = [
            (
                LinkChanged(LinkState.CONNECTING, detail="login.example.org"),
                "connecting… — login.example.org",
                "-connecting",
            ),
            (LinkChanged(LinkState.UP, rtt_ms=12.4), "up 12 ms", "-up"),
            (
                LinkChanged(LinkState.LOST, detail="connection reset by peer"),
                "lost — connection reset by peer",
                "-lost",
            ),
            (LinkChanged(LinkState.RECONNECTING, attempt=3), "reconnecting (attempt 3)", "-reconnecting"),
            (LinkChanged(LinkState.UP, rtt_ms=8.6), "up 9 ms", "-up"),
        ]
        status = app.query_one(LinkStatus)
        for event, shown, css_class in steps:
            session.emit(event)
            await pilot.pause()
            assert shown in screen_text(app)
            assert status.has_class(css_class)
            assert [c for c in status.classes if c.startswith("-")] == [css_class]


@pytest.mark.parametrize(
    ("event", "shown"),
    [
        (LinkChanged(LinkState.UP), "up"),
        (LinkChanged(LinkState.RECONNECTING), "reconnecting"),
        (LinkChanged(LinkState.NEEDS_PASSWORD, detail="login"), "needs password — login"),
        (LinkChanged(LinkState.CLOSED), "closed"),
    ],
)
def test_describe_link(event: LinkChanged, shown: str) -> None:
    assert describe_link(event) == shown


# -- log ----------------------------------------------------------------------------------------


async def test_notice_and_progress_appear_in_the_log() -> None:
    session, app = console()
    async with app.run_test(size=SIZE) as pilot:
        await session.wait_running()
        session.emit(Notice("Node compute01 is ready"))
        session.emit(Notice("GPU 0 is busy", level="warning"))
        session.emit(Progress("sync", "first sync", 0.42))
        session.emit(Progress("agent", "starting"))
        await pilot.pause()
        text = screen_text(app)
        assert "Node compute01 is ready" in text
        assert "warning: GPU 0 is busy" in text
        assert "sync: first sync 42%" in text
        assert "agent: starting" in text
        lines = app.query_one(EventLog).lines_text
        assert lines.index("Node compute01 is ready") < lines.index("agent: starting")  # newest last


async def test_events_from_another_thread_reach_the_screen() -> None:
    session, app = console()
    async with app.run_test(size=SIZE) as pilot:
        await session.wait_running()
        thread = threading.Thread(target=session.emit, args=(Notice("from the ssh reader thread"),))
        thread.start()
        thread.join(timeout=5)
        await pilot.pause()
        await pilot.pause()
        assert "from the ssh reader thread" in screen_text(app)


async def test_events_still_arriving_while_the_console_closes_do_not_crash_it() -> None:
    # The core's threads keep posting until the session is cancelled, so some events are still
    # queued while the console takes its widgets down (CI once failed on exactly this).
    from tui.events import RankState, RunState

    for _ in range(5):  # the window is short: close a few consoles mid-stream
        session, app = console()
        stop = threading.Event()

        def report_ranks(session: ScriptedSession = session, stop: threading.Event = stop) -> None:
            while not stop.is_set():
                session.emit(RunState((RankState(0, RankStatus.RUNNING, 51317, 50527),)))
                stop.wait(0.0005)

        reporter = threading.Thread(target=report_ranks)
        try:
            async with app.run_test(size=SIZE) as pilot:
                await session.wait_running()
                reporter.start()
                await wait_until(pilot, lambda: "running" in screen_text(app))
                # Leaving the block closes the console while the reporter still posts.
        finally:
            stop.set()
            reporter.join(timeout=5)


async def test_a_failing_session_is_shown_not_crashed() -> None:
    session = ScriptedSession(fail_with=ConnectionRefusedError("login.example.org:22 refused"))
    app = TetherApp(session)
    async with app.run_test(size=SIZE) as pilot:
        await session.wait_running()
        await pilot.pause()
        text = screen_text(app)
        assert "The session stopped: ConnectionRefusedError: login.example.org:22 refused" in text
        assert header_state(app) == "closed — session failed"
        assert app.is_running
        assert any(n.severity == "error" for n in app._notifications)


# -- keys ---------------------------------------------------------------------------------------


async def test_help_lists_the_bindings_and_escape_closes_it() -> None:
    session, app = console()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        for description in ("Help", "Detach", "Leave the console; everything keeps", "Theme", "Commands"):
            assert description in text
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)


async def test_q_detaches_the_session_and_exits_with_detached() -> None:
    session, app = console()
    async with app.run_test(size=SIZE) as pilot:
        await session.wait_running()
        await pilot.press("q")
        await pilot.pause()
    assert session.detach_calls == 1
    assert app.return_value == DETACHED
    assert session.cancelled  # leaving the console stops watching the link, nothing more
    assert app.detach_message.startswith("Detached: the run keeps going on compute01.")


async def test_a_failed_detach_is_reported_and_the_console_stays() -> None:
    session = ScriptedSession(detach_error=TimeoutError("login host did not answer"))
    app = TetherApp(session)
    async with app.run_test(size=SIZE) as pilot:
        await session.wait_running()
        await pilot.press("q")
        await pilot.pause()
        assert app.is_running
        assert "Detach failed: TimeoutError: login host did not answer" in screen_text(app)


async def test_keys_can_be_remapped_by_binding_id() -> None:
    session, app = console()
    async with app.run_test(size=SIZE) as pilot:
        await session.wait_running()
        app.set_keymap({"tether.detach": "ctrl+d"})
        await pilot.press("q")
        await pilot.pause()
        assert session.detach_calls == 0
        await pilot.press("ctrl+d")
        await pilot.pause()
    assert app.return_value == DETACHED


# -- password -----------------------------------------------------------------------------------


async def test_password_prompt_answers_the_session_without_showing_the_secret() -> None:
    session, app = console()
    async with app.run_test(size=SIZE) as pilot:
        await session.wait_running()
        session.emit(PasswordPrompt("Password for alice@login:", host="login"))
        await pilot.pause()
        assert isinstance(app.screen, PasswordScreen)
        # q and t are bindings on the main screen: in the prompt they must be typed, not acted on.
        await pilot.press(*"s3cret-qt")
        await pilot.pause()
        text = screen_text(app)
        assert "Password for alice@login:" in text
        assert "s3cret" not in text
        assert "•" * len("s3cret-qt") in text
        await pilot.press("enter")
        await pilot.pause()
        assert session.answers == ["s3cret-qt"]
        assert session.detach_calls == 0
        assert not isinstance(app.screen, PasswordScreen)


async def test_escape_cancels_the_password_prompt() -> None:
    session, app = console()
    async with app.run_test(size=SIZE) as pilot:
        await session.wait_running()
        session.emit(PasswordPrompt("Verification code:", host="login", echo=True))
        await pilot.pause()
        assert app.screen.query_one(Input).password is False  # echo=True: codes may be shown
        await pilot.press("escape")
        await pilot.pause()
        assert session.answers == [None]


# -- themes and commands ------------------------------------------------------------------------


async def test_t_cycles_the_tether_themes() -> None:
    session, app = console()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        seen = [app.theme]
        for _ in range(4):
            await pilot.press("t")
            await pilot.pause()
            seen.append(app.theme)
            if app.theme == "light":
                assert app.current_theme.dark is False
            if app.theme == "plain":
                assert app.current_theme.ansi is True and app.ansi_theme is not None
        assert seen == ["dark", "high-contrast", "light", "plain", "dark"]


async def test_a_picked_theme_is_the_next_consoles_unless_one_is_asked_for(tmp_path: Path) -> None:
    prefs = UiPrefs(tmp_path)
    app = TetherApp(ScriptedSession(), prefs=prefs)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.theme == "dark"  # nothing picked yet
        await pilot.press("t")
        await pilot.pause()
    assert json.loads((tmp_path / "ui.json").read_text()) == {"theme": "high-contrast"}
    again = TetherApp(ScriptedSession(), prefs=prefs)
    async with again.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert again.theme == "high-contrast"
    asked = TetherApp(ScriptedSession(), theme_name="light", prefs=prefs)  # [ui] theme or --theme
    async with asked.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert asked.theme == "light"
    (tmp_path / "ui.json").write_text('{"theme": "gone"}')  # a theme file since removed: quietly the default
    gone = TetherApp(ScriptedSession(), prefs=prefs)
    async with gone.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert gone.theme == "dark" and "not found" not in screen_text(gone)


async def test_unknown_theme_falls_back_to_dark_and_says_so() -> None:
    app = TetherApp(ScriptedSession(), theme_name="neon")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.theme == "dark"
        assert "Theme 'neon' not found; using 'dark'" in screen_text(app)


async def test_command_palette_switches_theme_and_detaches() -> None:
    session, app = console()
    async with app.run_test(size=SIZE) as pilot:
        await session.wait_running()
        for command, check in (("Switch theme: light", lambda: app.theme == "light"), ("Detach", None)):
            await pilot.press("ctrl+p")
            await pilot.pause()
            await pilot.press(*command)

            def found(command: str = command) -> bool:
                # The palette searches in the background; wait until our command is the top hit.
                hits = app.screen.query(CommandList)
                return (
                    bool(hits)
                    and hits.first().option_count > 0
                    and str(hits.first().get_option_at_index(0).prompt).startswith(command)
                )

            await wait_until(pilot, found)
            await pilot.press("enter")
            await pilot.pause()
            if check is not None:
                assert check()
    assert session.detach_calls == 1
    assert app.return_value == DETACHED


def test_bundled_themes_load() -> None:
    themes = load_themes()
    assert list(themes) == ["dark", "high-contrast", "light", "plain"]
    assert themes["dark"].dark is True and themes["light"].dark is False


def _luminance(colour: str) -> float:
    channels = [c / 255 for c in Color.parse(colour).rgb]
    r, g, b = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_high_contrast_text_colours_are_at_least_seven_to_one() -> None:
    theme = load_themes()["high-contrast"]
    back = _luminance(theme.background)
    for key in ("foreground", "primary", "secondary", "accent", "success", "warning", "error"):
        ratio = (_luminance(getattr(theme, key)) + 0.05) / (back + 0.05)
        assert ratio >= 7, f"{key} {getattr(theme, key)} is only {ratio:.1f}:1 against {theme.background}"


def test_the_plain_theme_uses_the_terminals_own_colours_only() -> None:
    theme = load_themes()["plain"]
    assert theme.ansi is True
    colours = [getattr(theme, key) for key in COLOUR_KEYS] + list(theme.variables.values())
    assert all(Color.parse(colour).ansi is not None for colour in colours), colours


def test_a_true_colour_in_an_ansi_theme_is_refused_naming_the_field(tmp_path: Path) -> None:
    plain = (Path(__file__).parents[1] / "themes" / "plain.toml").read_text()
    (tmp_path / "mine.toml").write_text(
        plain.replace('name = "plain"', 'name = "mine"')
        .replace('error = "ansi_red"', 'error = "#FF0000"')
        .replace("\nansi = true\n", '\nansi = "yes"\nansi_x = 1\n')
    )
    with pytest.raises(ThemeFileError) as caught:
        load_themes(tmp_path)
    assert "'ansi' must be true or false, not 'yes'" in caught.value.problems
    assert "unknown key 'ansi_x' (did you mean 'ansi'?)" in caught.value.problems
    (tmp_path / "mine.toml").write_text(plain.replace('error = "ansi_red"', 'error = "#FF0000"'))
    with pytest.raises(ThemeFileError) as caught:
        load_themes(tmp_path)
    assert str(caught.value).startswith(str(tmp_path / "mine.toml"))
    assert caught.value.problems == [
        "'error' must be an ANSI colour in an ansi theme, not '#FF0000' (use a form like \"ansi_blue\")"
    ]


async def test_no_color_draws_the_console_without_colours(monkeypatch: pytest.MonkeyPatch) -> None:
    """NO_COLOR (no-color.org) wins over every theme: every widget is drawn in greys only."""
    monkeypatch.setenv("NO_COLOR", "1")
    session, app = console()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        colours = set()
        for widget in app.screen.query("*"):
            if not widget.display or not widget.outer_size.area:
                continue
            for strip in widget.render_lines(Region(0, 0, *widget.outer_size)):  # filters applied
                for segment in strip:
                    for colour in (segment.style.color, segment.style.bgcolor) if segment.style else ():
                        if colour is not None and colour.triplet is not None:
                            colours.add(tuple(colour.triplet))
        assert len(colours) > 1, "nothing was drawn"
        assert all(r == g == b for r, g, b in colours), sorted(colours)[:5]


def test_a_malformed_theme_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "broken.toml").write_text('name = "broken"\nprimary = \n')
    with pytest.raises(ThemeFileError) as caught:
        load_themes(tmp_path)
    message = str(caught.value)
    assert "broken.toml" in message
    assert "not valid TOML" in message and "line 2" in message


def test_every_theme_problem_is_reported_at_once(tmp_path: Path) -> None:
    good = (Path(__file__).parents[1] / "themes" / "dark.toml").read_text()
    bad = good.replace("primary =", "primay =").replace("dark = true", 'dark = "yes"')
    bad = bad.replace('error = "#E8645A"', 'error = "#not-a-colour"')
    (tmp_path / "mine.toml").write_text(bad)
    with pytest.raises(ThemeFileError) as caught:
        load_themes(tmp_path)
    problems = caught.value.problems
    assert "unknown key 'primay' (did you mean 'primary'?)" in problems
    assert "missing required key 'primary'" in problems
    assert any("'dark' must be true or false" in p for p in problems)
    assert any("'error' is not a colour" in p for p in problems)
    assert "mine.toml" in str(caught.value)


def test_two_files_with_one_theme_name_are_refused(tmp_path: Path) -> None:
    good = (Path(__file__).parents[1] / "themes" / "dark.toml").read_text()
    (tmp_path / "a.toml").write_text(good)
    (tmp_path / "b.toml").write_text(good)
    with pytest.raises(ThemeFileError, match=r"b\.toml: theme name 'dark' is already defined by .*a\.toml"):
        load_themes(tmp_path)


# -- messages and layering ----------------------------------------------------------------------


def test_core_events_map_to_messages() -> None:
    assert isinstance(message_for(LinkChanged(LinkState.UP)), LinkUpdated)
    assert isinstance(message_for(object()), UnhandledEvent)  # newer events are not dropped


def test_progress_for_one_task_coalesces() -> None:
    older = ProgressReported(Progress("sync", "10%", 0.1))
    assert older.can_replace(ProgressReported(Progress("sync", "20%", 0.2)))
    assert not older.can_replace(ProgressReported(Progress("agent", "starting")))


def test_the_app_imports_no_core_subsystem() -> None:
    """The console is a pure view: it may use tui.events and tui.console_api, nothing deeper."""
    code = (
        "import sys, tui.app; "
        "bad = sorted(m for m in sys.modules if m.split('.')[:2] in "
        "(['tui', 'remote'], ['tui', 'sync'], ['tui', 'node'], ['tui', 'debug'])); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[1], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# -- the job's time left and the new-job key ----------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (2 * 86400 + 3 * 3600 + 59 * 60, "2 d 3 h"),
        (4 * 3600 + 32 * 60 + 59, "4 h 32 min"),
        (3600, "1 h 0 min"),
        (29 * 60 + 59, "29 min"),
        (10 * 60, "10 min"),
        (9 * 60 + 5.9, "9 min 5 s"),
        (60, "1 min 0 s"),
        (42.7, "42 s"),
        (0, "0 s"),
        (-30, "0 s"),  # past the end, before the scheduler says it ended
    ],
)
def test_describe_duration(seconds: float, shown: str) -> None:
    assert describe_duration(seconds) == shown


def test_describe_allocation() -> None:
    now = 1_000_000.0
    assert describe_allocation(None, now) == ""
    assert describe_allocation(AllocationChanged(None, "gpu-box", None), now) == ""  # a direct host
    assert (
        describe_allocation(AllocationChanged("12", "compute01", now + 272, JobState.RUNNING), now)
        == "job 12 · 4 min 32 s left"
    )
    assert describe_allocation(AllocationChanged("12", "compute01", now + 272), now) == "job 12 · 4 min 32 s left"
    assert (
        describe_allocation(AllocationChanged("12", "compute01", None, JobState.RUNNING), now) == "job 12"
    )  # no limit
    assert (
        describe_allocation(AllocationChanged("12", "compute01", now + 99, JobState.WAITING, "pending"), now)
        == "job 12 · pending"
    )
    assert describe_allocation(AllocationChanged("12", "compute01", None, JobState.ENDED), now) == "job 12 · ended"


async def test_header_counts_the_jobs_time_down_and_warns_in_the_last_10_minutes() -> None:
    session, app = console()
    async with app.run_test(size=SIZE) as pilot:
        await session.wait_running()
        clock = app.query_one(JobClock)
        assert not clock.display  # no job, nothing shown (a direct host)
        session.emit(AllocationChanged("12", "compute01", time.time() + 2 * 3600 + 90, JobState.RUNNING))
        await wait_until(pilot, lambda: "job 12 · 2 h 1 min left" in screen_text(app))
        assert clock.display and not clock.has_class("-ending")

        session.emit(AllocationChanged("12", "compute01", time.time() + 65.5, JobState.RUNNING))
        await wait_until(pilot, lambda: clock.has_class("-ending"))
        first = clock.text
        assert first.startswith("job 12 · 1 min ") and first.endswith(" s left")
        # Counted down on the laptop, once a second, with no new event from the session.
        await wait_until(pilot, lambda: first not in screen_text(app) and "job 12 · 1 min" in screen_text(app), 3)

        session.emit(AllocationChanged("12", "compute01", None, JobState.ENDED))
        await wait_until(pilot, lambda: "job 12 · ended" in screen_text(app))
        assert clock.has_class("-ended") and not clock.has_class("-ending")


async def test_new_job_key_is_hidden_without_a_job_dimmed_while_it_runs_and_asks_once_it_ended() -> None:
    session, app = console()
    async with app.run_test(size=WIDE) as pilot:
        await session.wait_running()
        await pilot.pause()
        assert app.check_action("allocate_again", ()) is False
        assert "New job" not in screen_text(app)  # not even in the footer: there is no job
        await pilot.press("A")
        await pilot.pause()
        assert session.allocate_calls == 0

        session.emit(AllocationChanged("12", "compute01", time.time() + 1800, JobState.RUNNING))
        await wait_until(pilot, lambda: "New job" in screen_text(app))  # shown, but dimmed
        assert app.check_action("allocate_again", ()) is None
        await pilot.press("A")
        await pilot.pause()
        assert session.allocate_calls == 0  # a running job is not thrown away

        session.emit(Notice("Slurm job 12 was cancelled; press A for a new job", "error"))
        session.emit(AllocationChanged("12", "compute01", None, JobState.ENDED))
        await wait_until(pilot, lambda: app.check_action("allocate_again", ()) is True)
        await pilot.press("A")
        await wait_until(pilot, lambda: session.allocate_calls == 1)
        assert "Asking for a new job…" in screen_text(app)

        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        assert "New job" in screen_text(app)


async def test_a_refused_new_job_is_reported() -> None:
    refusal = TetherError(
        "Slurm job 12 running on compute01: it has not ended, so it is kept",
        fix="keep working in it, or end it with `tether down`",
    )
    session = ScriptedSession(allocate_error=refusal)
    app = TetherApp(session)
    async with app.run_test(size=WIDE) as pilot:
        await session.wait_running()
        session.emit(AllocationChanged("12", "compute01", time.time() + 1800))  # nothing polls it
        await wait_until(pilot, lambda: app.check_action("allocate_again", ()) is True)
        await pilot.press("A")
        log = app.query_one(EventLog)
        await wait_until(pilot, lambda: any("No new job" in line for line in log.lines_text))
        assert "it has not ended, so it is kept" in log.lines_text[-1]
        assert app.is_running


@pytest.mark.parametrize("width", range(23, 50))  # 23: the memory figures alone
def test_node_lines_fit_the_panel_without_wrapping(width: int) -> None:
    """At 80 columns the node panel is ~30 wide: the bars shrink (or go) so the memory line with its
    figures never wraps; wide panels keep full bars."""
    from tui.app.widgets.node_panels import BAR_WIDTH, describe_node
    from tui.events import NodeStats

    text = describe_node(NodeStats("compute01", 63, 41210, 515000), width)
    assert all(len(line) <= width for line in text.splitlines()), text
    assert "40.2/502.9 GiB" in text and "63%" in text
    if width >= 45:
        assert "█" * 6 + "·" * 4 in text and len(text.splitlines()[0]) == len("CPU  63% ") + BAR_WIDTH


def test_every_console_key_is_in_the_ui_keys_catalogue() -> None:
    """[ui.keys] is checked against tui/keys.py before the console starts: it must name exactly the
    console's bindings (the dashboard's and the debugger screen's), with their default keys, and every key it accepts must be one Textual knows."""
    from textual.keys import Keys, _character_to_key

    from tui.app.screens.debugger import DebuggerScreen
    from tui.keys import BINDING_PREFIX, CHARACTER_NAMES, DEBUGGER_KEYS, DEFAULT_KEYS, NAMED_KEYS

    bindings = {b.id: b.key for b in TetherApp.BINDINGS if b.id}  # type: ignore[union-attr]
    assert bindings == {BINDING_PREFIX + action: key for action, key in DEFAULT_KEYS.items()}
    screen = {b.id: b.key for b in DebuggerScreen.BINDINGS if b.id}  # type: ignore[union-attr]
    assert screen == {BINDING_PREFIX + action: key for action, key in DEBUGGER_KEYS.items()}
    assert all(_character_to_key(char) == name for char, name in CHARACTER_NAMES.items())
    assert NAMED_KEYS <= {key.value for key in Keys}


async def test_a_remapped_key_works_and_its_old_key_does_not() -> None:
    session = ScriptedSession()
    app = TetherApp(session, keys=(("theme", "f2"), ("help", "h")))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.theme == "dark"
        await pilot.press("t")
        await pilot.pause()
        assert app.theme == "dark"  # t is no longer the theme key
        await pilot.press("f2")
        await pilot.pause()
        assert app.theme == "high-contrast"
        await pilot.press("h")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        shown = screen_text(app)
        assert "f2" in shown.lower() and "Theme" in shown  # ? lists the keys in force


async def test_rebuild_kills_the_run_only_once_confirmed() -> None:
    from tui.app.screens import ConfirmScreen

    session, app = console()
    async with app.run_test(size=SIZE) as pilot:
        await session.wait_running()
        await run_from_palette(app, pilot, "Rebuild the tmux layout")
        assert isinstance(app.screen, ConfirmScreen) and "kills the tmux session" in screen_text(app)
        await pilot.press("enter")  # Cancel has the focus: a stray Enter kills nothing
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen) and session.calls == []
        await run_from_palette(app, pilot, "Rebuild the tmux layout")
        await pilot.press("escape")
        await pilot.pause()
        assert session.calls == []
        await run_from_palette(app, pilot, "Rebuild the tmux layout")
        await pilot.click("#confirm-do")
        await wait_until(pilot, lambda: session.calls == ["rebuild_layout"])
        assert "Rebuilding the tmux layout" in screen_text(app)


async def test_the_palette_pauses_resumes_and_syncs_now() -> None:
    from tui.events import SyncState, SyncStatus

    session, app = console()
    async with app.run_test(size=SIZE) as pilot:
        await session.wait_running()
        session.emit(SyncStatus("demo-workspace", SyncState.UP_TO_DATE))
        await pilot.pause()
        await run_from_palette(app, pilot, "Sync: pause")
        session.emit(SyncStatus("demo-workspace", SyncState.PAUSED, pending=2))
        await pilot.pause()
        await run_from_palette(app, pilot, "Sync: resume")
        await run_from_palette(app, pilot, "Sync now")
        await wait_until(pilot, lambda: session.calls == ["pause_sync", "resume_sync", "rescan_sync"])


async def test_the_palette_copies_each_ranks_debug_address() -> None:
    from tui.events import RankState, RunState

    session, app = console()
    async with app.run_test(size=SIZE) as pilot:
        await session.wait_running()
        session.emit(
            RunState((RankState(0, RankStatus.RUNNING, 51317, 50527), RankState(1, RankStatus.RUNNING, 51318, 50528)))
        )
        await pilot.pause()
        await run_from_palette(app, pilot, "Copy debug address: 127.0.0.1:50528")
        assert app.clipboard == "127.0.0.1:50528"


async def test_a_long_sync_line_ends_in_an_ellipsis_inside_its_panel() -> None:
    """At 80 columns the side column is ~36 wide: the line is cut with "…", not by the frame."""
    from tui.events import SyncState, SyncStatus

    session, app = console()
    async with app.run_test(size=(80, 24)) as pilot:
        await session.wait_running()
        status = SyncStatus(
            "demo-workspace", SyncState.UP_TO_DATE, last_push_ms=4, last_push_bytes=54_000, last_push_files=2
        )
        session.emit(status)
        await wait_until(pilot, lambda: "sync: up to date" in screen_text(app))
        line = next(line for line in screen_text(app).splitlines() if "sync: up to date" in line)
        assert line.rstrip().endswith("…"), line


async def test_a_long_output_line_folds_inside_the_panel_at_every_width() -> None:
    """Lightning's progress line is wider than the panel at 80 columns: it folds at spaces, so every
    word of it is on the screen (RichLog rendered lines at least 78 wide, and the frame cut them),
    and folds again when the terminal grows."""
    from tui.events import OutputLines

    line = "Epoch 2: 40%|████ | 20/50 [00:01<00:02, 14.06it/s, v_num=0, train_loss=0.275, val_loss=0.301, lr=3e-4]"
    session, app = console()
    async with app.run_test(size=(80, 24)) as pilot:
        await session.wait_running()
        session.emit(OutputLines(tuple(f"{line} #{i}" for i in range(30))))
        await wait_until(pilot, lambda: "#29" in screen_text(app))
        for size in ((80, 24), (200, 50), (90, 30)):
            await pilot.resize_terminal(*size)
            await pilot.pause()
            shown = screen_text(app)
            assert all(word in shown for word in (line + " #29").split()), (size, shown)
