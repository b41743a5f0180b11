"""Portfolios, their positions and valuation snapshots.

Cached valuation fields keep full precision (10 places); rounding to cents happens only when
a figure leaves the server (docs/protocol.md, "Valuation").

"The price used in a position's previous valuation" (`significant_change`) is kept off the
position rows, which a full price refresh would otherwise rewrite by the 100,000: each pass
that stores anything records the prices it valued at ONCE, as a `ValuationEpoch` with one
`ValuedPrice` per asset, and every portfolio it stores points at that epoch
(`Portfolio.valued_epoch`, written in the same UPDATE as its figures). A position's previous
price is then its asset's price in its portfolio's epoch, if the position took part in that
valuation (`Position.valued`: set once, when a position is first valued at a price).

The ledger: a portfolio's `Transaction`s are the truth; its positions (and its `realized_gain`,
`dividends`, `fees`) are derived from them in `executed_at` order by
services/ledger.py, and nothing else writes them (docs/protocol.md, "Transactions"). Money
of the ledger is kept at 10 places, rounded half-even after each transaction, so deriving
one more transaction from the stored state equals replaying them all.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q

from backend.market.models import Asset, Quote


class Portfolio(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="portfolios")
    name = models.CharField(max_length=100)
    base_currency = models.CharField(max_length=3, default="USD")
    total_value = models.DecimalField(max_digits=30, decimal_places=10, null=True, blank=True)
    total_cost = models.DecimalField(max_digits=30, decimal_places=10, null=True, blank=True)
    daily_change = models.DecimalField(max_digits=30, decimal_places=10, null=True, blank=True)
    daily_change_percent = models.DecimalField(max_digits=30, decimal_places=10, null=True, blank=True)
    total_return = models.DecimalField(max_digits=30, decimal_places=10, null=True, blank=True)
    total_return_percent = models.DecimalField(max_digits=30, decimal_places=10, null=True, blank=True)
    valued_at = models.DateTimeField(null=True, blank=True)
    # The prices of this portfolio's previous valuation (see the module docstring). No foreign
    # key: a full refresh rewrites it on 10,000 rows, and a key check per row would cost more
    # than the rest of the UPDATE. Unreferenced epochs are deleted by later passes.
    valued_epoch = models.BigIntegerField(null=True, blank=True, editable=False)
    # Ledger figures in the base currency, derived from the transactions (services/ledger.py):
    # the sums of the positions' realized gains and dividends, and the `fee` transactions.
    realized_gain = models.DecimalField(max_digits=30, decimal_places=10, default=0, db_default=0, editable=False)
    dividends = models.DecimalField(max_digits=30, decimal_places=10, default=0, db_default=0, editable=False)
    fees = models.DecimalField(max_digits=30, decimal_places=10, default=0, db_default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["owner_id", "name"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="portfolio_unique_owner_name")]

    def __str__(self) -> str:
        return self.name


class Position(models.Model):
    """A holding derived from the portfolio's transactions of one asset. `quantity` and
    `average_cost` are in the asset's currency; `cost_basis`, `realized_gain` and
    `dividends` in the portfolio's base currency. A position sold down to 0 stays (with its
    realized figures) but leaves the valuation."""

    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="positions")
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="positions")
    quantity = models.DecimalField(max_digits=28, decimal_places=10)
    average_cost = models.DecimalField(max_digits=20, decimal_places=6)
    # NULL: a position written outside the ledger (a script, a fixture): its cost is then
    # quantity * average_cost, in a base currency it is assumed to share.
    cost_basis = models.DecimalField(max_digits=30, decimal_places=10, null=True, blank=True)
    # The same running cost in the asset's currency, without fx (average_cost = it / quantity).
    cost_local = models.DecimalField(max_digits=30, decimal_places=10, null=True, blank=True, editable=False)
    realized_gain = models.DecimalField(max_digits=30, decimal_places=10, default=0, db_default=0)
    dividends = models.DecimalField(max_digits=30, decimal_places=10, default=0, db_default=0)
    # Took part, at a price, in a valuation of its portfolio: its previous price is then its
    # asset's price in the portfolio's `valued_epoch`. A new position (even one re-added for a
    # symbol held before) has no previous valuation.
    valued = models.BooleanField(default=False, db_default=False, editable=False)
    # The asset's latest quote joined straight on asset_id (no column: Quote's key is the
    # asset's id), so valuation queries skip the join through market_asset.
    quote = models.ForeignObject(
        Quote,
        on_delete=models.DO_NOTHING,
        from_fields=["asset"],
        to_fields=["asset"],
        null=True,
        related_name="+",
        editable=False,
        serialize=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["portfolio_id", "asset__symbol"]
        constraints = [
            models.UniqueConstraint(fields=["portfolio", "asset"], name="position_unique_portfolio_asset"),
            models.CheckConstraint(condition=Q(quantity__gte=0), name="position_quantity_not_negative"),
            models.CheckConstraint(condition=Q(average_cost__gte=0), name="position_cost_not_negative"),
        ]
        # The few positions never valued yet, found without reading the others.
        indexes = [models.Index(fields=["portfolio"], condition=Q(valued=False), name="position_not_valued")]

    def __str__(self) -> str:
        return f"{self.quantity} {self.asset_id}"

    @property
    def last_valued_price(self) -> Decimal | None:
        """The price used in this position's previous valuation (None: never valued)."""
        if not self.valued or self.pk is None:
            return None
        epoch = Portfolio.objects.filter(pk=self.portfolio_id).values_list("valued_epoch", flat=True).first()
        return (
            ValuedPrice.objects.filter(epoch_id=epoch, asset_id=self.asset_id).values_list("price", flat=True).first()
        )


class ValuationEpoch(models.Model):
    """The prices one valuation pass used (its `ValuedPrice` rows), shared by every
    portfolio that pass stored."""

    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"epoch {self.pk} @{self.created_at:%Y-%m-%d %H:%M:%S}"


class ValuedPrice(models.Model):
    pk = models.CompositePrimaryKey("epoch", "asset")
    epoch = models.ForeignKey(ValuationEpoch, on_delete=models.CASCADE, related_name="prices", db_constraint=False)
    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="valued_prices", db_constraint=False)
    price = models.DecimalField(max_digits=20, decimal_places=6)

    def __str__(self) -> str:
        return f"{self.epoch_id}:{self.asset_id} {self.price}"


class PortfolioSnapshot(models.Model):
    """A portfolio's valuation at one moment: the points of the value-over-time chart."""

    # Indexed by the unique (portfolio, valued_at) constraint, read backwards for "recent":
    # no index of its own, and no database-level key check (a full refresh inserts 10,000
    # snapshots: each index and each deferred key check at COMMIT costs). Only the
    # revaluation pass inserts them, from portfolio rows it holds locked; Django's CASCADE
    # deletes them with the portfolio (services.portfolios.portfolio_delete locks the row
    # first, so a pass committing meanwhile cannot leave one behind).
    portfolio = models.ForeignKey(
        Portfolio, on_delete=models.CASCADE, related_name="snapshots", db_index=False, db_constraint=False
    )
    valued_at = models.DateTimeField()
    total_value = models.DecimalField(max_digits=30, decimal_places=10)
    total_cost = models.DecimalField(max_digits=30, decimal_places=10)
    daily_change = models.DecimalField(max_digits=30, decimal_places=10)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["portfolio", "valued_at"], name="snapshot_unique_portfolio_time")
        ]

    def __str__(self) -> str:
        return f"{self.portfolio_id}@{self.valued_at:%Y-%m-%d %H:%M:%S} {self.total_value}"


class Transaction(models.Model):
    """One entry of a portfolio's ledger. `price`, `fee` and `amount` are in `currency` (the
    asset's, or any for a portfolio-level fee); `fx_rate` converts them into the portfolio's
    base currency (units of base per unit of `currency`)."""

    class Type(models.TextChoices):
        BUY = "buy", "Buy"
        SELL = "sell", "Sell"
        DIVIDEND = "dividend", "Dividend"
        SPLIT = "split", "Split"
        FEE = "fee", "Fee"

    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="transactions")
    # None: a fee of the portfolio itself.
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="transactions", null=True, blank=True)
    type = models.CharField(max_length=10, choices=Type.choices)
    quantity = models.DecimalField(max_digits=28, decimal_places=10, null=True, blank=True)
    price = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    fee = models.DecimalField(max_digits=20, decimal_places=6, default=0)
    amount = models.DecimalField(max_digits=24, decimal_places=6, null=True, blank=True)
    ratio = models.CharField(max_length=41, blank=True, help_text='split: "N:M", N new shares for M old')
    # blank: the admin form may leave them to the ledger (the asset's currency, the latest rate).
    currency = models.CharField(max_length=3, blank=True)
    fx_rate = models.DecimalField(max_digits=24, decimal_places=10, blank=True)
    executed_at = models.DateTimeField()
    # NULL, not "": one portfolio may hold many transactions without one.
    external_id = models.CharField(max_length=100, null=True, blank=True)  # noqa: DJ001
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["portfolio_id", "executed_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["portfolio", "external_id"], name="transaction_unique_external_id"),
            models.CheckConstraint(condition=Q(fx_rate__gt=0), name="transaction_fx_rate_positive"),
            models.CheckConstraint(condition=Q(fee__gte=0), name="transaction_fee_not_negative"),
            models.CheckConstraint(
                condition=Q(asset__isnull=False) | Q(type="fee"), name="transaction_asset_unless_fee"
            ),
        ]
        indexes = [
            # An asset's transactions in the order they apply (the derivation's read).
            models.Index(fields=["portfolio", "asset", "executed_at", "id"], name="transaction_ledger_order"),
            # A portfolio's fees (its ledger total), without reading its trades.
            models.Index(fields=["portfolio"], condition=Q(type="fee"), name="transaction_fees"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.asset_id or '-'} @{self.executed_at:%Y-%m-%d %H:%M:%S}"
