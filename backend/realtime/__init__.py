"""The wire contract between the pipeline and the socket edge: payload types, channel-layer
group names, events, the batch publisher and the read side of the connection registry."""
