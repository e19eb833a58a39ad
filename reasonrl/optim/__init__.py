"""Optimizers: Dion and Muon for hidden matrices, AdamW / Lion for the rest, and the factory trainers call."""

from reasonrl.optim.dion import Dion, dion_update
from reasonrl.optim.factory import build_optimizer
from reasonrl.optim.groups import split_param_groups
from reasonrl.optim.muon import Muon, muon_update

__all__ = ["Dion", "Muon", "build_optimizer", "dion_update", "muon_update", "split_param_groups"]
