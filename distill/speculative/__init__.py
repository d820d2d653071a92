"""Speculative decoding and measuring it (installed as `toolbench.distill.speculative`): the decoder
and its draft policies (`decoding`), the acceptance metrics and token classes, the acceptance head
and its training, and the spec evaluation. Builds on `draft` and `training`."""
