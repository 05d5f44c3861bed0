"""The python-telegram-bot adapter: the only place besides bot/telegram that imports a Telegram
framework. It turns PTB's updates into the shared parts' plain events and their Telegram calls
into PTB's Bot methods."""
