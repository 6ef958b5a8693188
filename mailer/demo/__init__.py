"""`make demo`: the main job end to end, with its sample client and release."""
