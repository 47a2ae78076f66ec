"""Stand-in of ``univention.debug`` (tests only): messages are collected in ``MESSAGES``."""
ADMIN, INFO, WARN, ERROR = 1, 4, 2, 1
MESSAGES = []


def debug(category, level, message):
    MESSAGES.append(message)
