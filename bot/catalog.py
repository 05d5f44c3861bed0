"""Texts by language: one catalog per part of the bot, read the same way.

Keys are stable; each language maps keys to `str.format` templates. A person's Telegram
`language_code` picks the language; anything missing falls back to English.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class Catalog:
    def __init__(self, languages: Mapping[str, Mapping[str, str]]) -> None:
        self.languages = languages
        self.english = languages["en"]

    def language_for(self, code: str | None) -> str:
        base = (code or "en").split("-")[0].lower()
        return base if base in self.languages else "en"

    def t(self, lang: str, key: str, **values: Any) -> str:
        template = self.languages.get(lang, self.english).get(key) or self.english[key]
        return template.format(**values) if values else template
