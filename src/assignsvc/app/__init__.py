"""The use cases: what each RPC does, over the stores' protocols and the pure core."""
