"""Experiment documents: the file formats `assignsvc apply` reads and `get -o yaml` writes."""
