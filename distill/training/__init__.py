"""Making models (installed as `toolbench.distill.training`): the tokenizer and its chat template,
model presets, the copy prior, the training loop and its losses, training data (conversations,
the generic corpus, shards), generic pretraining, target SFT and its copy probe. Imports neither
`draft` nor `speculative`."""
