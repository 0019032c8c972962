"""The simulated trading gateway (``callcenter.ports.trading.TradingGateway``): the instrument list shipped in
``instruments.csv`` (real names; the ST and new-listing rows are demo entries), seeded quotes, matching."""
