"""
Secrets read from pillar by the state modules while they run (passwords of
users and bridges), so the formula passes pillar keys, never values, as
state arguments.

Reached as ``__utils__["mosquitto_pillar.plain_value"](__pillar__, key)``.
"""
import salt.utils.data

__virtualname__ = "mosquitto_pillar"


def __virtual__():
    return __virtualname__


def plain_value(pillar, key):
    """The plain value at ``key`` (``:`` nested) of this run's ``pillar``, or None.

    Read from ``__pillar__`` itself: Salt 3008's ``pillar.get`` returns
    ``**********`` for every value outside template rendering (pillar
    masking), which would become the password.
    """
    return salt.utils.data.traverse_dict_and_list(pillar, key, None, delimiter=":")
