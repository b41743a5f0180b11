"""Channel-layer group names. Layer names allow only ASCII letters, digits, '-', '_' and '.'
(under 100 characters), so symbols such as ^GSPC or BRK/B are escaped: every character other
than A-Z, 0-9 and '.' becomes '-XX' (its hex code), which keeps the mapping one-to-one."""

from __future__ import annotations


def _escape(symbol: str) -> str:
    return "".join(c if (c.isascii() and c.isalnum()) or c == "." else f"-{ord(c):02X}" for c in symbol)


def asset_group(symbol: str) -> str:
    return f"asset.{_escape(symbol)}"


def portfolio_group(portfolio_id: int) -> str:
    return f"portfolio.{int(portfolio_id)}"


def user_group(user_id: int) -> str:
    return f"user.{int(user_id)}"


# Every Daphne process's hub joins this group; a published batch is one message to it.
BROADCAST_GROUP = "tf.push"
BATCH_MESSAGE_TYPE = "push.batch"
# Told to every hub when published events were lost: each re-sends its clients snapshots.
RESYNC_MESSAGE_TYPE = "push.resync"
