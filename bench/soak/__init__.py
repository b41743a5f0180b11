"""The chaos soak (`python -m bench bench_soak`): the Procfile's web, worker and beat with
their own Redis server and PostgreSQL database, hundreds of reconnecting WebSocket clients,
and one of the four processes SIGKILLed every 30 s. See docs/soak.md."""
