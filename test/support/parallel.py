"""Run a function for several items at once, in threads (test harnesses:
daemons and hosts that start in seconds each, mostly waiting)."""
import threading


def each(fun, items):
    """fun(item) for every item at once; the first error is raised, in the
    caller's thread, once all have ended."""
    errors = []

    def run(item):
        try:
            fun(item)
        except BaseException as exc:  # re-raised below, in the caller's thread
            errors.append(exc)
    threads = [threading.Thread(target=run, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
