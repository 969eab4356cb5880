"""The console's top line: workspace, chain of hops, and what the link supervisor says."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Label

from tui.events import LinkChanged, LinkState

LAPTOP = "laptop"
"""The first hop is always the machine the console runs on; ``session.chain`` lists the rest."""


def describe_chain(chain: tuple[str, ...]) -> str:
    """``("login", "compute01")`` -> ``"laptop → login → compute01"``."""
    return " → ".join((LAPTOP, *chain))


def describe_link(link: LinkChanged) -> str:
    """The words the header shows for a link state, with the event's detail where it helps."""
    state = link.state
    if state is LinkState.UP:
        # The round trip is what the user wants to know while up; the detail adds nothing.
        return "up" if link.rtt_ms is None else f"up {round(link.rtt_ms)} ms"
    if state is LinkState.CONNECTING:
        text = "connecting…"
    elif state is LinkState.RECONNECTING:
        text = f"reconnecting (attempt {link.attempt})" if link.attempt else "reconnecting"
    else:
        text = state.value
    return f"{text} — {link.detail}" if link.detail else text


def state_class(state: LinkState) -> str:
    """The CSS class a state gets, e.g. ``-needs-password``."""
    return "-" + state.name.lower().replace("_", "-")


class LinkStatus(Widget):
    """The link state, coloured by how worried the user should be."""

    DEFAULT_CSS = """
    LinkStatus {
        width: auto;
        max-width: 60%;
        height: 1;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
        &.-up { color: $text-success; }
        &.-connecting, &.-reconnecting { color: $text-warning; }
        &.-needs-password { color: $text-warning; text-style: bold; }
        &.-lost { color: $text-error; text-style: bold; }
        &.-closed { color: $text-muted; }
    }
    """

    link: reactive[LinkChanged] = reactive(LinkChanged(LinkState.CONNECTING), layout=True)
    """The last LinkChanged event; the console starts connecting as soon as it is mounted."""

    def render(self) -> str:
        return f"● {describe_link(self.link)}"

    def watch_link(self, link: LinkChanged) -> None:
        for state in LinkState:
            self.set_class(state is link.state, state_class(state))


class LinkHeader(Horizontal):
    """Workspace name, the hops from the laptop to the node, and the link state."""

    DEFAULT_CSS = """
    LinkHeader {
        dock: top;
        height: 1;
        background: $panel;
        #workspace { padding: 0 1; text-style: bold; color: $text-primary; }
        #chain { width: 1fr; padding: 0 1; color: $text-muted; text-wrap: nowrap; text-overflow: ellipsis; }
    }
    """

    def __init__(self, workspace: str, chain: tuple[str, ...], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._workspace = workspace
        self._chain = chain

    def compose(self) -> ComposeResult:
        yield Label(self._workspace, id="workspace")
        yield Label(describe_chain(self._chain), id="chain")
        yield LinkStatus()

    def show_link(self, link: LinkChanged) -> None:
        """Show a new link state (the app calls this for every LinkChanged)."""
        self.query_one(LinkStatus).link = link

    def show_chain(self, chain: tuple[str, ...]) -> None:
        """Show the hops again: a scheduler names the node only once the job runs."""
        if chain != self._chain:
            self._chain = chain
            self.query_one("#chain", Label).update(describe_chain(chain))

    @property
    def link_text(self) -> str:
        """The link state as shown, without styling (for tests and screen readers)."""
        return describe_link(self.query_one(LinkStatus).link)
