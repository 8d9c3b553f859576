"""A task's instructions as a page shows them: the diagram's Markdown as sanitised HTML, dates in UK form.

Called by the task page (the `instructions` template filter). The engine renders the Jinja of the
instructions over the task's data; what it gives may hold anything a person typed, so the HTML is
built by markdown-it with raw HTML off, then cleaned by nh3 down to a few tags and safe links.
"""

from __future__ import annotations

import re

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

from .filters import ukdate

TAGS = {"p", "br", "strong", "em", "ul", "ol", "li", "a", "h2", "h3", "h4"}
ATTRIBUTES = {"a": {"href"}}
URL_SCHEMES = {"http", "https", "mailto"}
CLASSES = {
    "p": "govuk-body",
    "ul": "govuk-list govuk-list--bullet",
    "ol": "govuk-list govuk-list--number",
    "a": "govuk-link",
    "h2": "govuk-heading-m",
    "h3": "govuk-heading-s",
    "h4": "govuk-heading-s",
}

# "2026-12-21", "2026-12-21T23:59:59+00:00", "2026-12-21T09:00:00Z": dates as the engine keeps them
ISO_DATE = re.compile(
    r"(?<![\d-])(\d{4}-\d{2}-\d{2})(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?(?![\d-])"
)

_MARKDOWN = MarkdownIt("commonmark", {"html": False, "breaks": True, "linkify": False}).disable(
    ["image", "code", "fence", "html_block", "html_inline", "table"], ignoreInvalid=True
)


def uk_dates(text: str) -> str:
    """Every ISO date or date-time in `text` as a UK date ('21 December 2026', London time)."""

    def replace(match: re.Match) -> str:
        value = match.group(0).replace("Z", "+00:00")
        shown = ukdate(value)
        return shown or match.group(0)

    return ISO_DATE.sub(replace, text)


def instructions_html(text: str | None) -> Markup:
    """Instructions (Markdown) as safe HTML with GOV.UK classes: paragraphs, line breaks, bold,
    italics, lists, headings 2 to 4 and http(s)/mailto links; anything else is text or dropped."""
    if not text:
        return Markup("")
    html = _MARKDOWN.render(uk_dates(text))
    clean = nh3.clean(
        html,
        tags=TAGS,
        attributes=ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer",
        strip_comments=True,
    )
    for tag, classes in CLASSES.items():  # the cleaned HTML has no attributes on these tags but href
        clean = re.sub(rf"<{tag}(?=[ >])", f'<{tag} class="{classes}"', clean)
    return Markup(clean)  # noqa: S704 - built by markdown-it without raw HTML and cleaned by nh3 above
