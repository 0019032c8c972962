"""The outbound dialler's use cases: campaigns and leads, the hopper, the call core and its driver."""
