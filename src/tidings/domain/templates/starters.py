"""Starter layouts for the email builder: a newsletter, a sale, new arrivals, a reminder.

Each is a name, a subject, a preheader and a list of blocks that
:func:`~.blocks.validate_blocks` accepts as they are (a unit test checks
it). They use no images, so they need no upload to be sent as they are; the
manager replaces the words, adds images and fills in the shop's address.

Pure: standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["STARTERS", "Starter"]

_GREETING = '<p>Hi {{ customer.first_name or "there" }},</p>'
_FOOTER = {"type": "footer", "text": "You get this email because you signed up at our shop.",
           "address": "Your shop's name\nStreet and number\nPostcode and town",
           "unsubscribe_label": "Unsubscribe"}


@dataclass(frozen=True, kw_only=True)
class Starter:
    key: str
    name: str
    description: str
    subject: str
    preheader: str
    blocks: tuple[dict[str, Any], ...]


STARTERS: dict[str, Starter] = {s.key: s for s in (
    Starter(key="blank", name="Blank", description="A heading, some text and the footer.",
            subject="News from our shop", preheader="",
            blocks=({"type": "heading", "text": "Your heading"},
                    {"type": "text", "html": _GREETING + "<p>Write your message here.</p>"},
                    _FOOTER)),
    Starter(key="newsletter", name="Newsletter",
            description="A greeting, two stories side by side, a button and the footer.",
            subject="This month at our shop", preheader="What is new, in two minutes",
            blocks=({"type": "heading", "text": "This month at our shop"},
                    {"type": "text", "html": _GREETING + "<p>Here is what happened since the "
                     "last letter.</p>"},
                    {"type": "columns", "columns": [
                        {"heading": "A story", "text": "<p>Tell it in two or three lines.</p>",
                         "button_label": "Read more", "button_url": "https://shop.example/blog"},
                        {"heading": "Another story", "text": "<p>Keep it short.</p>",
                         "button_label": "Read more", "button_url": "https://shop.example/blog"}]},
                    {"type": "divider"},
                    {"type": "button", "label": "Visit the shop", "url": "https://shop.example/"},
                    {"type": "social", "links": [{"network": "instagram",
                                                  "url": "https://instagram.com/"}]},
                    _FOOTER)),
    Starter(key="sale", name="Sale", description="A big offer, a button and two products.",
            subject="{{ customer.first_name or \"Hello\" }}, our sale starts now",
            preheader="Up to 30% off until Sunday",
            blocks=({"type": "heading", "text": "Up to 30% off, until Sunday", "align": "center"},
                    {"type": "text", "html": _GREETING + "<p>Our biggest sale of the season has "
                     "started. <strong>Everything</strong> is reduced.</p>"},
                    {"type": "button", "label": "Shop the sale", "url": "https://shop.example/sale"},
                    {"type": "product", "name": "A best seller", "price": "€ 29 instead of € 39",
                     "url": "https://shop.example/product"},
                    {"type": "product", "name": "Another favourite", "price": "€ 49 instead of € 69",
                     "url": "https://shop.example/product"},
                    _FOOTER)),
    Starter(key="arrivals", name="New arrivals",
            description="Three new products in columns, and a button to see them all.",
            subject="Just in: new arrivals", preheader="Fresh from the workshop",
            blocks=({"type": "heading", "text": "Just in"},
                    {"type": "text", "html": _GREETING + "<p>These arrived this week.</p>"},
                    {"type": "columns", "columns": [
                        {"heading": "First", "text": "<p>€ 25</p>", "button_label": "See it",
                         "button_url": "https://shop.example/new"},
                        {"heading": "Second", "text": "<p>€ 35</p>", "button_label": "See it",
                         "button_url": "https://shop.example/new"},
                        {"heading": "Third", "text": "<p>€ 45</p>", "button_label": "See it",
                         "button_url": "https://shop.example/new"}]},
                    {"type": "button", "label": "See everything new",
                     "url": "https://shop.example/new"},
                    _FOOTER)),
    Starter(key="reminder", name="Reminder",
            description="A short reminder with one button: a cart left behind, an event.",
            subject="Did you forget something?", preheader="It is still waiting for you",
            blocks=({"type": "heading", "text": "Still thinking about it?"},
                    {"type": "text", "html": _GREETING + "<p>What you chose is still waiting for "
                     "you. Finish your order whenever you like.</p>"},
                    {"type": "button", "label": "Back to my basket",
                     "url": "https://shop.example/basket"},
                    {"type": "spacer", "height": 16},
                    _FOOTER)),
)}
