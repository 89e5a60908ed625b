"""Code generated from protos/assignsvc/v1 by `make proto`; never edit by hand."""
