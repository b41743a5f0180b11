"""Market-data sources behind one interface (`base.MarketDataSource`)."""
