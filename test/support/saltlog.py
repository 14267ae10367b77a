"""Quiet exit for suites that import salt in the pytest process."""
import logging
import sys


def drop_salt_temp_handler():
    """Drop salt's deferred stderr handler before interpreter exit.

    Importing salt with no root log handler installs a handler that queues
    WARNING records and writes them at exit to the sys.stderr it saw at
    import: pytest's capture stream, closed by then ("--- Logging error ---
    ValueError: I/O operation on closed file" for every queued record).
    """
    impl = sys.modules.get("salt._logging.impl")
    handler = impl.get_temp_handler() if impl else None
    if handler is not None:
        logging.root.removeHandler(handler)
        handler.sync_with_handlers(())  # discard the queue
        handler.close()
        impl.setup_temp_handler.__handler__ = None
