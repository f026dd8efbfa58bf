"""``make demo``: the whole system on one machine (see ``demo/__main__.py``)."""
