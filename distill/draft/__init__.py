"""Distilling a draft from a target (installed as `toolbench.distill.draft`): the distillation run,
its scenarios and teacher cache, and the grid of settings. Builds on `training`; imports nothing
from `speculative` but for the one debt in docs/ARCHITECTURE.md."""
