"""Textual's footer, showing only the keys that fit whole.

At 80 columns the debugger screen has more keys than room; Textual's footer then cuts the last one
mid-word ("⇧F9 Condit"). This one drops the keys that do not fit, from the end, so the screen's
first keys (the stepping keys, listed first) stay and nothing is cut; every key is still in ``?``
and in the palette.
"""

from __future__ import annotations

from textual import events
from textual.widgets import Footer
from textual.widgets._footer import FooterKey


class FittingFooter(Footer):
    async def recompose(self) -> None:
        await super().recompose()
        self._refit()

    def on_resize(self, event: events.Resize) -> None:
        self._refit()

    def watch_compact(self, compact: bool) -> None:
        self._refit()

    def _refit(self) -> None:
        # Laid out with every key first: where each one ends is known only then.
        for key in self._keys():
            key.display = True
        self.call_after_refresh(self._drop_what_does_not_fit)

    def _keys(self) -> list[FooterKey]:
        return [key for key in self.query_children(FooterKey) if not key.has_class("-command-palette")]

    def _drop_what_does_not_fit(self) -> None:
        palette = [key for key in self.query_children(FooterKey) if key.has_class("-command-palette")]
        room = self.size.width - sum(key.outer_size.width for key in palette)
        fits = True
        for key in self._keys():
            # A suffix is dropped, so the keys before it keep their places.
            fits = fits and key.virtual_region.right - self.virtual_region.x <= room
            key.display = fits

    @property
    def shown(self) -> list[str]:
        """The keys' descriptions as shown, in order (for tests)."""
        return [key.description for key in self._keys() if key.display]
