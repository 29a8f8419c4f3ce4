"""The request path: an ``Exchange`` travels through a chain of stages to the origin."""

from edgenode.pipeline.chain import Chain, Next, Outcome, settle
from edgenode.pipeline.exchange import Exchange
from edgenode.pipeline.stage import Handler, Stage, build_chain

__all__ = ["Chain", "Exchange", "Handler", "Next", "Outcome", "Stage", "build_chain", "settle"]
