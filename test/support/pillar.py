"""A stand-in for pillar.items that behaves like Salt 3008's.

Salt 3008 masks pillar output: pillar.items() returns every scalar leaf as
"**********" unless called with unmask=True (salt.utils.secret.serial). A
module that forgets unmask=True gets the stars, here as on a real minion.
"""
import salt.utils.secret


def pillar_items(pillar):
    """pillar.items for a minion whose compiled pillar is ``pillar`` (live: edits count)."""
    def items(*args, unmask=None, **kwargs):
        return salt.utils.secret.expose(pillar) if unmask else salt.utils.secret.serial(pillar)
    return items
