"""The garbage collector, set for a bot that runs for days once it has started.

Reference counting frees almost everything an update allocates; the cycle collector exists for
the rest, but by default it runs every 700 net allocations and now and then walks every object
in the process. At startup that is some 300,000 objects (modules, the framework's models, the
country names, the pools) that live as long as the process: under load, walking them again and
again cost about a tenth of the bot's CPU.
"""

from __future__ import annotations

import gc

# Net allocations between young collections (the default is 700): one step allocates a few
# thousand objects, so this is one young collection every few steps rather than several a step.
YOUNG_COLLECTION_EVERY = 10_000


def settle() -> None:
    """Once the bot is wired and serving: what exists now stays for the process's life, so the
    collector is told to leave it alone (`gc.freeze`), and young collections are spaced out."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, middle, old)
