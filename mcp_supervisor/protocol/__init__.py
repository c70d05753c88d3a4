"""Everything that crosses a ZeroMQ socket: messages, codec, endpoints and socket options."""
